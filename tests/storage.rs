//! The log store and state machine against openraft's storage conformance suite: vote and log
//! round trips, truncation, purge, snapshot install and build, applied state.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use raftkv::raft::typ::LogStore;
use raftkv::raft::{StateMachine, TypeConfig};
use raftkv::store::SnapshotFile;
use tempfile::TempDir;

struct FreshStore;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for FreshStore {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = TempDir::new().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft-log")).expect("open log");
        let sm = StateMachine::new(
            SnapshotFile::new(&dir.path().join("snapshot")).expect("snapshot dir"),
        );
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_passes_openraft_conformance_suite() {
    Suite::test_all(FreshStore)
        .await
        .expect("openraft storage suite");
}
