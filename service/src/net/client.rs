//! The sending side: openraft's `RaftNetworkFactory` / `RaftNetworkV2` over [`Conn`], and
//! [`Peers`], a small connection pool for forwarded client requests. Raft replication, heartbeats
//! and snapshots each get their own connection per peer (openraft asks the factory separately),
//! and forwarded client requests use the pool, so a slow client write never delays a heartbeat.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};

use super::frame::{Hello, Reply, Request};
use super::snapshot::Inbox;
use super::{Conn, NetEnv, Secret};
use crate::config::Transfer;
use crate::metrics::Metrics;
use crate::observe::Rpc;
use crate::raft::TypeConfig;
use crate::raft::ballot::Ballot;
use crate::raft::removal::Removal;
use crate::raft::typ::{Snapshot, Vote};
use crate::store::space::Space;

/// How many idle pooled connections to keep per peer for forwarded client requests.
const POOL_IDLE_PER_PEER: usize = 64;

/// Who we are, as told in every hello.
#[derive(Clone)]
pub struct Identity {
    pub cluster: String,
    pub id: u64,
    pub env: NetEnv,
    /// With a cluster secret, every connection is authenticated and encrypted (`net::secure`).
    pub secret: Option<Secret>,
    pub metrics: Arc<Metrics>,
    pub failures: Arc<FailureLog>,
    /// What this node knows of its own removal from the cluster; peers' answers go here.
    pub removal: Arc<Removal>,
    /// The votes this node grants are recorded here (the paper's votedFor, `raft::ballot`).
    pub ballot: Arc<Ballot>,
    /// Free space on this node's disk: below the reserve, entries from a leader are refused.
    pub space: Arc<Space>,
    /// Message and snapshot chunk sizes.
    pub transfer: Transfer,
    /// Where a snapshot from a leader is received (`net::snapshot`).
    pub inbox: Arc<Inbox>,
}

impl Identity {
    /// Delivers through the process's fault table and counts the RPC as sent, or failed.
    async fn deliver<F>(&self, target: u64, request: &Request, call: F) -> io::Result<Reply>
    where
        F: Future<Output = io::Result<Reply>>,
    {
        let rpc = request.describe().0;
        let result = self.env.deliver(self.id, target, request, call).await;
        let outcome = if result.is_ok() { "sent" } else { "failed" };
        self.metrics.rpc(target, rpc, outcome);
        match &result {
            Ok(Reply::Failed(why)) => self.failures.failed(self.id, target, rpc, why),
            Err(e) => self.failures.failed(self.id, target, rpc, e),
            Ok(_) => self.failures.succeeded(target, rpc),
        }
        result
    }

    fn hello(&self, to: u64) -> Hello {
        Hello {
            cluster: self.cluster.clone(),
            from: self.id,
            to,
        }
    }
}

/// How often at most one kind of RPC to one peer is logged as failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(5);
/// Failures in a row before the first line: a peer that is still starting, or one lost
/// connection, is not worth a warning.
const FAILURE_LOG_AFTER: u64 = 3;

/// Logs RPCs that keep failing at warn level, at most once per [`FAILURE_LOG_EVERY`] per (peer,
/// kind), with the latest reason and how many failed in a row. Without it a follower the leader
/// could no longer replicate to left nothing in any log at the default level while openraft
/// retried forever.
#[derive(Default)]
pub struct FailureLog {
    failing: Mutex<HashMap<(u64, Rpc), Failing>>,
}

/// One (peer, kind) that is failing: how many times in a row, and when it was last logged.
#[derive(Default)]
struct Failing {
    in_a_row: u64,
    logged: Option<Instant>,
}

impl FailureLog {
    fn failed(&self, from: u64, to: u64, rpc: Rpc, why: &dyn std::fmt::Display) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let Failing { in_a_row, logged } = failing.entry((to, rpc)).or_default();
        *in_a_row += 1;
        let due = logged.is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY);
        if *in_a_row >= FAILURE_LOG_AFTER && due {
            tracing::warn!(
                node = from,
                peer = to,
                "{rpc:?} n{from} → n{to} failed {in_a_row} times in a row: {why}"
            );
            *logged = Some(Instant::now());
        }
    }

    fn succeeded(&self, to: u64, rpc: Rpc) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if !failing.is_empty() {
            failing.remove(&(to, rpc));
        }
    }
}

/// Creates one [`PeerNetwork`] per (peer, purpose) for openraft.
pub struct NetworkFactory {
    pub me: Identity,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerNetwork {
        // No connecting here (this cannot fail); the first RPC connects. The address comes from
        // the membership entry that made `target` a member, so servers added at runtime are
        // reached like the founding ones.
        PeerNetwork {
            me: self.me.clone(),
            target,
            addr: crate::config::resolve(&node.addr),
            conn: None,
        }
    }
}

/// A lazily connected link to one peer, used by one openraft task at a time.
pub struct PeerNetwork {
    pub(super) me: Identity,
    target: u64,
    addr: Result<SocketAddr, String>,
    conn: Option<Conn>,
}

impl PeerNetwork {
    /// `timeout` is openraft's, on the nodes' clock.
    pub(super) async fn call(&mut self, request: &Request, timeout: Duration) -> io::Result<Reply> {
        let (me, target) = (self.me.clone(), self.target);
        me.deliver(target, request, self.call_unchecked(request, timeout))
            .await
    }

    async fn call_unchecked(&mut self, request: &Request, timeout: Duration) -> io::Result<Reply> {
        // Converted when the message leaves, not when it was queued: a message a learner
        // delivers by hand leaves with the frozen clock's generous deadline.
        let timeout = self.me.env.real_deadline(timeout);
        let result = async {
            if self.conn.is_none() {
                let addr = *self
                    .addr
                    .as_ref()
                    .map_err(|e| io::Error::other(e.clone()))?;
                let hello = self.me.hello(self.target);
                let secret = self.me.secret.as_ref();
                let max = self.me.transfer.max_message;
                self.conn = Some(Conn::connect(addr, &hello, secret, max, timeout).await?);
            }
            self.conn
                .as_mut()
                .expect("connected above")
                .call(request, timeout)
                .await
        }
        .await;
        if result.is_err() {
            // Never reuse a socket after an error or timeout: a half-dead pooled connection can
            // swallow AppendEntries forever while the peer campaigns (openraft #1770).
            self.conn = None;
        }
        result
    }

    async fn rpc(
        &mut self,
        request: Request,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<TypeConfig>> {
        match self.call(&request, option.soft_ttl()).await {
            Ok(Reply::Failed(why)) => Err(unreachable(&io::Error::other(why))),
            Ok(Reply::Removed { config_index }) => {
                self.me.removal.told(config_index);
                let why = format!(
                    "n{} has no n{} in its committed configuration (log index {config_index})",
                    self.target, self.me.id
                );
                Err(unreachable(&io::Error::other(why)))
            }
            Ok(reply) => Ok(reply),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(RPCError::Network(NetworkError::new(&e)))
            }
            Err(e) => Err(unreachable(&e)),
        }
    }
}

fn unreachable(e: &io::Error) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(e))
}

fn unexpected(reply: Reply) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&io::Error::other(format!(
        "unexpected reply {reply:?}"
    ))))
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = crate::store::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(Request::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        // A candidate votes for itself (Figure 2): recorded before its first request leaves, as
        // openraft's own vote moves on to the winner if this candidate loses.
        let (term, candidate) = (rpc.vote.leader_id.term, rpc.vote.leader_id.voted_for);
        if candidate == self.me.id {
            self.me.ballot.granted(term, candidate).await;
        }
        match self.rpc(Request::Vote(rpc), &option).await? {
            Reply::Vote(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(Request::PreVote(rpc), &option).await? {
            Reply::Vote(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = super::snapshot::send(self, vote, snapshot, &option) => sent,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(Request::TransferLeader(req), &option).await? {
            Reply::TransferLeader(resp) => Ok(resp),
            other => Err(unexpected(other)),
        }
    }
}

/// Where a peer listens for Raft, by node id, as the current membership says (None: not a member).
pub type AddressBook = Arc<dyn Fn(u64) -> Option<SocketAddr> + Send + Sync>;

/// Pooled connections for forwarded client requests (writes, read-index requests, membership
/// changes).
#[derive(Clone)]
pub struct Peers {
    me: Identity,
    addresses: AddressBook,
    idle: Arc<Mutex<HashMap<u64, Vec<Conn>>>>,
}

impl Peers {
    pub fn new(me: Identity, addresses: AddressBook) -> Self {
        Peers {
            me,
            addresses,
            idle: Default::default(),
        }
    }

    /// Sends `request` to `target` on an idle pooled connection or a new one.
    pub async fn call(
        &self,
        target: u64,
        request: &Request,
        timeout: Duration,
    ) -> io::Result<Reply> {
        let call = self.call_unchecked(target, request, timeout);
        self.me.deliver(target, request, call).await
    }

    async fn call_unchecked(
        &self,
        target: u64,
        request: &Request,
        timeout: Duration,
    ) -> io::Result<Reply> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&target)
            .and_then(Vec::pop);
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let addr = (self.addresses)(target).ok_or_else(|| {
                    io::Error::other(format!("node {target} is not in the membership"))
                })?;
                let hello = self.me.hello(target);
                let (secret, max) = (self.me.secret.as_ref(), self.me.transfer.max_message);
                Conn::connect(addr, &hello, secret, max, timeout).await?
            }
        };
        // On error the connection is dropped, not returned to the pool.
        let reply = conn.call(request, timeout).await?;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let slot = idle.entry(target).or_default();
        if slot.len() < POOL_IDLE_PER_PEER {
            slot.push(conn);
        }
        Ok(reply)
    }
}
