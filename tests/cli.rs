//! The command-line client against a live cluster: put, append, get (text and JSON), status, and
//! the exit codes scripts rely on: 4 for a missing key, 3 when no endpoint can serve (nothing
//! applied), 6 for a refused request; a dead first endpoint is skipped.

mod common;

use std::time::Duration;

use common::{TestCluster, free_ports, wait_until};
use raftkv::client::exit;
use raftkv::raft::status::{Role, Status};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// Runs `raftkv ARGS --endpoints ENDPOINTS`; returns (exit code, stdout, stderr).
async fn run(endpoints: &[String], args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .arg("--endpoints")
        .arg(endpoints.join(","))
        .arg("--timeout")
        .arg("8000")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the client finishes")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_finds_a_live_node_and_its_exit_codes_mean_what_they_say() {
    let mut c = TestCluster::start(3, |_| {}).await;
    let (leader, _) = c.leader(Duration::from_secs(20)).await;
    let endpoints: Vec<String> = (0..3).map(|i| c.url(i, "")).collect();

    assert_eq!(run(&endpoints, &["put", "k", "a", "b"]).await.0, exit::OK);
    assert_eq!(run(&endpoints, &["append", "k", "c"]).await.0, exit::OK);
    let (code, out, _) = run(&endpoints, &["get", "k"]).await;
    assert_eq!((code, out.as_str()), (exit::OK, "a\nb\nc"));
    let (code, out, _) = run(&endpoints, &["get", "k", "--json"]).await;
    assert_eq!(code, exit::OK);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&out).unwrap(),
        ["a", "b", "c"]
    );
    let (code, _, err) = run(&endpoints, &["get", "missing"]).await;
    assert_eq!(code, exit::NOT_FOUND, "{err}");
    let long = "k".repeat(raftkv::api::MAX_KEY_BYTES + 1);
    let (code, _, err) = run(&endpoints, &["append", &long, "x"]).await;
    assert_eq!(code, exit::REFUSED, "{err}");

    let (code, out, _) = run(&endpoints, &["status"]).await;
    assert_eq!(code, exit::OK, "{out}");
    assert_eq!(out.lines().count(), 4, "a header and three nodes:\n{out}");
    assert_eq!(out.matches(" leader ").count(), 1, "{out}");
    let (_, out, _) = run(&endpoints, &["status", "--json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 3);

    // The first endpoint dies (the leader, even): the client moves on to a live node.
    let mut order = endpoints.clone();
    order.swap(0, leader);
    c.kill(leader).await;
    c.leader(Duration::from_secs(20)).await;
    let (code, out, err) = run(&order, &["append", "k", "d"]).await;
    assert_eq!(code, exit::OK, "{out} {err}");
    let (code, out, _) = run(&order, &["get", "k"]).await;
    assert_eq!((code, out.as_str()), (exit::OK, "a\nb\nc\nd"));
    let (code, out, _) = run(&order, &["status"]).await;
    assert_eq!(code, exit::OK);
    assert!(out.contains("down"), "{out}");

    // Nobody listening anywhere: unavailable, and it says nothing was applied.
    let nowhere: Vec<String> = free_ports(2)
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let (code, _, err) = run(&nowhere, &["append", "k", "lost"]).await;
    assert_eq!(code, exit::UNAVAILABLE, "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    let (code, _, _) = run(&nowhere, &["status"]).await;
    assert_eq!(code, exit::UNAVAILABLE);
    wait_until(
        Duration::from_secs(5),
        "the cluster still serves",
        || async { (c.get((leader + 1) % 3, "k", "").await.1?.len() == 4).then_some(()) },
    )
    .await;
    c.shutdown().await;
}

/// A server process started with `--join` next to an in-process cluster, removed again by the
/// CLI. The `member add` beforehand (etcd's order) and `--join` agree on the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_verbs_and_a_server_process_started_with_join() {
    let c = TestCluster::start(3, |_| {}).await;
    let (leader, _) = c.leader(Duration::from_secs(20)).await;
    assert_eq!(c.append(leader, "k", "v").await, 204);
    let endpoints: Vec<String> = (0..3).map(|i| c.url(i, "")).collect();
    let ports = free_ports(2);
    let raft_addr = format!("127.0.0.1:{}", ports[0]);

    let (code, out, err) = run(&endpoints, &["member", "add", &raft_addr]).await;
    assert_eq!(code, exit::OK, "{err}");
    assert!(out.starts_with("node 3 "), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let _node = tokio::process::Command::new(BIN)
        .args(["node", &ports[1].to_string(), &raft_addr, "--join"])
        .arg(endpoints.join(","))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{}", ports[1]);
    let http = reqwest::Client::new();
    wait_until(
        Duration::from_secs(30),
        "the joined server applied k",
        || async {
            let s: Status = http
                .get(format!("{url}/admin/status"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (s.id == 3 && s.role == Role::Learner && s.keys == 1).then_some(())
        },
    )
    .await;

    let (code, out, err) = run(&endpoints, &["member", "promote", "3"]).await;
    assert_eq!(
        (code, out.as_str()),
        (exit::OK, "node 3 is a voter"),
        "{err}"
    );
    let (code, _, err) = run(&endpoints, &["member", "promote", "9"]).await;
    assert_eq!(code, exit::REFUSED, "{err}");
    assert!(err.contains("not a member"), "{err}");
    let (code, out, err) = run(&endpoints, &["member", "remove", "3", "--json"]).await;
    assert_eq!((code, out.as_str()), (exit::OK, r#"{"id":3}"#), "{err}");
    let s = c.status(leader).await.unwrap();
    assert_eq!(s.members.len(), 3, "{:?}", s.members);
    let logged = std::fs::read_to_string(dir.path().join("node.log")).unwrap();
    assert!(
        logged.contains("added to the cluster as a learner"),
        "{logged}"
    );
    c.shutdown().await;
}
