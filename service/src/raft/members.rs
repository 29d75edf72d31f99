//! Membership changes at runtime, done by the leader: add a server as a **learner** (it receives
//! the log but does not vote or count toward a quorum), promote a learner to **voter**, remove a
//! server. Like `leader`, every outcome is plain data that can cross the wire, so a change that
//! reached a follower over HTTP and one forwarded to the leader are classified the same way.
//!
//! Every change is proposed with openraft's `LastMembershipLogId` precondition: it applies only
//! if the membership is still the one the decision was based on, so two concurrent requests
//! cannot both add the same address under two ids. Each change is idempotent (adding a known
//! address returns its id, promoting a voter or removing a non-member is a no-op), so the router
//! may retry any of them after a leader change or a lost reply.

use std::collections::{BTreeMap, BTreeSet};

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Precondition};
use serde::{Deserialize, Serialize};

use super::leader::{WriteOutcome, heir, not_leader_or_no_quorum, propose};
use super::typ::Raft;
use crate::kv::{Command, Request, RequestId};

/// A learner may be promoted once it is at most this many entries behind the leader. Further
/// behind, the new voter would at once be a member of every quorum that cannot commit yet.
pub const PROMOTE_MAX_LAG: u64 = 1_000;

/// One change to the cluster's membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// Add the server listening for Raft at `raft_addr` as a learner (or, if a member already has
    /// that address, return that member's id).
    Add { raft_addr: String },
    /// Make learner `id` a voter.
    Promote { id: u64 },
    /// Take server `id` out of the cluster (voter or learner).
    Remove { id: u64 },
}

/// The result of a membership change on a node.
#[derive(Debug, Serialize, Deserialize)]
pub enum MemberOutcome {
    /// The membership now reflects the change (committed); `id` is the node it concerns.
    Done { id: u64 },
    /// This node does not lead; `leader` is whom it believes leads.
    NotLeader { leader: Option<u64> },
    /// Not now, maybe soon: another change is in flight, the learner is still catching up, the
    /// leader lost its quorum, or the outcome of an attempt is unknown. Retrying is safe.
    Busy(String),
    /// The change is impossible as asked (no such node, the last voter, a bad address).
    Refused(String),
}

/// A leader's answer to a forwarded membership change.
impl std::fmt::Display for MemberOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberOutcome::Done { id } => {
                write!(f, "done: the change concerning n{id} is committed")
            }
            MemberOutcome::NotLeader { leader } => f.write_str(&super::leader::not_leader(*leader)),
            MemberOutcome::Busy(why) => write!(f, "not now: {why}"),
            MemberOutcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// Applies `change` if this node leads.
pub async fn change(raft: &Raft, change: MemberChange) -> MemberOutcome {
    let m = raft.metrics().borrow_watched().clone();
    if m.current_leader != Some(m.id) {
        return MemberOutcome::NotLeader {
            leader: m.current_leader,
        };
    }
    let stored = m.membership_config.clone();
    let membership = stored.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let nodes: BTreeMap<u64, String> = membership
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    let guard = [Precondition::LastMembershipLogId {
        last_membership_log_id: *stored.log_id(),
    }];
    match change {
        MemberChange::Add { raft_addr } => {
            if let Some((id, _)) = nodes.iter().find(|(_, a)| **a == raft_addr) {
                return MemberOutcome::Done { id: *id };
            }
            if let Err(e) = crate::config::resolve(&raft_addr) {
                return MemberOutcome::Refused(e);
            }
            let at_least = nodes.keys().max().map_or(0, |max| max + 1);
            let id = match reserve_node_id(raft, at_least).await {
                Ok(id) => id,
                Err(outcome) => return outcome,
            };
            let node = BasicNode { addr: raft_addr };
            let add = ChangeMembers::AddNodes(BTreeMap::from([(id, node)]));
            classify(raft.change_membership_if(add, false, guard).await, id)
        }
        MemberChange::Promote { id } => {
            if voters.contains(&id) {
                return MemberOutcome::Done { id };
            }
            if !nodes.contains_key(&id) {
                return MemberOutcome::Refused(format!("node {id} is not a member"));
            }
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map(|l| l.index);
            let last = m.last_log_index.unwrap_or(0);
            match matched {
                None => return MemberOutcome::Busy(format!("learner {id} has not answered yet")),
                Some(matched) if last.saturating_sub(matched) > PROMOTE_MAX_LAG => {
                    return MemberOutcome::Busy(format!(
                        "learner {id} is {} entries behind the leader (at most {PROMOTE_MAX_LAG} to be promoted)",
                        last - matched
                    ));
                }
                Some(_) => {}
            }
            let promote = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            classify(raft.change_membership_if(promote, false, guard).await, id)
        }
        MemberChange::Remove { id } => {
            if !nodes.contains_key(&id) {
                return MemberOutcome::Done { id };
            }
            if voters.contains(&id) {
                if voters.len() == 1 {
                    return MemberOutcome::Refused(format!(
                        "node {id} is the last voter: the cluster would have no quorum"
                    ));
                }
                if id == m.id {
                    return hand_over(raft, &m).await;
                }
                let remove = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
                classify(raft.change_membership_if(remove, false, guard).await, id)
            } else {
                let remove = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
                classify(raft.change_membership_if(remove, false, guard).await, id)
            }
        }
    }
}

/// A leader asked to remove itself first hands leadership to its most caught-up voter; the
/// caller retries and the new leader does the removal. (Removing the leader in place would leave
/// the cluster leaderless for an election timeout.)
async fn hand_over(raft: &Raft, m: &super::typ::RaftMetrics) -> MemberOutcome {
    let Some(heir) = heir(m) else {
        return MemberOutcome::Busy("no other voter to hand leadership to".into());
    };
    tracing::info!(
        node = m.id,
        to = heir,
        "handing over leadership before removing myself"
    );
    match raft.trigger().transfer_leader(heir).await {
        Ok(()) => MemberOutcome::NotLeader { leader: Some(heir) },
        Err(e) => MemberOutcome::Busy(format!("handing leadership to node {heir}: {e}")),
    }
}

/// Reserves a node id through the log, so it is never handed out twice.
async fn reserve_node_id(raft: &Raft, at_least: u64) -> Result<u64, MemberOutcome> {
    let request = Request {
        id: RequestId::random(),
        command: Command::ReserveNodeId { at_least },
    };
    match propose(raft, request).await {
        WriteOutcome::Applied { response, .. } => response
            .node_id
            .ok_or_else(|| MemberOutcome::Busy("the state machine returned no node id".into())),
        WriteOutcome::NotLeader { leader } => Err(MemberOutcome::NotLeader { leader }),
        // An id reserved but not used is only a gap in the numbering.
        WriteOutcome::NoQuorum(why) | WriteOutcome::Unknown(why) | WriteOutcome::DiskFull(why) => {
            Err(MemberOutcome::Busy(why))
        }
    }
}

type ChangeResult = Result<
    openraft::raft::ClientWriteResponse<super::TypeConfig>,
    RaftError<super::TypeConfig, ClientWriteError<super::TypeConfig>>,
>;

fn classify(result: ChangeResult, id: u64) -> MemberOutcome {
    let e = match result {
        Ok(_) => return MemberOutcome::Done { id },
        Err(RaftError::APIError(e)) => e,
        Err(RaftError::Fatal(fatal)) => {
            return MemberOutcome::Busy(format!("Raft stopped with the change in flight: {fatal}"));
        }
    };
    match e {
        ClientWriteError::ForwardToLeader(f) => not_leader_or_no_quorum(
            f,
            |leader| MemberOutcome::NotLeader { leader },
            MemberOutcome::Busy,
        ),
        ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p)) => {
            MemberOutcome::Busy(format!("another membership change is in flight: {p}"))
        }
        ClientWriteError::ChangeMembershipError(other) => MemberOutcome::Refused(other.to_string()),
        ClientWriteError::PreconditionFailed(p) => {
            MemberOutcome::Busy(format!("the membership changed meanwhile: {p}"))
        }
        ClientWriteError::LogEntryDiscarded(f) => MemberOutcome::Busy(format!(
            "the change was discarded by a leader change (new leader: {:?})",
            f.leader_id
        )),
    }
}
