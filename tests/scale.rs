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
    let written = c.status(leader).await.unwrap().commit_index;
    for node in 0..3 {
        let s = wait_until(
            Duration::from_secs(30),
            "every node snapshotted and purged its log behind the snapshot",
            || async {
                let s = c.status(node).await?;
                // Applied through the last write too: a local read must find it.
                (s.purged_index.is_some()
                    && s.snapshot_index >= s.purged_index
                    && s.last_applied >= written)
                    .then_some(s)
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

/// Sizes for the snapshot tests: a state several times the largest message, sent in many chunks.
const CHUNK: usize = 32 << 10;
const MAX_MESSAGE: usize = raftkv::config::MIN_MAX_MESSAGE;
/// Values written before a server is added: 160 × 256 KiB = 40 MiB, 5 × the largest message.
const LOADED_KEYS: usize = 160;

fn small_transfers(cfg: &mut raftkv::config::NodeConfig) {
    cfg.transfer = raftkv::config::Transfer {
        snapshot_chunk: CHUNK,
        max_message: MAX_MESSAGE,
    };
    // Snapshots soon and the log behind them purged (all but the last 20 entries): a server added
    // later needs the snapshot. The limit is above the loaded state, so the count alone decides
    // when a snapshot is due (`node::compact`) and [`covered_by_a_snapshot`] can make one due.
    cfg.snapshot_every = 20;
    cfg.log_bytes_limit = 64 << 20;
}

fn loaded_value(n: usize) -> String {
    format!("{n}-{}", "z".repeat(256 << 10))
}

/// Three nodes holding [`LOADED_KEYS`] big values, their logs purged behind a snapshot.
async fn loaded_cluster() -> (TestCluster, usize) {
    let c = TestCluster::start(3, small_transfers).await;
    let (leader, _) = c.leader(ELECTION).await;
    for wave in 0..LOADED_KEYS / 16 {
        let puts = (0..16).map(|i| {
            let (c, n) = (&c, wave * 16 + i);
            async move {
                (
                    c.put(leader, &format!("k{n}"), &[&loaded_value(n)]).await,
                    n,
                )
            }
        });
        for (code, n) in futures::future::join_all(puts).await {
            assert_eq!(code, 204, "PUT k{n}");
        }
    }
    let target = c.status(leader).await.unwrap().commit_index;
    let cluster = &c;
    covered_by_a_snapshot(
        target,
        || cluster.status(leader),
        |key| async move { cluster.put(leader, &key, &["."]).await },
    )
    .await;
    (c, leader)
}

/// Waits until the leader's snapshot covers index `target` and its log is purged behind it,
/// writing one small entry per look: a snapshot is due after so many entries (here 20, ×1.8 at
/// most by the node's spread), so without more writes the last entries of a load may stay in
/// the log for good, and a server added then gets a snapshot of part of the load and the rest
/// as entries. (CI at c962a1b: a snapshot of 11 MB of the 40 MiB loaded; the snapshot tests
/// below assume it holds everything.) Bounded: 60 s.
async fn covered_by_a_snapshot<S, P, W>(target: Option<u64>, status: impl Fn() -> S, put: P)
where
    S: Future<Output = Option<raftkv::raft::status::Status>>,
    P: Fn(String) -> W,
    W: Future<Output = u16>,
{
    let mut fillers = 0;
    wait_until(
        Duration::from_secs(60),
        "the leader's snapshot covers the load and its log is purged behind it",
        || {
            fillers += 1;
            let (status, key) = (status(), format!("filler{fillers}"));
            let put = &put;
            async move {
                let s = status.await?;
                if s.snapshot_index >= target && s.purged_index.is_some_and(|p| p > 0) {
                    return Some(());
                }
                assert_eq!(put(key.clone()).await, 204, "PUT {key}");
                None
            }
        },
    )
    .await;
}

/// Every loaded key, read locally on `node`.
async fn assert_holds_everything(c: &TestCluster, node: usize) {
    for n in 0..LOADED_KEYS {
        let (code, list) = c.get(node, &format!("k{n}"), "?consistency=local").await;
        assert_eq!(code, 200, "k{n} on n{node}");
        assert!(
            list.unwrap() == vec![loaded_value(n)],
            "k{n} on n{node} is wrong"
        );
    }
}

fn snapshot_dir(c: &TestCluster, node: usize) -> std::path::PathBuf {
    c.config(node).data_dir.join("snapshot")
}

/// Where server `node` (added or not yet) receives a snapshot.
fn incoming_of(c: &TestCluster, node: usize) -> std::path::PathBuf {
    c.dir
        .path()
        .join(format!("node{node}/snapshot/snapshot.incoming"))
}

/// Waits (polling every millisecond, bounded) until a few chunks of a snapshot were received.
async fn first_chunks_arrive(path: &std::path::Path) {
    wait_until(
        Duration::from_secs(30),
        "the first chunks arrived",
        || async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            (file_len(path) >= 4 * CHUNK as u64).then_some(())
        },
    )
    .await;
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A server added to a cluster whose state is several times the largest message catches up by a
/// snapshot sent in hundreds of chunks, holds every key, and restarts from that snapshot.
/// (Before: a snapshot travelled in one message, so a state past the largest message could never
/// reach a new server or a follower far behind.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_catches_up_by_a_snapshot_larger_than_any_message() {
    let (mut c, leader) = loaded_cluster().await;
    let new = c.add_and_catch_up(leader).await;
    let size = file_len(&snapshot_dir(&c, new).join("snapshot.bin"));
    println!("snapshot of {size} bytes; largest message {MAX_MESSAGE}, chunk {CHUNK}");
    assert!(
        size > 2 * MAX_MESSAGE as u64,
        "the snapshot must be several times the largest message"
    );
    let metrics = c.metrics(leader).await;
    let chunks = common::sample(
        &metrics,
        &format!("raftkv_raft_rpcs_total{{peer=\"{new}\",rpc=\"snapshot\",result=\"sent\"}}"),
    )
    .unwrap_or(0.0);
    println!("{chunks} InstallSnapshot chunks sent to n{new}");
    assert!(chunks >= (size / CHUNK as u64) as f64, "sent in chunks");
    // Each step is counted and timed where an operator looks (GET /metrics).
    let steps = |text: &str, phase: &str| {
        common::sample(
            text,
            &format!("raftkv_snapshots_total{{phase=\"{phase}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let learner = c.metrics(new).await;
    for (text, phase) in [
        (&metrics, "build"),
        (&metrics, "send"),
        (&learner, "receive"),
        (&learner, "install"),
    ] {
        assert!(steps(text, phase) >= 1.0, "no {phase} step counted");
    }
    assert_holds_everything(&c, new).await;

    // A restart reads the multi-chunk snapshot back from disk.
    c.kill(new).await;
    c.restart(new).await;
    c.caught_up(leader, new).await;
    assert_holds_everything(&c, new).await;
    c.shutdown().await;
}

/// A transfer cut mid-way leaves a half-received file that is never installed; once the link is
/// back the transfer starts over and completes. Then the same with the sender killed mid-way: the
/// next leader sends its own snapshot from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_transfer_cut_or_orphaned_midway_starts_over_and_never_installs_half() {
    let (mut c, leader) = loaded_cluster().await;
    let new = c.cluster.len();
    let (raft_addr, http_addr) = common::fresh_addrs();

    // The link is cut as soon as a few chunks arrived (polled every millisecond, bounded).
    let faults = c.cluster.fault_table();
    let path = incoming_of(&c, new);
    let ((), added) = tokio::join!(
        async {
            first_chunks_arrive(&path).await;
            faults.cut(leader as u64, new as u64);
        },
        c.cluster.add(raft_addr, http_addr)
    );
    assert_eq!(added.expect("add"), new);
    let partial = file_len(&incoming_of(&c, new));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = c.status(new).await.expect("the new server answers");
    println!("cut with {partial} bytes received: {s:?}");
    assert_eq!(
        (s.snapshot_index, s.last_applied),
        (None, None),
        "half a snapshot was installed"
    );
    assert_eq!(c.get(new, "k0", "?consistency=local").await.0, 404);

    c.cluster.heal().await;
    c.caught_up(leader, new).await;
    assert_holds_everything(&c, new).await;
    assert!(
        !incoming_of(&c, new).exists(),
        "the received file became the snapshot"
    );

    // The sender killed mid-way: a second server, the leader killed once chunks arrive.
    let second = c.cluster.len();
    let (raft_addr, http_addr) = common::fresh_addrs();
    let path = incoming_of(&c, second);
    let ((), added) = tokio::join!(
        first_chunks_arrive(&path),
        c.cluster.add(raft_addr, http_addr)
    );
    added.expect("add");
    c.kill(leader).await;
    let live: Vec<usize> = (0..3).filter(|n| *n != leader).collect();
    let next = wait_until(ELECTION, "a new leader", || c.leader_among(&live, 0)).await;
    c.caught_up(next, second).await;
    assert_holds_everything(&c, second).await;
    c.shutdown().await;
}

/// A `raftkv node` process that is killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process's peak resident memory (VmHWM), from /proc.
fn peak_rss(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmHWM:")
}

fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a line of /proc/PID/status");
    kib << 10
}

/// Receiving a snapshot costs the state, not copies of it (before: the whole snapshot arrived as
/// one frame, was copied out of the frame, into a file image, encoded again for the file and
/// decoded, several copies at once). Three `raftkv node` processes hold 40 MiB of values and the
/// leader's snapshot covers all of it; a fourth joins and catches up by that snapshot in 64 KiB
/// chunks. Its peak RSS (VmHWM) must stay under an idle node's plus twice the data loaded.
/// Measured with release builds: 100-105 MiB against a bound of 121; the one-frame transfer
/// (6555c45) peaked at 188-196 MiB in this test. Debug builds here: 101-103 MiB against 137; 140
/// once in CI when the snapshot held only 17 MiB and the other 23 came as log entries, which
/// the learner holds in its log cache as well as in the state (hence `covered_by_a_snapshot`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_receiving_a_snapshot_needs_the_state_plus_a_chunk_of_memory() {
    use raftkv::harness::{Nodes, Processes};
    const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
    let dir = tempfile::TempDir::new().unwrap();
    let mut nodes = Processes::new(
        std::path::Path::new(BIN),
        dir.path(),
        common::free_ports(3),
        common::free_ports(3),
    );
    nodes.extra = [
        "--snapshot-chunk",
        "64",
        "--max-message",
        "8",
        "--snapshot-every",
        "20",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..3 {
        nodes.start(i).expect("spawn raftkv");
    }
    let client = nodes.client(&reqwest::Client::new());
    let leader = wait_until(ELECTION, "a leader", || client.leader_among(&[0, 1, 2], 0)).await;
    let idle = peak_rss(nodes.child(0).expect("running").id());
    for wave in 0..LOADED_KEYS / 16 {
        let puts = (0..16).map(|i| {
            let (client, n) = (&client, wave * 16 + i);
            let body = serde_json::json!({"type": "PUT", "value": [loaded_value(n)]}).to_string();
            async move { (client.post(leader, &format!("k{n}"), &body).await, n) }
        });
        for (answer, n) in futures::future::join_all(puts).await {
            assert_eq!(answer.expect("HTTP").0, 204, "PUT k{n}");
        }
    }
    let target = client.status(leader).await.unwrap().commit_index;
    covered_by_a_snapshot(
        target,
        || client.status(leader),
        |key| {
            let client = &client;
            async move {
                let body = serde_json::json!({"type": "PUT", "value": ["."]}).to_string();
                client.post(leader, &key, &body).await.expect("HTTP").0
            }
        },
    )
    .await;

    let ports = common::free_ports(2);
    let learner_dir = dir.path().join("learner");
    let learner = Child(
        std::process::Command::new(BIN)
            .arg("node")
            .arg(ports[1].to_string())
            .arg(format!("127.0.0.1:{}", ports[0]))
            .arg("--join")
            .arg(client.url(leader, ""))
            .arg("--data-dir")
            .arg(&learner_dir)
            .args(&nodes.extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("learner.log")).unwrap())
            .spawn()
            .expect("spawn the learner"),
    );
    let status_url = format!("http://127.0.0.1:{}/admin/status", ports[1]);
    wait_until(Duration::from_secs(60), "the learner caught up", || async {
        let s: raftkv::raft::status::Status =
            reqwest::get(&status_url).await.ok()?.json().await.ok()?;
        (s.snapshot_index.is_some() && s.last_applied >= target).then_some(())
    })
    .await;
    let snapshot = file_len(&learner_dir.join("snapshot/snapshot.bin"));
    let peak = peak_rss(learner.0.id());
    let loaded = (LOADED_KEYS << 18) as u64;
    let bound = idle + 2 * loaded;
    println!(
        "learner: peak RSS {} MiB receiving a {} MiB snapshot of {} MiB loaded; an idle node \
         {} MiB; bound {} MiB",
        peak >> 20,
        snapshot >> 20,
        loaded >> 20,
        idle >> 20,
        bound >> 20
    );
    assert!(
        snapshot > 2 * MAX_MESSAGE as u64,
        "a state of several messages"
    );
    assert!(peak < bound, "peak RSS {peak} above {bound}");
}
