//! The assignment's two-computer partition, on one machine: two network namespaces joined by a
//! veth pair, servers 0-2 started by `bin/partition/create_server_partitionN.sh IP1 IP2` in the
//! first, 3-4 in the second. Cutting the link must leave the majority acknowledging writes and the
//! minority acknowledging none; restoring it must bring every node to the same state with every
//! acknowledged write and none of the refused ones. Run with the leader first on the majority's
//! side, then on the minority's. Needs root and `ip netns`; without them it says why and skips.

use std::path::Path;
use std::time::{Duration, Instant};

use raftkv::harness::netns::{FIRST, Net, SECOND, Servers};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WAIT: Duration = Duration::from_secs(30);

fn append(net: &Net, s: usize, key: &str, value: &str) -> u16 {
    let body = serde_json::json!({"type": "APPEND", "value": value}).to_string();
    net.http(s, "POST", &format!("/keys/{key}"), Some(&body)).0
}

/// Polls `probe` until it returns `Some`, for at most `WAIT`.
fn wait<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn partition_case(leader_on_minority: bool) {
    let net = match Net::create(if leader_on_minority { 'm' } else { 'j' }) {
        Ok(net) => net,
        Err(why) => {
            println!("SKIPPED: network namespaces are not available here ({why})");
            return;
        }
    };
    let mut servers = Servers::new(Path::new(BIN), &Path::new(ROOT).join("bin/partition")).unwrap();
    for s in 0..5 {
        servers.start(&net, s).unwrap();
    }
    let all = [0, 1, 2, 3, 4];
    let (first, second) = (FIRST, SECOND);
    // Move leadership to the wanted side by crashing leaders on the other side (bounded).
    let wanted: &[usize] = if leader_on_minority { &second } else { &first };
    let mut tries = 0;
    let first_leader = loop {
        let l = wait("a leader with a quorum", || net.leader(&all));
        if wanted.contains(&l) {
            break l;
        }
        tries += 1;
        assert!(tries <= 20, "the leader never landed on the wanted side");
        servers.kill(l);
        wait("a new leader", || net.leader(&all).filter(|n| *n != l));
        servers.start(&net, l).unwrap();
    };
    wait("every server follows that leader", || {
        all.iter()
            .all(|s| {
                net.status(*s)
                    .is_some_and(|st| st.leader_id == Some(first_leader as u64))
            })
            .then_some(())
    });
    let mut acked = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let v = format!("before-{i}");
        assert_eq!(append(&net, *s, "k", &v), 204);
        acked.push(v);
    }

    net.cable(false).unwrap();
    // The majority (0-2) keeps, or elects, a leader and acknowledges writes.
    let majority_leader = wait("the majority leads", || net.leader(&first));
    if !leader_on_minority {
        assert_eq!(
            majority_leader, first_leader,
            "a majority leader keeps leading"
        );
    }
    for s in first {
        let v = format!("majority-{s}");
        assert_eq!(
            append(&net, s, "k", &v),
            204,
            "server {s} on the majority side"
        );
        acked.push(v);
    }
    // The minority (3-4) acknowledges nothing, whoever led before.
    let mut refused = Vec::new();
    for s in second {
        let v = format!("minority-{s}");
        let code = append(&net, s, "k", &v);
        assert_ne!(
            code, 204,
            "server {s} on the minority side acknowledged a write"
        );
        refused.push(v);
    }

    net.cable(true).unwrap();
    // Every server converges on the majority's history.
    let expected = wait("all five servers hold the same list", || {
        let lists: Vec<Vec<String>> = all
            .iter()
            .map(|s| {
                let (code, body) = net.http(*s, "GET", "/keys/k?consistency=local", None);
                (code == 200)
                    .then(|| serde_json::from_str(&body).ok())
                    .flatten()
            })
            .collect::<Option<_>>()?;
        let first = lists[0].clone();
        (lists.iter().all(|l| *l == first) && acked.iter().all(|v| first.contains(v)))
            .then_some(first)
    });
    for v in &refused {
        // Even an "outcome unknown" here cannot commit: the minority never had a quorum, and
        // the new leader's entries of a higher term overwrite whatever the old one appended.
        assert!(
            !expected.contains(v),
            "refused write {v} appeared: {expected:?}"
        );
    }
    let (code, body) = net.http(4, "GET", "/keys/k", None);
    assert_eq!(
        code, 200,
        "a linearizable read on a former minority server: {body}"
    );
}

#[test]
fn partition_with_the_leader_on_the_majority_side() {
    partition_case(false);
}

#[test]
fn partition_with_the_leader_on_the_minority_side() {
    partition_case(true);
}
