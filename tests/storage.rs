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
            Default::default(),
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

/// Purging the log behind a snapshot must shrink what a restart reads. raft-log deletes only whole
/// closed chunk files; with its default chunk (about a million records) nothing was ever deleted
/// and every restart re-read all history. 50,000 entries, purge to 45,000: most of the bytes go,
/// and the reopened log starts after the purge point.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_deletes_whole_chunks_so_a_restart_reads_little() {
    use openraft::entry::RaftEntry;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::vote::RaftLeaderId;
    use raftkv::raft::typ::{Entry, LogId};

    let dir = TempDir::new().unwrap();
    let path = dir.path().join("raft-log");
    let bytes = |p: &std::path::Path| -> u64 {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let leader = openraft::impls::leader_id_std::LeaderId::<u64, u64>::new(1, 0).to_committed();
    let log_id = |i: u64| LogId::new(leader, i);
    let mut log = LogStore::open(&path).unwrap();
    async fn append_synced(log: &mut LogStore, entries: Vec<Entry>) {
        let (tx, rx) = <TypeConfig as TypeConfigExt>::oneshot();
        log.append(entries, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }
    for batch in 0..50u64 {
        let entries = (batch * 1000 + 1..=batch * 1000 + 1000)
            .map(|i| Entry::new_blank(log_id(i)))
            .collect();
        append_synced(&mut log, entries).await;
    }
    let written = bytes(&path);
    log.purge(log_id(45_000)).await.unwrap();
    // Chunk files are unlinked after the next synced flush.
    append_synced(&mut log, vec![Entry::new_blank(log_id(50_001))]).await;
    let kept = bytes(&path);
    assert!(
        kept * 2 < written,
        "purging 90 % of the log kept {kept} of {written} bytes"
    );
    drop(log);
    let mut reopened = LogStore::open(&path).unwrap();
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(45_000)));
    assert_eq!(state.last_log_id, Some(log_id(50_001)));
}
