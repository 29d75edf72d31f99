//! Behaviour that depends on how much data moves: big values, big entries, followers far behind.
//! CI-sized (tens of MB); the figures at real size come from the benchmark.

mod common;

use std::time::Duration;

use common::{TestCluster, wait_until};

const ELECTION: Duration = Duration::from_secs(10);

/// A follower cut off while ~40 MiB of 256 KiB values are written (the leader batches them into
/// entries of about 1 MiB) catches up once the link is back and then holds every value.
///
/// Regression: AppendEntries were bounded only by entry count (300) and had a deadline of 3/4 of
/// a heartbeat, so the leader sent the lagging follower one request of tens of MiB, it timed out
/// every time, and was retried whole forever. Now a request carries at most
/// `store::log::MAX_APPEND_BYTES` and its deadline grows with its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_many_big_entries_catches_up() {
    let c = TestCluster::start(3, |_| {}).await;
    let (leader, _) = c.leader(ELECTION).await;
    let lagging = (leader + 1) % 3;
    c.cluster
        .partition(&[
            vec![lagging as u64],
            (0..3).filter(|i| *i != lagging as u64).collect(),
        ])
        .unwrap();

    let value = "x".repeat(256 << 10);
    for wave in 0..10 {
        let (c, value) = (&c, &value);
        let puts = (0..16).map(|n| async move {
            let key = format!("k{}", wave * 16 + n);
            let value = format!("{wave}-{n}-{value}");
            (c.put(leader, &key, &[&value]).await, key)
        });
        for (code, key) in futures::future::join_all(puts).await {
            assert_eq!(code, 204, "PUT {key} on the leader's side of the cut");
        }
    }
    let leader_status = c.status(leader).await.expect("leader answers");
    let target = leader_status.last_applied.expect("something applied");
    let lag_before = target - c.status(lagging).await.unwrap().last_applied.unwrap_or(0);
    assert!(
        lag_before >= 40,
        "only {lag_before} entries behind: the test must make the follower far behind in bytes"
    );
    println!("follower n{lagging} is {lag_before} entries behind; healing");

    c.cluster.heal().await;
    wait_until(
        Duration::from_secs(30),
        "the cut-off follower applied everything the leader had",
        || async {
            let applied = c.status(lagging).await?.last_applied?;
            (applied >= target).then_some(())
        },
    )
    .await;
    for wave in 0..10 {
        for n in 0..16 {
            let (code, list) = c
                .get(
                    lagging,
                    &format!("k{}", wave * 16 + n),
                    "?consistency=local",
                )
                .await;
            assert_eq!(code, 200);
            let list = list.unwrap();
            assert!(
                list.len() == 1 && list[0].starts_with(&format!("{wave}-{n}-")),
                "k{} on n{lagging} is wrong",
                wave * 16 + n
            );
        }
    }
    c.shutdown().await;
}

/// A log of big values is compacted by its size on disk, not only every 5,000 entries: with a
/// 4 MiB limit, ~10 MiB of 256 KiB values make every node snapshot and purge the log behind the
/// snapshot after a few dozen entries. (Regression: a 6 GB soak of 1 MiB values left 2 GB of log
/// on each node, since snapshots came only every 5,000 entries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_of_big_values_is_compacted_by_its_size() {
    let c = TestCluster::start(3, |cfg| cfg.log_bytes_limit = 4 << 20).await;
    let (leader, _) = c.leader(ELECTION).await;
    let value = "y".repeat(256 << 10);
    for n in 0..40 {
        assert_eq!(c.put(leader, &format!("k{n}"), &[&value]).await, 204);
    }
    for node in 0..3 {
        let s = wait_until(
            Duration::from_secs(30),
            "every node snapshotted and purged its log behind the snapshot",
            || async {
                let s = c.status(node).await?;
                (s.purged_index.is_some() && s.snapshot_index >= s.purged_index).then_some(s)
            },
        )
        .await;
        assert!(
            s.last_log_index.unwrap() < raftkv::raft::SNAPSHOT_EVERY,
            "compacted by size, long before the entry-count policy: {s:?}"
        );
        // Compaction lost nothing: every value reads back through this node.
        let (code, list) = c.get(node, "k39", "?consistency=local").await;
        assert_eq!((code, list.map(|l| l[0].len())), (200, Some(value.len())));
    }
    c.shutdown().await;
}
