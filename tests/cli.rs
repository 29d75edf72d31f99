//! The command-line client against a live cluster: put, append, get (text and JSON), status, and
//! the exit codes scripts rely on: 4 for a missing key, 3 when no endpoint can serve (nothing
//! applied), 6 for a refused request; a dead first endpoint is skipped.

mod common;

use std::time::Duration;

use common::{TestCluster, free_ports, wait_until};
use raftkv::client::exit;

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
