//! Per-process mode, as the bin/ scripts run it: five `raftkv node` processes on loopback.
//! `kill -9` of every process at once loses no acknowledged write, and a data directory refuses
//! to start under a different identity or with its Raft log gone.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_ports, wait_until};
use raftkv::harness::{NodeClient, Nodes, Processes};
use raftkv::raft::status::{Role, Status};
use tempfile::TempDir;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
const WAIT: Duration = Duration::from_secs(20);

/// Per-process nodes in a temporary directory, through the shared harness.
struct Procs {
    dir: TempDir,
    nodes: Processes,
    client: NodeClient,
}

impl Procs {
    fn new(n: usize) -> Procs {
        let dir = TempDir::new().unwrap();
        let nodes = Processes::new(Path::new(BIN), dir.path(), free_ports(n), free_ports(n));
        let client = nodes.client(&reqwest::Client::new());
        Procs { dir, nodes, client }
    }

    fn start(&mut self, i: usize) {
        self.nodes.start(i).expect("spawn raftkv");
    }

    /// SIGKILL (the harness's kill of a per-process node).
    async fn kill9(&mut self, i: usize) {
        self.nodes.kill(i).await;
    }

    async fn status(&self, i: usize) -> Option<Status> {
        self.client.status(i).await
    }

    /// A linearizable read of `key` through node `i`; panics unless the node answers a list.
    async fn read(&self, i: usize, key: &str) -> Vec<String> {
        match self.client.get(i, key, "").await {
            Ok((200, Some(list))) => list,
            other => panic!("read {key} on node {i}: {other:?}"),
        }
    }

    async fn leader(&self) -> usize {
        let all: Vec<usize> = (0..Nodes::len(&self.nodes)).collect();
        wait_until(WAIT, "a leader with a quorum", || {
            self.client.leader_among(&all, 0)
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_all_five_loses_no_acknowledged_write() {
    let mut procs = Procs::new(5);
    for i in 0..5 {
        procs.start(i);
    }
    procs.leader().await;

    // Eight clients append unique values through all five nodes for a bounded time and count.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for c in 0..8usize {
        let (acked, client, http) = (
            acked.clone(),
            procs.client.http.clone(),
            procs.nodes.http.clone(),
        );
        clients.push(tokio::spawn(async move {
            for n in 0..10_000usize {
                if Instant::now() >= deadline {
                    break;
                }
                let key = format!("k{}", n % 4);
                let value = format!("c{c}-{n}");
                let url = format!("http://127.0.0.1:{}/keys/{key}", http[(c + n) % 5]);
                let body = serde_json::json!({"type": "APPEND", "value": value});
                let resp = client
                    .post(url)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if resp.is_ok_and(|r| r.status() == 204) {
                    acked.lock().unwrap().push((key, value));
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the clients got only {} acknowledgements",
        acked.len()
    );

    for i in 0..5 {
        procs.kill9(i).await;
    }
    for i in 0..5 {
        procs.start(i);
    }
    let leader = procs.leader().await;
    for key in ["k0", "k1", "k2", "k3"] {
        let list = procs.read(leader, key).await;
        let present: HashSet<&String> = list.iter().collect();
        assert_eq!(
            present.len(),
            list.len(),
            "a value was applied twice in {key}"
        );
        for (k, v) in acked.iter().filter(|(k, _)| k == key) {
            assert!(
                present.contains(v),
                "acknowledged {k} += {v} was lost after kill -9"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_refuses_another_identity_or_a_lost_log() {
    let mut procs = Procs::new(3);
    // These nodes also talk through authenticated, encrypted connections, set up from the
    // command line as a user would.
    let secret = procs.dir.path().join("cluster.secret");
    std::fs::write(&secret, "a secret for this test only\n").unwrap();
    procs.nodes.extra = vec!["--cluster-secret-file".into(), secret.display().to_string()];
    for i in 0..3 {
        procs.start(i);
    }
    procs.leader().await;
    // Node 2 must have Raft state of its own before the crash, or losing its log loses nothing
    // and a restart is rightly allowed: wait until it applied the leader's first entry.
    wait_until(WAIT, "node 2 has applied an entry", || async {
        procs
            .status(2)
            .await
            .and_then(|s| s.last_applied)
            .filter(|i| *i >= 1)
    })
    .await;
    for i in 0..3 {
        procs.kill9(i).await;
    }
    // Same data dir, different peer list: ids would change meaning.
    let raft = procs.nodes.raft.clone();
    let out = exit_within(
        procs
            .nodes
            .command_with_peers(0, &[raft[1], raft[2] + 1000]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("belongs to node 0"),
        "{stderr}"
    );
    // The Raft log is gone but the identity remains: rejoining under the same id is refused.
    std::fs::remove_dir_all(procs.nodes.data_dir(2).join("raft-log")).unwrap();
    let out = exit_within(procs.nodes.command_with_peers(2, &[raft[0], raft[1]]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("log and vote are gone"),
        "{stderr}"
    );
}

/// Runs a node that must refuse to start; if it runs instead, kills it after `WAIT` and fails
/// rather than waiting forever.
fn exit_within(mut cmd: Command) -> Output {
    let child = cmd.stderr(Stdio::piped()).spawn().expect("spawn raftkv");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.expect("wait for raftkv"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("the node was still running after {WAIT:?}: it should have refused to start");
        }
    }
}

/// Sends a signal to a node process (SIGSTOP freezes it like a long GC pause; SIGCONT resumes).
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} failed");
}

/// Freezes a follower for three election timeouts, resumes it, and returns the leader's term
/// before and after (once the resumed follower follows a leader with a quorum again).
async fn freeze_a_follower(pre_vote: bool) -> (u64, u64, usize, usize) {
    let mut procs = Procs::new(5);
    procs.nodes.extra = ["--heartbeat", "50", "--election-timeout", "300..600"]
        .map(String::from)
        .to_vec();
    if !pre_vote {
        procs.nodes.extra.push("--no-pre-vote".into());
    }
    for i in 0..5 {
        procs.start(i);
    }
    let leader = procs.leader().await;
    let before = procs.status(leader).await.unwrap().term;
    let follower = (leader + 1) % 5;
    signal(procs.nodes.child(follower).unwrap(), "STOP");
    // The fault itself lasts a fixed time: long enough for the frozen node's election timer
    // (lease 600 ms + up to 600 ms) to expire several times over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(procs.nodes.child(follower).unwrap(), "CONT");
    let after = wait_until(
        WAIT,
        "the resumed follower follows a leader with a quorum",
        || async {
            let s = procs.status(follower).await?;
            let l = procs.status(s.leader_id? as usize).await?;
            (s.role == Role::Follower
                && s.heard_from_leader
                && l.role == Role::Leader
                && l.has_quorum
                && l.term == s.term)
                .then_some(l)
        },
    )
    .await;
    (before, after.term, leader, after.id as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pre_vote_a_frozen_follower_returns_without_disturbing_the_leader() {
    let (before, after, old_leader, new_leader) = freeze_a_follower(true).await;
    assert_eq!(
        (after, new_leader),
        (before, old_leader),
        "pre-vote must keep the term and the leader"
    );
}

/// SIGTERM, then waits (bounded) for the process to exit; true if it exited cleanly.
async fn terminate(procs: &mut Procs, i: usize) -> bool {
    let Some(mut child) = procs.nodes.take(i) else {
        return false;
    };
    signal(&child, "TERM");
    let status = wait_until(WAIT, "the node exits after SIGTERM", || {
        let exited = child.try_wait().ok().flatten();
        async move { exited }
    })
    .await;
    status.success()
}

/// A rolling restart with SIGTERM, the leader included, under a steady write load through the
/// nodes that stay up: every write is acknowledged (none fails or times out), every node exits
/// cleanly, and every acknowledged write is there at the end. A stopping leader hands over
/// leadership first, so the writes never wait out an election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_with_sigterm_fails_no_write() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut procs = Procs::new(5);
    // No longer than a leader's lease plus an election timeout (1 s + 0.5..1 s): a leader that
    // just vanished would make writes fail; one that hands over first must not.
    procs.nodes.extra = ["--request-timeout", "1500", "--log-format", "json"]
        .map(String::from)
        .to_vec();
    for i in 0..5 {
        procs.start(i);
    }
    procs.leader().await;
    // The node being restarted (5: none), and how many requests each node has in flight.
    let restarting = Arc::new(AtomicUsize::new(5));
    let in_flight: Arc<Vec<AtomicUsize>> = Arc::new((0..5).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<String>>> = Default::default();
    let failed: Arc<Mutex<Vec<String>>> = Default::default();
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (restarting, in_flight, stop) = (restarting.clone(), in_flight.clone(), stop.clone());
        let (acked, failed, http) = (acked.clone(), failed.clone(), procs.nodes.http.clone());
        let client = procs.client.http.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..100_000usize {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut node = (w + n) % 5;
                in_flight[node].fetch_add(1, Ordering::SeqCst);
                if node == restarting.load(Ordering::SeqCst) {
                    in_flight[node].fetch_sub(1, Ordering::SeqCst);
                    node = (node + 1) % 5;
                    in_flight[node].fetch_add(1, Ordering::SeqCst);
                }
                let value = format!("w{w}-{n}");
                let resp = client
                    .post(format!("http://127.0.0.1:{}/keys/r", http[node]))
                    .json(&serde_json::json!({"type": "APPEND", "value": value}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                in_flight[node].fetch_sub(1, Ordering::SeqCst);
                match resp {
                    Ok(r) if r.status() == 204 => acked.lock().unwrap().push(value),
                    Ok(r) => {
                        let code = r.status();
                        let text = r.text().await.unwrap_or_default();
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("n{node} {value}: {code} {text}"));
                    }
                    Err(e) => failed.lock().unwrap().push(format!("n{node} {value}: {e}")),
                }
            }
        }));
    }
    for i in 0..5 {
        // Steer new requests away from node i, let its in-flight ones finish, then stop it.
        restarting.store(i, Ordering::SeqCst);
        wait_until(WAIT, "no request in flight to the node", || async {
            (in_flight[i].load(Ordering::SeqCst) == 0).then_some(())
        })
        .await;
        assert!(
            terminate(&mut procs, i).await,
            "node {i} exited with an error"
        );
        procs.start(i);
        wait_until(
            WAIT,
            "the restarted node follows a leader again",
            || async {
                let s = procs.status(i).await?;
                (s.leader_id.is_some() && s.heard_from_leader).then_some(())
            },
        )
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} writes failed: {failed:?}",
        failed.len()
    );
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "only {} writes went through",
        acked.len()
    );
    let leader = procs.leader().await;
    let list = procs.read(leader, "r").await;
    for v in &acked {
        assert!(list.contains(v), "acknowledged {v} is missing");
    }
    // Leader changes are logged at info, one JSON object per line.
    let log = std::fs::read_to_string(procs.nodes.log(leader)).unwrap();
    let elected = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "leader elected")
        .count();
    assert!(elected >= 1, "no 'leader elected' JSON line in:\n{log}");
}

/// `raftkv bench --fault` against real processes (it sends the signals itself): catch-up pauses a
/// follower until 300 writes are acknowledged and sees it match the leader after resuming; failover
/// kills the leader and sees a new leader and a write sent after the kill acknowledged. No timing
/// is asserted (figures come from bench/compare.sh), only that each event was observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_times_a_catch_up_and_a_failover_of_real_processes() {
    use raftkv::bench::{Config, Fault, System, Workload, run};
    let mut procs = Procs::new(3);
    for i in 0..3 {
        procs.start(i);
    }
    procs.leader().await;
    let config = Config {
        system: System::Raftkv,
        endpoints: procs.client.bases.clone(),
        workload: Workload::Put,
        connections: 4,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(6),
        rate: 0,
        keys: 20,
        value_bytes: 16,
        preload: 0,
        fault: Some(Fault::CatchUp),
        pids: (0..3)
            .filter_map(|i| procs.nodes.child(i))
            .map(Child::id)
            .collect(),
        behind: 300,
        trust: Default::default(),
    };
    let report = run(config.clone()).await.unwrap();
    println!("{}", report.text());
    let fault = report.fault.unwrap();
    assert!(fault.behind.unwrap() >= 300, "{fault:?}");
    let entries = fault.behind_entries.unwrap();
    assert!(entries >= 1, "{fault:?}");
    assert!(fault.catch_up_ms.is_some());
    let resumed = procs
        .status(fault.node)
        .await
        .expect("the follower was resumed");
    assert!(resumed.last_applied.unwrap() >= entries);

    let report = run(Config {
        fault: Some(Fault::Failover),
        ..config
    })
    .await
    .unwrap();
    println!("{}", report.text());
    let fault = report.fault.unwrap();
    assert!(fault.new_leader_ms.is_some() && fault.first_write_ms.is_some());
    assert!(
        procs.status(fault.node).await.is_none(),
        "the leader was killed"
    );
    assert_eq!(fault.timeline.iter().sum::<u64>(), report.ops);
}
