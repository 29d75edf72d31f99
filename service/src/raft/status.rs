//! A node's status as plain serde data, converted once from openraft's metrics: what
//! `GET /admin/status` returns and what the lab shows. Field names use the Raft paper's words.

use std::collections::BTreeMap;

use openraft::async_runtime::WatchReceiver;
use openraft::{Instant, ServerState};
use serde::{Deserialize, Serialize};

use super::ballot::{self, Grant};
use super::typ::{LogId, Raft};

/// One member of the cluster, as this node's latest membership entry says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub raft_addr: String,
    /// A voter counts toward quorums; a learner only receives the log.
    pub voter: bool,
}

/// What the leader knows of one follower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerProgress {
    /// matchIndex: the highest log index known to be replicated on the follower.
    pub matched_index: Option<u64>,
    /// Milliseconds since the follower last acknowledged an RPC (None: never).
    pub last_ack_ms: Option<u64>,
}

/// A server's state in the Raft paper's sense (Figure 4), plus openraft's learner (receives the
/// log, never votes) and shutdown (Raft stopped on this node). Serialized in lower case, the
/// words `/admin/status`, the dashboard and the Report use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
    /// No longer a member: the cluster removed it (`raft::removal`); it serves nothing.
    Removed,
}

impl Role {
    /// The roles a running member can be in (what `/metrics` reports a gauge for).
    pub const RUNNING: [Role; 4] = [Role::Leader, Role::Follower, Role::Candidate, Role::Learner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
            Role::Removed => "removed",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<ServerState> for Role {
    fn from(state: ServerState) -> Role {
        match state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        }
    }
}

/// The leader a client should talk to, from the statuses of several nodes: among those that
/// say leader *and* heard from a quorum within the lease, the one in the highest term. An
/// isolated old leader may still say leader until its lease runs out; the quorum check and the
/// highest term keep it from being chosen. None while no node qualifies (an election, or no
/// majority reachable).
pub fn leader_of<'a>(statuses: impl IntoIterator<Item = &'a Status>) -> Option<&'a Status> {
    statuses
        .into_iter()
        .filter(|s| s.role == Role::Leader && s.has_quorum)
        .max_by_key(|s| s.term)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub raft_addr: String,
    pub http_addr: String,
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The paper's votedFor: the candidate this server granted its vote to in the current term
    /// (itself if it stood for election), or None if it voted for nobody in this term, e.g.
    /// because it was down during the election or learned the term from a leader (`raft::ballot`).
    pub voted_for: Option<u64>,
    /// openraft's vote, which is not votedFor: the node of the highest (term, node) this server
    /// has accepted, whether it voted for it, follows it as leader, or adopted its term from a
    /// refusal. A follower that never voted in this term holds its leader here.
    #[serde(default)]
    pub vote_holder: Option<u64>,
    /// True once a quorum granted openraft's vote (`vote_holder` is an established leader).
    pub vote_committed: bool,
    pub leader_id: Option<u64>,
    pub leader_addr: Option<String>,
    /// Index of the last entry in this node's log.
    pub last_log_index: Option<u64>,
    /// Term of the last entry in this node's log.
    pub last_log_term: Option<u64>,
    /// The term of each of the last [`RECENT_LOG`] entries in the log, oldest first: (index, term).
    pub recent_log: Vec<(u64, u64)>,
    /// The highest index this node knows to be committed (stored on a quorum).
    pub commit_index: Option<u64>,
    /// The highest index applied to this node's key/value state.
    pub last_applied: Option<u64>,
    /// The last index covered by this node's snapshot.
    pub snapshot_index: Option<u64>,
    /// Entries up to this index were deleted from the log (the snapshot covers them).
    pub purged_index: Option<u64>,
    pub members: Vec<Member>,
    /// On the leader: each follower's replication progress. Absent elsewhere.
    pub followers: Option<BTreeMap<u64, FollowerProgress>>,
    /// Only a leader can have a quorum: true when a quorum acknowledged it within the leader
    /// lease (the election timeout maximum), so it may serve writes and reads. Always false on
    /// other roles: a follower cannot know whether its leader still has a majority.
    pub has_quorum: bool,
    /// Leader: milliseconds since a quorum last acknowledged it. None on other roles.
    pub quorum_contact_ms: Option<u64>,
    /// Not a leader: it heard from a leader within the leader lease, so it refuses to vote for
    /// others. A follower of a stale leader cut off with it in a minority still says true: it
    /// hears that leader. False on a leader.
    #[serde(default)]
    pub heard_from_leader: bool,
    /// Not a leader: milliseconds since it last heard from a leader (None: none heard since it
    /// started or changed term). None on a leader.
    #[serde(default)]
    pub leader_contact_ms: Option<u64>,
    pub pre_vote: bool,
    /// Number of keys in the applied state.
    pub keys: usize,
    pub uptime_secs: u64,
    /// None while healthy; the fatal error that stopped Raft on this node otherwise.
    pub fatal: Option<String>,
    /// Why this node knows it is no longer a member (its role is then `removed`).
    #[serde(default)]
    pub removed: Option<String>,
}

/// How many of the last log entries [`Status::recent_log`] describes.
pub const RECENT_LOG: u64 = 48;

fn index(id: &Option<LogId>) -> Option<u64> {
    id.as_ref().map(|l| l.index)
}

/// Facts about the node that metrics do not carry.
pub struct NodeFacts {
    pub http_addr: String,
    pub raft_addr: String,
    pub pre_vote: bool,
    pub keys: usize,
    pub uptime_secs: u64,
    pub lease_ms: u64,
    /// Why this node knows it was removed from the cluster, if it does.
    pub removed: Option<String>,
    /// The last vote this node granted another candidate (`raft::ballot`).
    pub granted: Option<Grant>,
}

/// Reads the node's status. Costs one round trip to RaftCore (for the follower's leader-contact
/// time); the metrics borrow is released at once so RaftCore is never blocked on us.
pub async fn status(raft: &Raft, facts: NodeFacts) -> Status {
    let m = raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let members: Vec<Member> = membership
        .nodes()
        .map(|(id, node)| Member {
            id: *id,
            raft_addr: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect();
    let leader_addr = m.current_leader.and_then(|l| {
        members
            .iter()
            .find(|x| x.id == l)
            .map(|x| x.raft_addr.clone())
    });
    let followers = m.replication.as_ref().map(|replication| {
        replication
            .iter()
            .filter(|(id, _)| **id != m.id)
            .map(|(id, matched)| {
                let ack = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(id).cloned().flatten());
                let progress = FollowerProgress {
                    matched_index: index(matched),
                    last_ack_ms: ack.map(|t| t.elapsed().as_millis() as u64),
                };
                (*id, progress)
            })
            .collect()
    });
    let leading = m.state == ServerState::Leader;
    let quorum_contact_ms = leading
        .then_some(m.last_quorum_acked.as_ref())
        .flatten()
        .map(|t| t.elapsed().as_millis() as u64);
    let leader_contact_ms = if leading {
        None
    } else {
        let last = raft
            .with_raft_state(|s| s.vote_last_modified())
            .await
            .ok()
            .flatten();
        last.filter(|_| m.current_leader.is_some())
            .map(|t| t.elapsed().as_millis() as u64)
    };
    let lease =
        |ms: Option<u64>| ms.is_some_and(|ms| ms <= facts.lease_ms) && m.running_state.is_ok();
    // Term 0 is before any election: openraft fills the vote with a default id then.
    let vote =
        (m.vote.leader_id.term > 0).then_some((m.vote.leader_id.term, m.vote.leader_id.voted_for));
    let recent_log = match m.last_log_index {
        Some(last) => (last.saturating_sub(RECENT_LOG - 1)..=last)
            .filter_map(|i| m.log_id_list.get(i).map(|id| (i, id.leader_id.term)))
            .collect(),
        None => Vec::new(),
    };
    Status {
        id: m.id,
        last_log_term: recent_log.last().map(|(_, t)| *t),
        recent_log,
        raft_addr: facts.raft_addr,
        http_addr: facts.http_addr,
        role: if facts.removed.is_some() {
            Role::Removed
        } else {
            m.state.into()
        },
        removed: facts.removed,
        term: m.current_term,
        voted_for: ballot::voted_for(m.id, m.current_term, vote, facts.granted),
        vote_holder: vote.map(|(_, node)| node),
        vote_committed: m.vote.committed,
        leader_id: m.current_leader,
        leader_addr,
        last_log_index: m.last_log_index,
        commit_index: index(&m.local_committed),
        last_applied: index(&m.last_applied),
        snapshot_index: index(&m.snapshot),
        purged_index: index(&m.purged),
        members,
        followers,
        has_quorum: lease(quorum_contact_ms),
        quorum_contact_ms,
        heard_from_leader: lease(leader_contact_ms),
        leader_contact_ms,
        pre_vote: facts.pre_vote,
        keys: facts.keys,
        uptime_secs: facts.uptime_secs,
        fatal: m.running_state.as_ref().err().map(|e| e.to_string()),
    }
}
