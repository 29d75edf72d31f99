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

/// The first-write hook (the node's "this id has Raft state" record) runs before the first vote
/// reaches disk, once; if it fails, the vote is not written and the hook stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_hook_precedes_the_first_vote_and_runs_once() {
    use openraft::storage::{RaftLogReader, RaftLogStorage};
    use openraft::vote::{RaftLeaderId, RaftVote};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let dir = TempDir::new().unwrap();
    let mut log = LogStore::open(&dir.path().join("raft-log")).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, fail) = (calls.clone(), Arc::new(AtomicUsize::new(1)));
    let failing = fail.clone();
    log.before_first_write(Box::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        if failing.swap(0, Ordering::SeqCst) == 1 {
            return Err(std::io::Error::other("disk full"));
        }
        Ok(())
    }));
    let vote = |term| raftkv::raft::typ::Vote::from_leader_id(RaftLeaderId::new(term, 1), false);
    assert!(
        log.save_vote(&vote(1)).await.is_err(),
        "a failed hook must fail the write"
    );
    assert_eq!(
        log.read_vote().await.unwrap(),
        None,
        "no vote without the record"
    );
    log.save_vote(&vote(1)).await.unwrap();
    log.save_vote(&vote(2)).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "pending until it succeeds, then never again"
    );
    assert_eq!(log.read_vote().await.unwrap(), Some(vote(2)));
}
