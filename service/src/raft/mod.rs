//! Raft in raftkv's own types: the openraft type config, the state machine that feeds committed
//! entries to `kv`, and the openraft `Config` we run with.
//!
//! Glossary (the Raft paper's words, used the same way in code, JSON, dashboard and Report):
//! - **term**: a numbered period with at most one leader (we use openraft's standard leader id,
//!   so two leaders in one term are impossible; openraft's default would allow it).
//! - **vote**: the candidate a node granted its vote to in the current term (`voted_for`, the
//!   paper's votedFor, recorded by [`ballot`]). openraft's own vote is wider: the highest (term,
//!   node) a server accepted, including the leader it follows without having voted
//!   (`vote_holder`); it is fsynced before any answer, and it is what enforces one vote per
//!   term. *Committed* vote = a quorum granted it, i.e. an established leader.
//! - **leader / follower / candidate / learner**: the server states.
//! - **log index**, **committed** (stored on a quorum, never lost), **applied** (executed by the
//!   state machine), **snapshot** (state up to an index, saved to disk), **purged** (log entries
//!   deleted because a snapshot covers them), **quorum** (a majority of voters: 3 of 5).
//! - **pre-vote**: a candidate first asks whether it *could* win before bumping its term, so an
//!   isolated node rejoining does not depose a healthy leader.
//!
//! # How raftkv does Raft, and where
//!
//! openraft runs the protocol (RaftCore: the server states, timers, vote and AppendEntries
//! handling); raftkv supplies what the paper leaves to the implementer (storage, transport, the
//! state machine, client handling) and chooses the settings. Read in this order:
//!
//! - **Leader election** (§5.2). A follower that hears no leader for an election timeout becomes
//!   candidate, increments its term and asks for votes; a majority makes it leader. Timers and
//!   one-leader-per-term are chosen in [`openraft_config`] and the `LeaderId` below; a vote is
//!   fsynced before it is answered (`store::log`, `save_vote`); votes travel as
//!   `net::frame::Request::Vote` (`net::client` sends, `net::server` hands them to openraft).
//!   The lab's "time out" is `node::Node::time_out`.
//! - **Pre-vote** (thesis §9.6). Before bumping its term a candidate asks whether it *could* win;
//!   a node cut off and rejoining then cannot depose a healthy leader. Switched by
//!   `Timing::pre_vote` (`config`), on by default.
//! - **Log replication** (§5.3). The leader sends AppendEntries with the previous entry's index and
//!   term; a follower whose log does not match refuses and the leader backs up. Entries are
//!   appended and fsynced in `store::log` (group commit: one fsync per batch); each AppendEntries
//!   is bounded by bytes (`store::log::MAX_APPEND_BYTES`) and given time by its size
//!   (`net::client`). Client writes are grouped into entries by [`batch`].
//! - **Commit rule** (§5.3, §5.4.2). An entry is committed once stored on a majority *and* an
//!   entry of the leader's current term is (Figure 8); openraft decides it. Committed entries are
//!   applied in order by [`state_machine`]; a write is acknowledged only after it is applied
//!   ([`leader::propose`]), and retries of one write apply once (`kv`'s request ids).
//! - **Linearizable reads** (§6.4, read index). The leader confirms with a heartbeat round to a
//!   majority that it still leads, notes its commit index, and the read waits until that index
//!   is applied ([`leader`], `ReadPolicy::ReadIndex`; `api::gateway` forwards from followers).
//!   No lease reads: a read never trusts a clock.
//! - **Snapshots and log compaction** (§7). Every [`SNAPSHOT_EVERY`] entries (for a state larger
//!   than the log limit, only once the log is as large as the last snapshot), or when the log
//!   passes its byte limit, the state machine serializes the map ([`state_machine`]) straight
//!   into a file (`store::snapshot`), and the log it covers is purged (`node::compact` decides,
//!   each node at its own thresholds); a follower too far behind receives the snapshot in
//!   chunks, as Figure 13's InstallSnapshot (`net::snapshot`).
//! - **Membership changes** (§6). One server at a time: added as a learner, promoted to voter
//!   once caught up, or removed ([`members`]); a new server learns its id from the leader
//!   (`node::join`). openraft commits each change through a joint configuration.
//! - **Restart** (§5.1 persistent state). Term, vote and log are on disk (`store`); a restarted
//!   node rebuilds its state from the snapshot plus the log and comes back as a follower, never
//!   as the leader it was (`enable_leader_restore: false` below).
//! - **What a node reports** of all this: [`status`] (`GET /admin/status`, the lab).
//!
//! # CAVEATS: what is deliberately not done (yet)
//! - A node whose data directory is wiped must not rejoin under its old id (`node::identity`
//!   refuses); it may join again as a new node (`members`; ids are never reused).
//! - A snapshot is built from a copy of the state taken on the apply path, cheap because the
//!   data map is persistent (`kv`): the pause is the bounded de-duplication table's copy. A
//!   transfer cut off starts over from the first chunk (no resume). A snapshot rewrites the
//!   whole state (no incremental snapshots): for a state larger than the log limit,
//!   `node::compact` bounds that cost to a byte of snapshot per byte of log, and it spreads the
//!   nodes' builds apart.
//! - A removed server finds out (`removal`) but does not remember it across a restart: it learns
//!   again from its first vote request. Client TLS and disk-fault handling are not done
//!   (issue 19).
//! - Only the leader serves linearizable reads (followers forward); no follower reads with a
//!   read index, no lease reads.
//! - The de-duplication window for retried writes is bounded (`kv`): a retry arriving after
//!   many more writes than that window may apply twice.

pub mod ballot;
pub mod batch;
pub mod leader;
pub mod members;
pub mod removal;
pub mod runtime;
pub mod state_machine;
pub mod status;

use std::sync::Arc;

pub use state_machine::{KvReader, StateMachine};

use crate::config::Timing;
use crate::error::Error;

openraft::declare_raft_types!(
    /// raftkv's openraft type config.
    pub TypeConfig:
        D = crate::kv::Request,
        R = crate::kv::Replies,
        Node = openraft::BasicNode,
        // Standard Raft: one leader per term. openraft's default (leader_id_adv) lets several
        // candidates lead in one term, which the Raft paper and our users do not expect.
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
        // tokio, on the lab's clock when a node runs in the lab (`runtime`, `crate::clock`).
        AsyncRuntime = runtime::ClockRuntime,
);

/// Aliases of the openraft types we use, pinned once.
pub mod typ {
    use super::TypeConfig;
    pub type Raft = openraft::Raft<TypeConfig, super::StateMachine>;
    pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
    pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
    pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
    pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
    pub type Snapshot =
        openraft::type_config::alias::SnapshotOf<TypeConfig, crate::store::SnapshotData>;
    pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
    pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
    pub type ReadLogId = openraft::raft::linearizable_read::ReadLogId<TypeConfig>;
    pub type LogStore = crate::store::LogStore<TypeConfig>;
    pub type ClientWriteError = openraft::error::ClientWriteError<TypeConfig>;
    pub type ForwardToLeader = openraft::error::ForwardToLeader<TypeConfig>;
    pub type RaftError<E = std::convert::Infallible> = openraft::error::RaftError<TypeConfig, E>;
}

/// Take a snapshot after this many new log entries, then purge the log it covers. Bounds disk
/// use and restart replay; small enough that a restart replays quickly.
pub const SNAPSHOT_EVERY: u64 = 5_000;

/// The openraft config for one node. The cluster name travels in every connection's hello.
pub fn openraft_config(
    timing: &Timing,
    snapshot_every: u64,
) -> Result<Arc<openraft::Config>, Error> {
    let config = openraft::Config {
        cluster_name: "raftkv".into(),
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_min_ms,
        election_timeout_max: timing.election_max_ms,
        enable_pre_vote: Some(timing.pre_vote),
        // A restarted leader comes back as a follower and must win a new election, as in the
        // paper; openraft's default restores leadership from the persisted vote (openraft #1511).
        enable_leader_restore: Some(false),
        // `node::compact` decides when to snapshot, by entries and by bytes.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        // Keep some log behind a snapshot so a briefly lagging follower catches up from the log
        // rather than by a full snapshot transfer (and see openraft #1706, #2116).
        max_in_snapshot_log_to_keep: 1_000.min(snapshot_every),
        replication_lag_threshold: snapshot_every.max(1_000),
        // How long the leader waits before retrying a follower it could not reach. openraft's
        // default ("200ms": 200, 400, 800, then 1000 ms) left a follower that came back from a
        // pause idle for up to a second: catching up 10,000 entries took 620-800 ms, almost all
        // of it waiting (bench --fault catch-up). Doubling from 10 ms to a 100 ms cap: 27-104 ms.
        // A dead peer costs a refused connection every 100 ms; an unreachable one is bounded by
        // the RPC timeout anyway.
        backoff: "10ms 20ms ...100ms".into(),
        ..Default::default()
    };
    let config = config
        .validate()
        .map_err(|e| Error::Config(format!("invalid Raft timing: {e}")))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::typ::Vote;

    /// A voter grants a vote request only if the requested vote ranks at least as high as the
    /// vote it holds (openraft's `handle_vote_req`). With the standard leader id, two candidates
    /// of one term are not ranked against each other, so a vote given in a term is never given to
    /// another candidate in that term; openraft's default (leader_id_adv) ranks them by node id
    /// and would grant the higher one too (see tests/faults.rs for the same rule on the wire).
    #[test]
    fn a_vote_given_in_a_term_is_never_given_to_another_candidate_of_that_term() {
        let given = Vote::new(7, 1);
        let other = Vote::new(7, 2);
        assert_eq!(other.partial_cmp(&given), None);
        assert_eq!(given.partial_cmp(&other), None);
        // The same candidate asking again is granted; any candidate of a later term may be.
        assert!(Vote::new(7, 1) >= given);
        assert!(Vote::new(8, 0) > given);
        // An established leader's (committed) vote outranks a candidate of its term: that is how
        // a candidate that missed the election learns the term is taken and follows.
        assert!(Vote::new_committed(7, 1) > other);
    }
}
