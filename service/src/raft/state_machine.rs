//! The Raft state machine: applies committed entries to the in-memory `kv::KvState` and keeps
//! durable snapshots of it. openraft owns this object inside its state-machine worker task; HTTP
//! readers see the same data through a [`KvReader`] (a read lock, never held across an await).
//!
//! Durability design (openraft-guide §3.4, design 2): the state machine itself is in memory; the
//! snapshot file and the log are durable, and the log store persists the committed id. On restart
//! openraft installs the last snapshot and re-applies the log up to the committed id.

use std::io;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Instant;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use super::TypeConfig;
use super::typ::{LogId, Snapshot, SnapshotMeta, StoredMembership};
use crate::kv::{ChangedKeys, KvState, Replies};
use crate::metrics::Metrics;
use crate::store::{SnapshotData, SnapshotFile};

/// A shared, read-only view of the applied key/value state.
#[derive(Clone, Default)]
pub struct KvReader {
    state: Arc<RwLock<KvState>>,
}

impl KvReader {
    /// Read access to the state as of the last applied entry. Hold it briefly: `apply` waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, KvState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn replace(&self, new: KvState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = new;
    }
}

pub struct StateMachine {
    kv: KvReader,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// What changed since the last snapshot: what the next one holds if it is a delta.
    since: Since,
    file: SnapshotFile<TypeConfig>,
    metrics: Arc<Metrics>,
}

/// The keys written since the snapshot at index `base`: the last snapshot built, installed or
/// started from. With `base: None` no such snapshot is known and the next one is full. The file
/// appends a delta only to the snapshot at `base` (`SnapshotFile::append`), so a stale `base` —
/// a build that failed, a snapshot installed from the leader meanwhile — costs a full snapshot,
/// never a delta against the wrong state.
#[derive(Debug, Default)]
struct Since {
    base: Option<u64>,
    keys: ChangedKeys,
}

impl Since {
    /// No keys written yet since the snapshot that ends at `last`.
    fn snapshot_at(last: Option<LogId>) -> Since {
        Since {
            base: last.map(|id| id.index),
            keys: ChangedKeys::default(),
        }
    }
}

impl StateMachine {
    pub fn new(file: SnapshotFile<TypeConfig>, metrics: Arc<Metrics>) -> Self {
        StateMachine {
            kv: KvReader::default(),
            applied: None,
            membership: Default::default(),
            since: Since::default(),
            file,
            metrics,
        }
    }

    pub fn reader(&self) -> KvReader {
        self.kv.clone()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let reply = match entry.payload {
                EntryPayload::Normal(request) => {
                    self.since.keys.record(&request);
                    let mut kv = self.kv.state.write().unwrap_or_else(|p| p.into_inner());
                    kv.apply_entry(request)
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Replies::One(Default::default())
                }
                EntryPayload::Blank => Replies::One(Default::default()),
            };
            self.applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // The next snapshot's changes count from the one this builder takes.
        let since = Since::snapshot_at(self.applied);
        SnapshotBuilder {
            // O(1): the map is persistent (`kv`), so apply goes on while the copy is written out.
            kv: self.kv.read().clone(),
            since: std::mem::replace(&mut self.since, since),
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            file: self.file.clone(),
            metrics: self.metrics.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: SnapshotData,
    ) -> io::Result<()> {
        let (file, started, bytes) = (self.file.clone(), Instant::now(), snapshot.len());
        let expected = meta.clone();
        // Decoding a large state is blocking work: off the async workers, streamed from the file
        // (never the whole file in memory beside the state it decodes to).
        let kv = tokio::task::spawn_blocking(move || -> io::Result<KvState> {
            // The full section into an empty state, then each delta over it, key by key.
            let mut kv = KvState::default();
            let meta = snapshot.read::<TypeConfig>(|_, reader| {
                kv.merge(&mut rmp_serde::Deserializer::new(reader))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            })?;
            if meta != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the snapshot file holds {meta}, not the {expected} being installed"),
                ));
            }
            // Current before switching: once this returns openraft may purge the log the snapshot
            // covers, so it must already be the durable one (received files are fsynced whole).
            let last = meta.last_log_id.map(|id| id.index);
            file.make_current(&mut snapshot, last)?;
            Ok(kv)
        })
        .await
        .map_err(io::Error::other)??;
        self.metrics
            .snapshot_step("install", started.elapsed(), bytes);
        self.kv.replace(kv);
        self.since = Since::snapshot_at(meta.last_log_id);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Option<Snapshot>> {
            let Some(mut snapshot) = file.open_current()? else {
                return Ok(None);
            };
            let meta = snapshot.meta::<TypeConfig>()?;
            Ok(Some(Snapshot { meta, snapshot }))
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// A frozen copy of the state machine (structurally shared with the live one), written out off
/// the apply path.
pub struct SnapshotBuilder {
    kv: KvState,
    since: Since,
    meta: SnapshotMeta,
    file: SnapshotFile<TypeConfig>,
    metrics: Arc<Metrics>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (kv, since) = (
            std::mem::take(&mut self.kv),
            std::mem::take(&mut self.since),
        );
        let meta = self.meta.clone();
        let (file, started) = (self.file.clone(), Instant::now());
        // Serializing and fsyncing a large map is blocking work; keep it off the async workers so
        // heartbeats are not delayed (a delayed heartbeat looks like a dead leader). The state is
        // serialized straight into the file, never into a buffer of its size.
        let (snapshot, phase, written) = in_background(move || {
            // A delta if the current snapshot is the one `since` counts from and the chain has
            // room; the whole state otherwise. FSYNC (inside append and write): durable before
            // openraft learns of it and purges the log.
            let delta = file.append(since.base, kv.delta_bytes(&since.keys), &meta, |out| {
                rmp_serde::encode::write_named(out, &kv.delta(&since.keys))
                    .map_err(io::Error::other)
            })?;
            Ok(match delta {
                Some(grown) => {
                    let written = grown.shape().sections.last().map_or(0, |s| s.1);
                    (grown, "delta", written)
                }
                None => {
                    let full = file.write(&meta, |out| {
                        rmp_serde::encode::write_named(out, &kv).map_err(io::Error::other)
                    })?;
                    let written = full.len();
                    (full, "build", written)
                }
            })
        })
        .await?;
        self.metrics
            .snapshot_step(phase, started.elapsed(), written);
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot,
        })
    }
}

/// Runs `work` on a thread of its own at the lowest CPU priority (nice 19 on Unix). Building a
/// snapshot is background work that takes seconds for a large state; at normal priority, on a
/// busy machine, it took CPU from Raft and clients (bench/scale.sh: one build of a 1 GB state
/// during a 30 s run raised write p99 6.5×). Nothing waits for it but the next compaction.
async fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("raftkv-snapshot".into())
        .spawn(move || {
            #[cfg(unix)]
            // SAFETY: setpriority only reads its arguments. On Linux, PRIO_PROCESS with 0 names
            // the calling thread (nice values are per thread), so only this one is lowered; a
            // failure leaves it at normal priority, which is still correct.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            }
            let _ = done.send(work());
        })?;
    result
        .await
        .map_err(|_| io::Error::other("the snapshot thread stopped"))?
}
