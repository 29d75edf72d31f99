//! A node must never forget an entry it stored durably: Raft counts that entry in a commit and in
//! this node's votes (§5.4.1). raft-log detects a corrupted record (checksum) and refuses to open,
//! and cuts a torn record at the tail of its last chunk, which is right only when the cut bytes
//! were never fsynced. A log cut cleanly at a record boundary, or cut inside fsynced bytes, opens
//! as a shorter log with no complaint. This module keeps `DATA_DIR/durable.json`: the highest
//! index this node has both fsynced and applied (applied entries are committed, so Raft never
//! truncates them), renewed once a second; a start whose log and snapshot end below it is refused.
//! Entries fsynced in the last second before a crash are not covered: losing those is
//! indistinguishable from a torn tail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use openraft::storage::RaftLogStorage;

use crate::raft::TypeConfig;
use crate::raft::typ::{LogStore, Raft};
use crate::store::{SnapshotFile, write_atomically_async};

const FILE: &str = "durable.json";
const EVERY: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Watermark {
    /// Every entry up to this index was fsynced in this node's log and applied.
    index: u64,
}

fn read(dir: &Path) -> Result<Option<u64>> {
    match std::fs::read(dir.join(FILE)) {
        Ok(bytes) => serde_json::from_slice::<Watermark>(&bytes)
            .map(|w| Some(w.index))
            .map_err(|e| Error::Config(format!("{} is damaged: {e}", dir.join(FILE).display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a start whose durable history (the last log index, or the snapshot's, whichever is
/// higher) ends below the recorded watermark. Run before Raft starts.
pub async fn check(dir: &Path, log: &LogStore, snapshot: &SnapshotFile<TypeConfig>) -> Result<()> {
    let Some(recorded) = read(dir)? else {
        return Ok(());
    };
    let last = log
        .clone()
        .get_log_state()
        .await?
        .last_log_id
        .map(|l| l.index);
    if last >= Some(recorded) {
        return Ok(());
    }
    // Only now read the snapshot's meta: a log purged behind it ends early.
    let file = snapshot.clone();
    let meta = tokio::task::spawn_blocking(move || file.current_meta())
        .await
        .map_err(std::io::Error::other)??;
    let snapshot = meta.and_then(|meta| meta.last_log_id).map(|l| l.index);
    if last.max(snapshot) >= Some(recorded) {
        return Ok(());
    }
    let shown = |i: Option<u64>| i.map_or("nothing".into(), |i| format!("index {i}"));
    Err(Error::Config(format!(
        "refusing to start: this node stored entries up to index {recorded} durably ({}), but \
         its log now ends at {} and its snapshot at {}: fsynced entries are gone (a truncated \
         or deleted log file). Serving would let it vote and count commits without them. \
         Restore the data directory, or remove this server from the cluster and add a new one",
        dir.join(FILE).display(),
        shown(last),
        shown(snapshot),
    )))
}

/// Renews the watermark once a second while Raft runs.
pub async fn keep(raft: Raft, log: LogStore, dir: PathBuf) {
    let mut saved = read(&dir).ok().flatten();
    loop {
        tokio::time::sleep(EVERY).await;
        let (running, applied) = {
            let m = raft.metrics().borrow_watched().clone();
            (m.running_state.is_ok(), m.last_applied.map(|l| l.index))
        };
        if !running {
            return;
        }
        // ORDERING: only what is already fsynced may be recorded, so the file can never claim
        // more than the log holds after a crash.
        let Some(index) = applied
            .min(log.durable_index())
            .filter(|i| Some(*i) > saved)
        else {
            continue;
        };
        let Ok(bytes) = serde_json::to_vec(&Watermark { index }) else {
            continue;
        };
        // FSYNC (inside): the watermark survives the crash it is there to judge.
        match write_atomically_async(&dir, FILE, bytes).await {
            Ok(()) => saved = Some(index),
            Err(e) => tracing::warn!("could not renew {FILE}: {e}"),
        }
    }
}
