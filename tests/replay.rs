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
        println!(
            "{}: {} checked, {:?}",
            verdict.property, verdict.checked, verdict.violation
        );
        assert!(verdict.holds(), "{verdict:?}");
        assert!(
            verdict.checked > 0,
            "{} was never checked",
            verdict.property
        );
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

/// A stepped election, recorded and exported: the Lamport diagram has one arrow for each message
/// the trace says was delivered, between the same nodes and of the same kind, and a dashed answer
/// for each one answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lamport_diagram_of_a_stepped_election_has_an_arrow_for_every_delivered_message() {
    use raftkv::lab::LabCommand;
    use raftkv::lab::recorder::Recorder;
    use raftkv::lab::trace::Record;
    use raftkv::observe::Fate;

    let dir = tempfile::tempdir().unwrap();
    let ports = free_port_block(10);
    let configs = raftkv::cluster::loopback_configs(
        &ports[..5],
        &ports[5..],
        &dir.path().join("nodes"),
        common::timing(),
    );
    let cluster = raftkv::cluster::Cluster::start_paused(configs)
        .await
        .unwrap();
    let trace = dir.path().join("trace");
    let recorder = Recorder::start(&trace, 1 << 24).unwrap();
    let (lab, engine) = raftkv::lab::spawn_recording(cluster, Some(recorder)).await;
    lab.run(LabCommand::TimeOut { id: 2 }).await.unwrap();
    // Deliver the oldest held message until nothing is held and n2 leads (bounded).
    for _ in 0..100 {
        let state = lab.state();
        if state.held.is_empty() && state.leader().is_some_and(|s| s.id == 2) {
            break;
        }
        lab.run(LabCommand::Step).await.unwrap();
    }
    assert!(
        lab.state().leader().is_some_and(|s| s.id == 2),
        "n2 was elected"
    );
    drop(lab); // the engine stops, the recorder with it: the writer flushes and ends
    engine.await.unwrap();

    let replay = raftkv::lab::replay::Replay::open(&trace).unwrap();
    let mut delivered = Vec::new();
    let mut answered = 0;
    for record in replay.records() {
        if let Record::Message { event, .. } = record
            && let Fate::Answered { .. } = event.fate
        {
            delivered.push((event.from, event.to, format!("{:?}", event.rpc)));
            answered += usize::from(event.reply.is_some());
        }
    }
    assert!(
        delivered.len() >= 8,
        "an election's worth of messages: {delivered:?}"
    );
    let out = dir.path().join("pictures");
    let (first, last) = replay.span();
    let written = raftkv::lab::export::export(replay.records(), &out, first, last).unwrap();
    assert_eq!(written.len(), 2);

    let svg = std::fs::read_to_string(out.join("lamport.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let mut arrows = Vec::new();
    let mut replies = 0;
    for group in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("message"))
    {
        if group.attribute("data-fate") != Some("delivered") {
            continue;
        }
        let line = group
            .children()
            .find(|c| c.attribute("class") == Some("request"))
            .expect("a message group draws its request");
        assert_eq!(line.attribute("marker-end"), Some("url(#head)"));
        let y = |a: &str| line.attribute(a).unwrap().parse::<f64>().unwrap();
        assert!(y("y2") > y("y1"), "time flows down: delivered after sent");
        replies += group
            .children()
            .filter(|c| c.attribute("class") == Some("reply"))
            .count();
        let attr = |a: &str| group.attribute(a).unwrap().to_string();
        arrows.push((
            attr("data-from").parse::<u64>().unwrap(),
            attr("data-to").parse::<u64>().unwrap(),
            attr("data-kind"),
        ));
    }
    delivered.sort();
    arrows.sort();
    assert_eq!(arrows, delivered, "one arrow per delivered message");
    assert_eq!(replies, answered, "one dashed answer per answered message");
    assert!(
        svg.contains("n2 leader of term"),
        "the leader change is drawn"
    );
    let series = std::fs::read_to_string(out.join("timeseries.svg")).unwrap();
    roxmltree::Document::parse(&series).unwrap();
}

/// The safety panel has teeth on a live cluster too: a made-up AppendEntries from a second node
/// in the leader's term (two leaders in one term) turns Election Safety red, pauses the cluster
/// and says so in the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violation_seen_live_pauses_the_cluster_and_names_the_offending_messages() {
    use raftkv::observe::{Event, Fate, Rpc};

    let dir = tempfile::tempdir().unwrap();
    let ports = free_port_block(10);
    let configs =
        raftkv::cluster::loopback_configs(&ports[..5], &ports[5..], dir.path(), common::timing());
    let cluster = raftkv::cluster::Cluster::start(configs).await.unwrap();
    let observer = cluster.observer();
    let (lab, _engine) = raftkv::lab::spawn(cluster).await;
    let (leader, term) = common::wait_until(Duration::from_secs(20), "a leader", || async {
        lab.state().leader().map(|s| (s.id, s.term))
    })
    .await;
    assert!(!lab.state().paused);
    let impostor = (leader + 1) % 5;
    observer.emit(Event {
        from: impostor,
        to: leader,
        rpc: Rpc::Heartbeat,
        term,
        entries: 0,
        fate: Fate::Answered { granted: None },
        fields: None,
        reply: None,
        legs: None,
    });
    let state = common::wait_until(Duration::from_secs(10), "the lab pauses", || async {
        let state = lab.state();
        state.paused.then_some(state)
    })
    .await;
    let verdict = &state.safety.verdicts[0];
    assert_eq!(verdict.property, "Election Safety");
    let (_, text) = verdict.violation.clone().expect("Election Safety is red");
    assert!(
        text.contains(&format!("two leaders in term {term}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("n{impostor} sent Heartbeat")),
        "{text}"
    );
    assert!(
        state
            .timeline
            .iter()
            .any(|e| e.text.starts_with("SAFETY VIOLATION")),
        "the timeline says so"
    );
    assert!(
        state.safety.verdicts[1..].iter().all(|v| v.holds()),
        "only that one"
    );
    lab.run(raftkv::lab::LabCommand::Resume).await.unwrap();
}
