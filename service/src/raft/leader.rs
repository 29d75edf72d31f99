//! What a leader does for a client, reduced to plain outcomes that can cross the wire: propose a
//! write and wait until it is applied, or confirm leadership and hand out a read index. The same
//! two functions serve a request that arrived over HTTP on the leader and one forwarded by a
//! follower, so both paths classify openraft's errors identically.

use openraft::ReadPolicy;
use openraft::error::{ClientWriteError, ForwardReason, LinearizableReadError, RaftError};
use serde::{Deserialize, Serialize};

use super::typ::{ForwardToLeader, LogId, Raft, RaftMetrics};
use crate::kv;

/// The result of proposing a write on a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// Committed by a quorum and applied at `log_id`.
    Applied {
        response: kv::Response,
        log_id: LogId,
    },
    /// This node does not lead; `leader` is whom it believes leads.
    NotLeader { leader: Option<u64> },
    /// This node leads but its quorum lease has lapsed (it cannot hear a majority): nothing was
    /// appended; retry later.
    NoQuorum(String),
    /// The entry may have been appended and may still commit: discarded when another leader's
    /// log won, or Raft stopped (the node was killed) while the write was in flight. There is no
    /// "certainly failed" here: once `client_write` was called, only a forward says nothing was
    /// appended.
    Unknown(String),
    /// This node leads but its disk has less free space than its reserve (`store::space`):
    /// nothing was appended. Retrying soon cannot help; freeing space does.
    DiskFull(String),
}

/// The result of asking a node for a linearizable read index.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReadOutcome {
    /// Leadership confirmed by a quorum after the request arrived; reading any state that applied
    /// at least `index` is linearizable.
    Ready {
        index: u64,
    },
    NotLeader {
        leader: Option<u64>,
    },
    NoQuorum(String),
    Failed(String),
}

/// "not the leader (n2 leads)", or that no leader is known.
pub(super) fn not_leader(leader: Option<u64>) -> String {
    match leader {
        Some(l) => format!("not the leader (n{l} leads)"),
        None => "not the leader, and no leader is known".into(),
    }
}

/// A leader's answer to a forwarded write, in the lab's message list.
impl std::fmt::Display for WriteOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteOutcome::Applied { log_id, .. } => write!(
                f,
                "committed and applied at index {} (term {})",
                log_id.index, log_id.leader_id.term
            ),
            WriteOutcome::NotLeader { leader } => f.write_str(&not_leader(*leader)),
            WriteOutcome::NoQuorum(why) => write!(f, "no quorum: {why}"),
            WriteOutcome::Unknown(why) => write!(f, "outcome unknown: {why}"),
            WriteOutcome::DiskFull(why) => write!(f, "refused: {why}"),
        }
    }
}

/// A leader's answer to a forwarded read-index request.
impl std::fmt::Display for ReadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadOutcome::Ready { index } => {
                write!(f, "leadership confirmed by a quorum; read index {index}")
            }
            ReadOutcome::NotLeader { leader } => f.write_str(&not_leader(*leader)),
            ReadOutcome::NoQuorum(why) => write!(f, "no quorum: {why}"),
            ReadOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

pub(super) fn not_leader_or_no_quorum<T>(
    f: ForwardToLeader,
    not_leader: impl Fn(Option<u64>) -> T,
    no_quorum: impl Fn(String) -> T,
) -> T {
    match (f.leader_id, f.reason) {
        (None, ForwardReason::LeaseExpired) => {
            no_quorum("the leader has not heard from a quorum recently".into())
        }
        (leader, _) => not_leader(leader),
    }
}

/// On a leader: the voter other than itself whose log matches furthest, the one to hand
/// leadership to (it can win the election at once). Learners never qualify: they cannot lead.
pub fn heir(m: &RaftMetrics) -> Option<u64> {
    let voters: std::collections::BTreeSet<u64> =
        m.membership_config.membership().voter_ids().collect();
    m.replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != m.id && voters.contains(id))
        .max_by_key(|(_, matched)| matched.as_ref().map(|l| l.index))
        .map(|(id, _)| *id)
}

/// Proposes `request` as a log entry of its own; returns once it is applied on this (leader) node
/// or refused. Client writes go through `batch::Proposer` instead; this is for the rare internal
/// ones (reserving a node id).
pub async fn propose(raft: &Raft, request: kv::Request) -> WriteOutcome {
    match propose_entry(raft, request).await {
        Ok((replies, log_id)) => applied(&replies, 0, log_id),
        Err(refused) => refused,
    }
}

/// The outcome of the `i`th request of an entry applied at `log_id` with `replies`.
pub(super) fn applied(replies: &kv::Replies, i: usize, log_id: LogId) -> WriteOutcome {
    let response = match replies {
        kv::Replies::One(response) => (i == 0).then_some(*response),
        kv::Replies::Batch(responses) => responses.get(i).copied(),
    };
    match response {
        Some(response) => WriteOutcome::Applied { response, log_id },
        // Applied, but its reply is missing: a bug, reported rather than panicking the node.
        None => WriteOutcome::Unknown(format!("entry {log_id} applied without reply {i}")),
    }
}

/// Proposes `request` as one log entry; returns its replies once it is applied on this (leader)
/// node, or why not.
pub(super) async fn propose_entry(
    raft: &Raft,
    request: kv::Request,
) -> Result<(kv::Replies, LogId), WriteOutcome> {
    Err(match raft.client_write(request).await {
        Ok(resp) => return Ok((resp.data, resp.log_id)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => not_leader_or_no_quorum(
            f,
            |leader| WriteOutcome::NotLeader { leader },
            WriteOutcome::NoQuorum,
        ),
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
            WriteOutcome::Unknown(format!(
                "the entry was discarded by a leader change (new leader: {:?})",
                f.leader_id
            ))
        }
        Err(RaftError::APIError(other)) => WriteOutcome::Unknown(other.to_string()),
        // A leader killed under a write: the entry may already be on a quorum of disks and be
        // committed by the next leader. Found by the register checker, where a write answered
        // "unavailable" was read back.
        Err(RaftError::Fatal(fatal)) => {
            WriteOutcome::Unknown(format!("Raft stopped with the write in flight: {fatal}"))
        }
    })
}

/// Confirms leadership with a quorum round trip (ReadIndex, not a clock-based lease) and returns
/// the index a reader must have applied.
pub async fn read_index(raft: &Raft) -> ReadOutcome {
    match raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
        Ok(linearizer) => ReadOutcome::Ready {
            index: linearizer.read_log_id().index(),
        },
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
            not_leader_or_no_quorum(
                f,
                |leader| ReadOutcome::NotLeader { leader },
                ReadOutcome::NoQuorum,
            )
        }
        Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
            ReadOutcome::NoQuorum(format!("only {:?} answered the leadership check", q.got))
        }
        Err(RaftError::Fatal(fatal)) => ReadOutcome::Failed(fatal.to_string()),
    }
}
