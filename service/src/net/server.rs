//! The receiving side: accepts peer connections on the node's Raft address, checks the hello, and
//! hands each request to the node's openraft handle. One task per connection; requests on a
//! connection are served in order. Nothing a peer sends can panic the node: a frame that does not
//! decode, or a hello that does not match, closes that connection only.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Channel;
use super::client::Identity;
use super::frame::{self, Hello, HelloReply, Reply, Request};
use super::snapshot::Chunk;
use crate::raft::batch::Proposer;
use crate::raft::typ::Raft;
use crate::raft::{leader, members, removal};

/// At most this many peer connections are served at once; more wait in the accept backlog.
/// Five nodes need ~3 Raft connections per peer plus the forwarding pool.
pub const MAX_CONNECTIONS: usize = 512;

/// A peer must greet within this time or be dropped.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until the task is aborted. Connection tasks live in a `JoinSet` owned by this
/// future, so aborting it (a node kill) also drops every established peer connection.
pub async fn serve(listener: TcpListener, me: Identity, raft: Raft, proposer: Proposer) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually EMFILE; back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (me, raft, proposer) = (me.clone(), raft.clone(), proposer.clone());
        connections.spawn(async move {
            if let Err(e) = serve_connection(stream, &me, &raft, &proposer).await {
                tracing::debug!("connection from {peer} closed: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    me: &Identity,
    raft: &Raft,
    proposer: &Proposer,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // The handshake (with a cluster secret) and the hello must both arrive in time.
    let (mut channel, first) = tokio::time::timeout(HELLO_TIMEOUT, async {
        let mut channel =
            Channel::accept(stream, me.secret.as_ref(), me.transfer.max_message).await?;
        let first = channel.recv().await?;
        Ok::<_, std::io::Error>((channel, first))
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no hello"))??;
    let Some(first) = first else { return Ok(()) };
    let hello: Hello = frame::decode(&first)?;
    let verdict = check_hello(&hello, me);
    let refused = verdict.is_err();
    let reply = match verdict {
        Ok(()) => HelloReply::Welcome,
        Err(why) => HelloReply::Refused(why),
    };
    channel.send(frame::encode(&reply)?).await?;
    if refused {
        return Ok(());
    }
    let peer = hello.from;
    while let Some(bytes) = channel.recv().await? {
        let request: Request = frame::decode(&bytes)?;
        me.metrics.rpc(peer, request.describe().0, "received");
        // An injected cut drops the message here as a real network would: the connection goes
        // silent and the sender times out or reconnects. (A pause holds messages on the sending
        // side, where the learner sees them: `NetEnv::deliver`.)
        if me.env.faults.is_cut(peer, me.id) {
            return Ok(());
        }
        let reply = handle(me, raft, proposer, peer, request).await;
        if me.env.faults.is_cut(me.id, peer) {
            return Ok(());
        }
        channel.send(frame::encode(&reply)?).await?;
    }
    Ok(())
}

fn check_hello(hello: &Hello, me: &Identity) -> Result<(), String> {
    if hello.cluster != me.cluster {
        return Err(format!(
            "this is cluster {:?}, not {:?}",
            me.cluster, hello.cluster
        ));
    }
    if hello.to != me.id {
        return Err(format!(
            "this is node {}, not node {}: check the address lists",
            me.id, hello.to
        ));
    }
    // No check that `from` is a member: Raft servers must answer RPCs from servers outside their
    // current configuration (paper §6), e.g. a leader added while this node was partitioned away.
    // Authentication is the cluster secret's job.
    if hello.from == me.id {
        return Err(format!("node {} cannot be its own peer", me.id));
    }
    Ok(())
}

async fn handle(
    me: &Identity,
    raft: &Raft,
    proposer: &Proposer,
    peer: u64,
    request: Request,
) -> Reply {
    let failed = |e: &dyn std::fmt::Display| Reply::Failed(e.to_string());
    // A server our committed configuration does not have asks for a vote: it was removed (ids
    // are never reused). Tell it, instead of letting it campaign forever (`raft::removal`).
    if matches!(request, Request::Vote(_) | Request::PreVote(_))
        && let Some(config_index) = removal::not_a_member(raft, peer).await
    {
        return Reply::Removed { config_index };
    }
    // A follower whose disk is nearly full refuses entries (not heartbeats) as an unreachable
    // follower would: the leader retries later, and this node keeps following instead of
    // stopping on a failed write (openraft stops a node on any storage error).
    let carries_data = match &request {
        Request::AppendEntries(rpc) => !rpc.entries.is_empty(),
        Request::InstallSnapshot { .. } => true,
        _ => false,
    };
    if carries_data && let Some(why) = me.space.low() {
        return Reply::Failed(why);
    }
    match request {
        Request::AppendEntries(rpc) => raft
            .append_entries(rpc)
            .await
            .map_or_else(|e| failed(&e), Reply::AppendEntries),
        Request::Vote(rpc) => {
            let (term, candidate) = (rpc.vote.leader_id.term, rpc.vote.leader_id.voted_for);
            match raft.vote(rpc).await {
                Ok(answer) => {
                    // Recorded before the grant leaves, so the candidate never counts a vote
                    // this server's status does not show.
                    if answer.vote_granted {
                        me.ballot.granted(term, candidate).await;
                    }
                    Reply::Vote(answer)
                }
                Err(e) => failed(&e),
            }
        }
        Request::PreVote(rpc) => raft
            .pre_vote(rpc)
            .await
            .map_or_else(|e| failed(&e), Reply::Vote),
        Request::InstallSnapshot {
            vote,
            meta,
            offset,
            data,
            done,
            ..
        } => {
            let chunk = Chunk {
                vote,
                meta,
                offset,
                data,
                done,
            };
            me.inbox
                .receive(raft, &me.metrics, chunk)
                .await
                .unwrap_or_else(|e| failed(&e))
        }
        Request::TransferLeader(rpc) => raft
            .handle_transfer_leader(rpc)
            .await
            .map_or_else(|e| failed(&e), Reply::TransferLeader),
        Request::Write(request) => Reply::Write(proposer.propose(request).await),
        Request::ReadIndex => Reply::ReadIndex(leader::read_index(raft).await),
        Request::Member(change) => Reply::Member(members::change(raft, change).await),
    }
}
