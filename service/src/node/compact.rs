//! When a node takes a snapshot and compacts its log: this task is the one owner of that decision
//! (openraft's own policy is `Never`). It looks every [`CHECK_EVERY`] at the log and the last
//! snapshot, asks openraft for a snapshot of what is applied when one is due, and purges the log
//! behind it.
//!
//! A snapshot is due when
//! - `snapshot_every` entries were applied since the last one (the paper's §7 rule, and what the
//!   lab shows), and, once the state outgrows the log limit, the log on disk is at least as large
//!   as the last snapshot; or
//! - the log on disk passes its byte limit (`--log-limit`) or the snapshot's size, whichever is
//!   larger (big values: with 1 MiB values a node held 2.0–2.2 GB of log after a 6 GB soak when
//!   only entries were counted, issue 18). The log it covers is then purged whole, and a follower
//!   behind the purge point catches up by that snapshot.
//!
//! Once the state is larger than the log limit, both rules tie a snapshot's cost to the log it
//! retires: a full snapshot rewrites the whole state, so a count or a fixed byte limit alone
//! rewrote a 1 GB state for every 256–640 MB of writes, and writes slowed down as the state grew.
//! Here a byte of log costs at most a byte of snapshot whatever the state's size. "The snapshot's
//! size" is its full section's (`SnapshotFile::full_len`): most snapshots are now deltas of what
//! changed (`store::snapshot`), cheaper than that, and the log stays bounded by 1.8 × the state
//! (or the limit) however long the chain of deltas.
//!
//! Each node's thresholds are spread by its id (×1.0 to ×1.8): nodes that apply the same log in
//! step would otherwise all build at once, and on one machine five builds of a big state compete
//! with the writes that need a quorum. Measured at 1 GB (`bench/scale.sh`, issue 18): p99 with
//! snapshots 2.94× without before, 1.76× after.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::raft::TypeConfig;
use crate::raft::typ::{LogStore, Raft};
use crate::store::SnapshotFile;

/// How often the log's size is read (one directory walk of a few chunk files).
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for a snapshot that was asked for before looking again.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

/// When this node takes a snapshot (see the module's rules).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Entries applied since the last snapshot before one is due (`--snapshot-every`).
    pub every: u64,
    /// Bytes of log on disk past which one is due in any case (`--log-limit`).
    pub log_limit: u64,
    /// This node's spread: every threshold is scaled by 1 + spread/5 ([`Policy::spread`]).
    pub spread: u64,
}

impl Policy {
    /// The same policy for node `id`: thresholds ×1.0, ×1.2, … ×1.8 by `id mod 5`, so that nodes
    /// applying the same log do not all build at once.
    pub fn spread(self, id: u64) -> Policy {
        Policy {
            spread: id % 5,
            ..self
        }
    }

    fn scaled(&self, v: u64) -> u64 {
        v.saturating_add(v / 5 * self.spread)
    }

    /// Whether a snapshot is due, from the entries applied since the last one, the log's bytes on
    /// disk and the last snapshot's size. `Some(true)` when the byte rule fired (the whole log the
    /// new snapshot covers is then purged), `Some(false)` for the count rule, `None` if not due.
    pub fn due(&self, since: u64, log_bytes: u64, snapshot_bytes: u64) -> Option<bool> {
        let (snapshot, limit) = (self.scaled(snapshot_bytes), self.scaled(self.log_limit));
        // A state smaller than the log limit is cheap to rewrite: the count alone decides.
        let cheap = snapshot_bytes < self.log_limit;
        if log_bytes > limit.max(snapshot) {
            Some(true)
        } else if since >= self.scaled(self.every) && (cheap || log_bytes >= snapshot) {
            Some(false)
        } else {
            None
        }
    }
}

pub async fn run(raft: Raft, log: LogStore, snapshots: SnapshotFile<TypeConfig>, policy: Policy) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let (running, applied, mut snapshot, purged) = {
            let m = raft.metrics().borrow_watched().clone();
            let index = |id: Option<crate::raft::typ::LogId>| id.map(|l| l.index);
            let running = m.running_state.is_ok();
            (
                running,
                index(m.last_applied),
                index(m.snapshot),
                index(m.purged),
            )
        };
        if !running {
            return;
        }
        let Some(applied) = applied else { continue };
        if snapshot >= Some(applied) {
            continue;
        }
        let since = applied - snapshot.map_or(0, |s| s + 1) + 1;
        let bytes = log.disk_bytes().await;
        // The full section, not the file: deltas are cheap to add, and counting them would let
        // the log grow to 1.8 × (full + deltas) at the end of a chain.
        let full = snapshots.full_len();
        let Some(by_bytes) = policy.due(since, bytes, full) else {
            continue;
        };
        // The snapshot covers what is applied when openraft builds it; wait for it, bounded.
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        let built = raft
            .wait(Some(SNAPSHOT_WAIT))
            .metrics(
                |m| m.snapshot.as_ref().map(|l| l.index) >= Some(applied),
                "a snapshot to compact the log",
            )
            .await;
        snapshot = built
            .ok()
            .and_then(|m| m.snapshot.map(|l| l.index))
            .or(snapshot);
        // Past the byte limit the whole log the snapshot covers goes; otherwise openraft has
        // purged all but the last `max_in_snapshot_log_to_keep` entries behind it already.
        if by_bytes && let Some(upto) = snapshot.filter(|s| purged < Some(*s)) {
            tracing::info!(
                log_bytes = bytes,
                limit = policy.scaled(policy.log_limit),
                upto,
                "log past its size limit: purging behind the snapshot"
            );
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Policy;

    const MIB: u64 = 1 << 20;

    fn policy(id: u64) -> Policy {
        Policy {
            every: 5_000,
            log_limit: 256 * MIB,
            spread: 0,
        }
        .spread(id)
    }

    #[test]
    fn a_small_state_is_snapshotted_every_so_many_entries() {
        let p = policy(0);
        assert_eq!(p.due(4_999, 10 * MIB, MIB), None);
        assert_eq!(p.due(5_000, 10 * MIB, MIB), Some(false));
        assert_eq!(
            p.due(5_000, 1_000, MIB),
            Some(false),
            "a small state is cheap"
        );
    }

    #[test]
    fn a_big_state_is_not_rewritten_for_less_log_than_its_own_size() {
        let p = policy(0);
        let state = 1024 * MIB;
        assert_eq!(p.due(50_000, 640 * MIB, state), None, "count alone");
        assert_eq!(p.due(50_000, state, state), Some(false));
        assert_eq!(p.due(10, state + 1, state), Some(true), "bytes alone");
    }

    #[test]
    fn big_values_trigger_by_bytes_past_the_log_limit() {
        let p = policy(0);
        assert_eq!(p.due(100, 256 * MIB, MIB), None);
        assert_eq!(p.due(100, 256 * MIB + 1, MIB), Some(true));
    }

    #[test]
    fn nodes_reach_their_thresholds_one_after_another() {
        let state = 1024 * MIB;
        let first_due = |id| {
            (1..=40)
                .map(|tenth| state / 10 * tenth)
                .find(|log| policy(id).due(1_000_000, *log, state).is_some())
                .unwrap()
        };
        let at: Vec<u64> = (0..5).map(first_due).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert_eq!(first_due(5), first_due(0), "spread repeats every five ids");
        assert!(at[4] <= state * 2, "at most twice the state: {at:?}");
    }
}
