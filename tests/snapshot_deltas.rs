//! Snapshots written as deltas (`store::snapshot`): a snapshot appends only what changed since the
//! last one to the current file, and every way a snapshot is read back — a restart, a new server
//! catching up by it — rebuilds the same state from the full section and its deltas.

mod common;

use std::time::Duration;

use common::{TestCluster, wait_until};
use raftkv::store::SnapshotData;

const ELECTION: Duration = Duration::from_secs(10);
const KEYS: usize = 120;
/// Round r > 0 writes the keys k ≡ r (mod SPREAD): a tenth of them.
const SPREAD: usize = 10;

/// The value key `k` holds after `round` rounds of writes.
fn value(k: usize, round: usize) -> String {
    format!("{k}@{round}-{}", "v".repeat(16 << 10))
}

/// How many deltas follow the full section in `node`'s current snapshot (None: no snapshot).
fn deltas(c: &TestCluster, node: usize) -> Option<usize> {
    let path = c.config(node).data_dir.join("snapshot/snapshot.bin");
    SnapshotData::open(path)
        .ok()
        .map(|data| data.shape().deltas().0)
}

async fn snapshot_deltas_total(c: &TestCluster, node: usize) -> f64 {
    let text = c.metrics(node).await;
    common::sample(&text, "raftkv_snapshots_total{phase=\"delta\"}").unwrap_or(0.0)
}

/// Every key's latest value and the appended list, read locally on `node`.
async fn assert_holds_everything(c: &TestCluster, node: usize, rounds: usize) {
    for k in 0..KEYS {
        // Key k was last written in the last round that wrote it (round r writes k ≡ r mod SPREAD,
        // and round 0 writes them all).
        let last = (0..rounds)
            .rev()
            .find(|r| *r == 0 || k % SPREAD == r % SPREAD)
            .unwrap();
        let (code, list) = c.get(node, &format!("k{k}"), "?consistency=local").await;
        assert_eq!(code, 200, "k{k} on n{node}");
        assert!(
            list.unwrap() == vec![value(k, last)],
            "k{k} on n{node} is not round {last}'s"
        );
    }
    let (_, log) = c.get(node, "log", "?consistency=local").await;
    let expected: Vec<String> = (0..rounds).map(|r| format!("round {r}")).collect();
    assert_eq!(log.unwrap(), expected, "the appended list on n{node}");
}

/// Writes keep changing a tenth of the keys; snapshots come every 20 entries, so each after the
/// first is a delta (until the chain reaches its bounds). A follower restarted from its chain, and a server added afterwards (which
/// receives the leader's file, deltas and all, in chunks), both hold exactly the latest values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_changes_only_restart_and_catch_up_to_the_latest_state() {
    let mut c = TestCluster::start(3, |cfg| {
        cfg.snapshot_every = 20;
        cfg.transfer.snapshot_chunk = 64 << 10;
    })
    .await;
    let (leader, _) = c.leader(ELECTION).await;
    let follower = (leader + 1) % 3;
    let mut rounds = 0;
    // Bounded: 30 rounds of 12 writes, one entry each (sequential), are far more than 20-entry
    // snapshots need to pile up as deltas.
    while rounds < 30
        && (deltas(&c, leader).unwrap_or(0) < 2 || deltas(&c, follower).unwrap_or(0) < 1)
    {
        let r = rounds;
        for k in (0..KEYS).filter(|k| r == 0 || k % SPREAD == r % SPREAD) {
            let code = c.put(leader, &format!("k{k}"), &[&value(k, r)]).await;
            assert_eq!(code, 204, "PUT k{k} in round {r}");
        }
        assert_eq!(c.append(leader, "log", &format!("round {r}")).await, 204);
        rounds += 1;
        // Let the compaction task (it looks twice a second) take the snapshot this round is due.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let chain = deltas(&c, leader).unwrap_or(0);
    println!("after {rounds} rounds: n{leader}'s snapshot has {chain} deltas");
    assert!(chain >= 2, "the leader's snapshots were appended as deltas");
    assert!(snapshot_deltas_total(&c, leader).await >= 2.0);

    // A restart decodes the full section and applies every delta, then replays the log.
    c.kill(follower).await;
    c.restart(follower).await;
    wait_until(
        ELECTION,
        "the restarted follower applied the leader's commit",
        || async {
            let (l, f) = (c.status(leader).await?, c.status(follower).await?);
            (f.last_applied >= l.commit_index).then_some(())
        },
    )
    .await;
    assert_holds_everything(&c, follower, rounds).await;

    // A server added now is sent the leader's file as it is, deltas included.
    let new = c.add_and_catch_up(leader).await;
    assert_holds_everything(&c, new, rounds).await;
    assert_holds_everything(&c, leader, rounds).await;
    c.shutdown().await;
}
