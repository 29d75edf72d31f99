//! The flight recorder, end to end: a real `raftkv lab` process records a minute with kills, a
//! partition and client requests while this test watches `GET /lab/state`; then the lab is
//! killed with SIGKILL and `raftkv lab --replay DIR --headless --at T` must show, at every leader
//! change the test saw live, exactly the state the lab published then. The safety panel checked
//! all five properties along the way and found no violation.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::free_port_block;
use raftkv::lab::LabState;
use tokio::process::Command;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
/// How long the recorded session lasts.
const SESSION: Duration = Duration::from_secs(60);

/// The leader with a quorum and its term, as the dashboard names it.
fn leader(state: &LabState) -> Option<(u64, u64)> {
    state.leader().map(|s| (s.id, s.term))
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: serde_json::Value) {
    let response = http
        .post(format!("{base}{path}"))
        .json(&body)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .unwrap();
    println!("{path}: {}", response.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_minute_replays_to_the_states_seen_live_at_every_leader_change() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_port_block(11);
    let base = format!("http://127.0.0.1:{}", ports[10]);
    let mut lab = Command::new(BIN)
        .args(["lab", "--headless", "--fresh", "--data-dir"])
        .arg(dir.path())
        .args(["--raft-port", &ports[0].to_string()])
        .args(["--http-port", &ports[5].to_string()])
        .args(["--control", &format!("127.0.0.1:{}", ports[10])])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();

    // Watch the published state; remember it at every leader change. Drive the session from a
    // script of (second, command) while watching.
    let script: Vec<(u64, &str, serde_json::Value)> = vec![
        (8, "/lab/nodes/LEADER/kill", serde_json::json!({})),
        (18, "/lab/nodes/KILLED/restart", serde_json::json!({})),
        (26, "/lab/nodes/LEADER/isolate", serde_json::json!({})),
        (38, "/lab/heal", serde_json::json!({})),
        (44, "/lab/nodes/LEADER/kill", serde_json::json!({})),
        (52, "/lab/nodes/KILLED/restart", serde_json::json!({})),
    ];
    let mut next = 0;
    let mut killed = None;
    let mut seen: Vec<LabState> = Vec::new();
    let mut last_leader = None;
    let mut requests = 0;
    let start = Instant::now();
    while start.elapsed() < SESSION {
        let Ok(response) = http
            .get(format!("{base}/lab/state"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state: LabState = response.json().await.unwrap();
        if leader(&state) != last_leader && leader(&state).is_some() {
            last_leader = leader(&state);
            seen.push(state.clone());
        }
        let secs = start.elapsed().as_secs();
        if let Some((at, path, body)) = script.get(next).filter(|(at, ..)| secs >= *at) {
            let Some((id, _)) = leader(&state) else {
                continue; // wait for a leader to act on
            };
            let path = path
                .replace("LEADER", &id.to_string())
                .replace("KILLED", &killed.unwrap_or(id).to_string());
            if path.ends_with("/kill") {
                killed = Some(id);
            }
            println!("{at}s: {path}");
            post(&http, &base, &path, body.clone()).await;
            next += 1;
        }
        if secs * 2 > requests {
            requests += 1;
            let body = serde_json::json!({"key": "k", "value": format!("v{requests}")});
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move { post(&http, &base, "/lab/request", body).await });
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let last_live = seen.last().map_or(0, |s| s.uptime_ms);
    let end: LabState = http
        .get(format!("{base}/lab/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let end_ms = end.uptime_ms;
    // A real run with kills and a partition: every property checked, none violated.
    for verdict in &end.safety.verdicts {
        println!("{}: {} checked, {:?}", verdict.property, verdict.checked, verdict.violation);
        assert!(verdict.holds(), "{verdict:?}");
        assert!(verdict.checked > 0, "{} was never checked", verdict.property);
    }
    assert_eq!(end.safety.verdicts.len(), 5);
    lab.start_kill().unwrap(); // SIGKILL: the recorder gets no chance to finish
    lab.wait().await.unwrap();
    assert_eq!(next, script.len(), "the whole script ran");
    assert!(seen.len() >= 4, "leader changes seen live: {}", seen.len());
    println!(
        "{} leader changes seen live, last at {last_live} ms",
        seen.len()
    );

    // All but the last second survived the kill.
    let out = replay(dir.path(), &[]).await;
    let last_line = out.lines().last().unwrap_or_default().to_string();
    let end = replay(dir.path(), &["--at", &format!("{}ms", end_ms - 1000)]).await;
    assert!(end.contains("\"nodes\""), "state near the end: {end:.300}");

    for live in &seen {
        let at = format!("{}ms", live.uptime_ms);
        let replayed: LabState = serde_json::from_str(&replay(dir.path(), &["--at", &at]).await)
            .unwrap_or_else(|e| panic!("replay at {at}: {e}"));
        assert_eq!(replayed.replay.as_ref().map(|_| ()), Some(()));
        let mut replayed = replayed;
        replayed.replay = None;
        assert_eq!(leader(&replayed), leader(live), "the leader at {at}");
        assert_eq!(replayed.nodes, live.nodes, "the nodes at {at}");
        assert_eq!(replayed.kv, live.kv, "the key/value contents at {at}");
        assert_eq!(replayed.timeline, live.timeline, "the timeline at {at}");
        assert_eq!(replayed, *live, "the whole state at {at}");
    }
    println!("last timeline line of the replay: {last_line}");
}

/// `raftkv lab --replay DIR --headless ARGS…`; its stdout (it must succeed).
async fn replay(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["lab", "--headless", "--replay"])
        .arg(dir)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "replay {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
