//! The Raft state machine: applies committed entries to the in-memory `kv::KvState` and keeps
//! durable snapshots of it. openraft owns this object inside its state-machine worker task; HTTP
//! readers see the same data through a [`KvReader`] (a read lock, never held across an await).
//!
//! Durability design (openraft-guide §3.4, design 2): the state machine itself is in memory; the
//! snapshot file and the log are durable, and the log store persists the committed id. On restart
//! openraft installs the last snapshot and re-applies the log up to the committed id.

use std::io::{self, Cursor};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use super::TypeConfig;
use super::typ::{LogId, Snapshot, SnapshotMeta, StoredMembership};
use crate::kv::{KvState, Replies};
use crate::store::SnapshotFile;

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
    file: SnapshotFile,
}

impl StateMachine {
    pub fn new(file: SnapshotFile) -> Self {
        StateMachine {
            kv: KvReader::default(),
            applied: None,
            membership: Default::default(),
            file,
        }
    }

    pub fn reader(&self) -> KvReader {
        self.kv.clone()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
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
        SnapshotBuilder {
            kv: self.kv.read().clone(),
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
            file: self.file.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Cursor<Vec<u8>>,
    ) -> io::Result<()> {
        let data = snapshot.into_inner();
        let kv: KvState = rmp_serde::from_slice(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // Persist before switching: once this returns openraft may purge the log the snapshot
        // covers, so the snapshot must already be durable.
        let file = self.file.clone();
        let owned_meta = meta.clone();
        tokio::task::spawn_blocking(move || file.save::<TypeConfig>(&owned_meta, &data))
            .await
            .map_err(io::Error::other)??;
        self.kv.replace(kv);
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let file = self.file.clone();
        let loaded = tokio::task::spawn_blocking(move || file.load::<TypeConfig>())
            .await
            .map_err(io::Error::other)??;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Cursor::new(data),
        }))
    }
}

/// A frozen copy of the state machine, serialized and saved off the apply path.
pub struct SnapshotBuilder {
    kv: KvState,
    meta: SnapshotMeta,
    file: SnapshotFile,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let kv = std::mem::take(&mut self.kv);
        let meta = self.meta.clone();
        let file = self.file.clone();
        // Serializing and fsyncing a large map is blocking work; keep it off the async workers so
        // heartbeats are not delayed (a delayed heartbeat looks like a dead leader).
        let data = tokio::task::spawn_blocking(move || -> io::Result<Vec<u8>> {
            let data = rmp_serde::to_vec_named(&kv).map_err(io::Error::other)?;
            // FSYNC (inside save): durable before openraft learns of it and purges the log.
            file.save::<TypeConfig>(&meta, &data)?;
            Ok(data)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Cursor::new(data),
        })
    }
}
