//! Where a client request goes: to this node's Raft if it leads, otherwise forwarded over the
//! transport to the node it believes leads, retried until the request deadline. Every attempt of
//! one write carries the same request id, so the state machine applies it at most once however
//! many times a leader change or a lost reply makes us resend it.

use std::time::Duration;

use futures::FutureExt;
use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::kv::{self, Request, RequestId};
use crate::net::client::Peers;
use crate::net::frame::{self, Reply};
use crate::raft::batch::Proposer;
use crate::raft::leader::{self, ReadOutcome, WriteOutcome};
use crate::raft::members::{self, MemberChange, MemberOutcome};
use crate::raft::typ::Raft;

/// Sends client requests to the leader.
#[derive(Clone)]
pub struct Router {
    pub raft: Raft,
    /// This node's batcher: how a write is proposed when this node leads.
    pub proposer: Proposer,
    pub peers: Peers,
    pub id: u64,
    /// Deadline for one client request, all retries included.
    pub timeout: Duration,
}

/// The error for a request given up on: `outcome unknown` if an attempt may have reached a
/// leader's log (it may still commit), `unavailable` if certainly nothing was appended.
fn given_up(maybe_appended: bool, why: String) -> Error {
    if maybe_appended {
        Error::Unknown(why)
    } else {
        Error::Unavailable(why)
    }
}

/// Waits between attempts while there is no usable leader, doubling up to a few heartbeats.
struct Backoff(Duration);

impl Backoff {
    async fn wait(&mut self, deadline: Instant) {
        tokio::time::sleep_until((Instant::now() + self.0).min(deadline)).await;
        self.0 = (self.0 * 2).min(Duration::from_millis(200));
    }
}

impl Router {
    async fn leader(&self) -> Option<u64> {
        self.raft.current_leader().await
    }

    /// If this node's Raft has stopped (the node was killed or is shutting down), the reason to
    /// give up now: every further attempt would meet the stopped Raft again, once per backoff
    /// until the deadline. RaftCore publishes `running_state: Err` as it stops and drops the
    /// metrics sender when its task ends (a panic included); either one says so.
    fn stopped(&self, last_reason: &str) -> Option<String> {
        let mut metrics = self.raft.metrics();
        let stopped = loop {
            if metrics.borrow_watched().running_state.is_err() {
                break true;
            }
            match metrics.changed().now_or_never() {
                // Newer metrics than the ones just looked at: look again.
                Some(Ok(())) => continue,
                Some(Err(_)) => break true,
                None => break false,
            }
        };
        stopped.then(|| format!("node {} stopped (last attempt: {last_reason})", self.id))
    }

    /// Waits before the next attempt: for the backoff, or less if this node learns of a leader
    /// other than `asked` (the one the failed attempt went to) meanwhile. After a leader dies,
    /// the retry then goes out as soon as the new leader's first heartbeat arrives instead of
    /// sitting out the rest of a backoff (up to 200 ms of a failover otherwise).
    async fn pause(&self, backoff: &mut Backoff, deadline: Instant, asked: Option<u64>) {
        let mut metrics = self.raft.metrics();
        let news = async {
            loop {
                let known = metrics.borrow_watched().current_leader;
                if known.is_some() && known != asked {
                    return;
                }
                if metrics.changed().await.is_err() {
                    // Raft stopped: no news will come; the backoff decides.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = backoff.wait(deadline) => {}
            () = news => {}
        }
    }

    /// Replicates `command`; returns once a quorum committed it and the leader applied it.
    pub async fn write(&self, command: kv::Command) -> Result<kv::Response> {
        let request = Request {
            id: RequestId::random(),
            command,
        };
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Backoff(Duration::from_millis(10));
        // Once an attempt may have appended the entry somewhere, failing with "unavailable" would
        // be a lie: the write might still commit. Report "outcome unknown" instead.
        let mut maybe_appended = false;
        let mut last_reason = String::from("no leader is known");
        while Instant::now() < deadline {
            let remaining = deadline - Instant::now();
            let asked = self.leader().await;
            let outcome = match asked {
                Some(leader) if leader == self.id => {
                    match tokio::time::timeout(remaining, self.proposer.propose(request.clone()))
                        .await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            maybe_appended = true;
                            break;
                        }
                    }
                }
                Some(leader) => {
                    match self
                        .peers
                        .call(leader, &frame::Request::Write(request.clone()), remaining)
                        .await
                    {
                        Ok(Reply::Write(outcome)) => outcome,
                        Ok(other) => WriteOutcome::Unknown(format!("unexpected reply {other:?}")),
                        Err(e) => {
                            // Unless we never got through, the request may have reached the
                            // leader before the connection broke.
                            maybe_appended |= e.kind() != std::io::ErrorKind::ConnectionRefused;
                            WriteOutcome::NoQuorum(format!("leader {leader} unreachable: {e}"))
                        }
                    }
                }
                None => WriteOutcome::NotLeader { leader: None },
            };
            match outcome {
                WriteOutcome::Applied { response, .. } => return Ok(response),
                WriteOutcome::NotLeader { leader: Some(l) } if l != self.id => {
                    last_reason = format!("leadership moved to node {l}");
                }
                WriteOutcome::NotLeader { .. } => {
                    last_reason = "no leader is known (election in progress or no quorum)".into();
                }
                WriteOutcome::NoQuorum(why) => last_reason = why,
                WriteOutcome::Unknown(why) => {
                    // Retrying is safe (same request id); it may learn the outcome.
                    maybe_appended = true;
                    last_reason = why;
                }
            }
            if let Some(why) = self.stopped(&last_reason) {
                return Err(given_up(maybe_appended, why));
            }
            self.pause(&mut backoff, deadline, asked).await;
        }
        let why = format!(
            "no quorum committed the write within {:?}; last: {last_reason}",
            self.timeout
        );
        Err(given_up(maybe_appended, why))
    }

    /// Makes a membership change through the leader; returns the id of the node it concerns.
    /// Every change is idempotent (`raft::members`), so any failed attempt may be retried.
    pub async fn change_members(&self, change: MemberChange) -> Result<u64> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Backoff(Duration::from_millis(10));
        let mut last_reason = String::from("no leader is known");
        let mut maybe_applied = false;
        while Instant::now() < deadline {
            let remaining = deadline - Instant::now();
            let asked = self.leader().await;
            let outcome = match asked {
                Some(leader) if leader == self.id => {
                    maybe_applied = true;
                    tokio::time::timeout(remaining, members::change(&self.raft, change.clone()))
                        .await
                        .unwrap_or_else(|_| MemberOutcome::Busy("the change timed out".into()))
                }
                Some(leader) => match self
                    .peers
                    .call(leader, &frame::Request::Member(change.clone()), remaining)
                    .await
                {
                    Ok(Reply::Member(outcome)) => {
                        maybe_applied = true;
                        outcome
                    }
                    Ok(other) => MemberOutcome::Busy(format!("unexpected reply {other:?}")),
                    Err(e) => {
                        maybe_applied |= e.kind() != std::io::ErrorKind::ConnectionRefused;
                        MemberOutcome::Busy(format!("leader {leader} unreachable: {e}"))
                    }
                },
                None => MemberOutcome::NotLeader { leader: None },
            };
            match outcome {
                MemberOutcome::Done { id } => return Ok(id),
                MemberOutcome::Refused(why) => return Err(Error::Refused(why)),
                MemberOutcome::NotLeader { leader: Some(l) } if l != self.id => {
                    last_reason = format!("leadership moved to node {l}")
                }
                MemberOutcome::NotLeader { .. } => {
                    last_reason = "no leader is known (election in progress or no quorum)".into()
                }
                MemberOutcome::Busy(why) => last_reason = why,
            }
            if let Some(why) = self.stopped(&last_reason) {
                return Err(given_up(maybe_applied, why));
            }
            self.pause(&mut backoff, deadline, asked).await;
        }
        let why = format!(
            "the membership change did not complete within {:?}; last: {last_reason}",
            self.timeout
        );
        Err(if maybe_applied {
            Error::Unknown(format!(
                "{why} (retrying is safe: membership changes are idempotent)"
            ))
        } else {
            Error::Unavailable(why)
        })
    }

    /// Waits until reading this node's state is linearizable: the leader confirmed with a quorum,
    /// after this call began, that it still leads, and this node applied up to its commit index.
    /// Returns the index the read reflects at least.
    pub async fn linearize(&self) -> Result<u64> {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Backoff(Duration::from_millis(10));
        let mut last_reason = String::from("no leader is known");
        while Instant::now() < deadline {
            let remaining = deadline - Instant::now();
            let asked = self.leader().await;
            let outcome = match asked {
                Some(leader) if leader == self.id => {
                    tokio::time::timeout(remaining, leader::read_index(&self.raft))
                        .await
                        .unwrap_or_else(|_| {
                            ReadOutcome::NoQuorum("leadership check timed out".into())
                        })
                }
                Some(leader) => match self
                    .peers
                    .call(leader, &frame::Request::ReadIndex, remaining)
                    .await
                {
                    Ok(Reply::ReadIndex(outcome)) => outcome,
                    Ok(other) => ReadOutcome::Failed(format!("unexpected reply {other:?}")),
                    Err(e) => ReadOutcome::NoQuorum(format!("leader {leader} unreachable: {e}")),
                },
                None => ReadOutcome::NotLeader { leader: None },
            };
            match outcome {
                ReadOutcome::Ready { index } => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let applied = self
                        .raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(index), "linearizable read")
                        .await;
                    return match applied {
                        Ok(_) => Ok(index),
                        Err(e) => Err(Error::Unavailable(format!(
                            "this node did not apply index {index} in time: {e}"
                        ))),
                    };
                }
                ReadOutcome::NotLeader { .. } => {
                    last_reason = "no leader is known (election in progress or no quorum)".into()
                }
                ReadOutcome::NoQuorum(why) | ReadOutcome::Failed(why) => last_reason = why,
            }
            if let Some(why) = self.stopped(&last_reason) {
                return Err(Error::Unavailable(why));
            }
            self.pause(&mut backoff, deadline, asked).await;
        }
        Err(Error::Unavailable(format!(
            "could not confirm a leader with a quorum within {:?}; last: {last_reason}",
            self.timeout
        )))
    }
}
