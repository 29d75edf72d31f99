//! Compaction by bytes. openraft snapshots every `snapshot_every` entries and then keeps up to
//! `max_in_snapshot_log_to_keep` entries behind the snapshot: counts, not bytes. With 1 MiB
//! values a node held 2.0–2.2 GB of log after a 6 GB soak (issue 18). This task watches the
//! log's size on disk and, past a limit, asks openraft for a snapshot of what is applied and then
//! purges the whole log it covers. A follower that then lags behind the purge point catches up by
//! that snapshot instead of by entries.
//!
//! The limit is the node's `log_bytes_limit` or the current snapshot's size, whichever is larger.
//! A snapshot rewrites the whole state; with a fixed limit, a 1 GB state was rewritten for every
//! 256 MiB of log (four bytes of snapshot per byte written, on every node at once), and writes
//! slowed down as the state grew. Scaled to the snapshot, a byte of log costs at most a byte of
//! snapshot whatever the state's size; disk use stays bounded by about twice the state plus the
//! limit.

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::raft::TypeConfig;
use crate::raft::typ::{LogStore, Raft};
use crate::store::SnapshotFile;

/// How often the log's size is read (one directory walk of a few chunk files).
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for a snapshot that was asked for before looking again.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(30);

pub async fn by_bytes(raft: Raft, log: LogStore, snapshots: SnapshotFile<TypeConfig>, limit: u64) {
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
        let bytes = log.disk_bytes().await;
        let limit = limit.max(snapshots.current_len());
        if bytes <= limit || applied.is_none() {
            continue;
        }
        if snapshot < applied {
            // The snapshot covers what is applied when openraft builds it; wait for it, bounded.
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            let built = raft
                .wait(Some(SNAPSHOT_WAIT))
                .metrics(
                    |m| m.snapshot.as_ref().map(|l| l.index) >= applied,
                    "a snapshot to compact the log",
                )
                .await;
            snapshot = built
                .ok()
                .and_then(|m| m.snapshot.map(|l| l.index))
                .or(snapshot);
        }
        if let Some(upto) = snapshot.filter(|s| purged < Some(*s)) {
            tracing::info!(
                log_bytes = bytes,
                limit,
                upto,
                "log past its size limit: purging behind the snapshot"
            );
            if raft.trigger().purge_log(upto).await.is_err() {
                return;
            }
        }
    }
}
