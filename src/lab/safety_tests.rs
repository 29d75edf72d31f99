//! The safety panel has teeth: for each property a made-up stream that breaks it turns that
//! property red (and only that one), naming the offending observations; a healthy stream stays
//! green.

use super::*;
use crate::observe::{Event, Fate, Rpc};

fn status(id: u64, role: Role, term: u64, log: &[(u64, u64)], commit: u64) -> Option<Status> {
    let json = serde_json::json!({
        "id": id, "raft_addr": "", "http_addr": "", "role": role, "term": term,
        "voted_for": null, "vote_committed": false, "leader_id": null, "leader_addr": null,
        "last_log_index": log.last().map(|(i, _)| *i), "last_log_term": log.last().map(|(_, t)| *t),
        "recent_log": log, "commit_index": commit, "last_applied": commit,
        "snapshot_index": null, "purged_index": null, "members": [], "followers": null,
        "has_quorum": true, "quorum_contact_ms": 5, "pre_vote": true, "keys": 0,
        "uptime_secs": 0, "fatal": null
    });
    Some(serde_json::from_value(json).unwrap())
}

fn heartbeat(from: u64, term: u64) -> Event {
    Event {
        from,
        to: (from + 1) % 3,
        rpc: Rpc::Heartbeat,
        term,
        entries: 0,
        fate: Fate::Answered { granted: None },
        fields: None,
        reply: None,
        legs: None,
    }
}

/// The properties that do not hold, by name.
fn red(safety: &mut Safety) -> Vec<String> {
    let view = safety.view();
    view.verdicts
        .iter()
        .filter(|v| !v.holds())
        .map(|v| v.property.clone())
        .collect()
}

const LOG: [(u64, u64); 4] = [(0, 0), (1, 1), (2, 1), (3, 2)];

/// Three nodes agreeing: n0 leads term 2 with entries 1..3 committed everywhere.
fn healthy(safety: &mut Safety, at_ms: u64) {
    safety.message(at_ms, &heartbeat(0, 2));
    safety.statuses(
        at_ms,
        &[
            status(0, Role::Leader, 2, &LOG, 3),
            status(1, Role::Follower, 2, &LOG, 3),
            status(2, Role::Follower, 2, &LOG[..3], 2),
        ],
    );
}

#[test]
fn a_healthy_run_holds_every_property_with_evidence_checked() {
    let mut safety = Safety::default();
    for t in 0..10 {
        healthy(&mut safety, t * 100);
    }
    safety.invoked(0, 1, 0, "k", "a");
    safety.completed(10, 1, Outcome::Ok { len: 1 });
    safety.invoked(20, 2, 1, "k", "b");
    safety.completed(30, 2, Outcome::Ok { len: 2 });
    assert_eq!(red(&mut safety), Vec::<String>::new());
    let view = safety.view();
    assert!(view.verdicts.iter().all(|v| v.checked > 0), "{view:?}");
    assert!(safety.take_fresh().is_none());
}

#[test]
fn two_leaders_in_one_term_break_election_safety() {
    let mut safety = Safety::default();
    healthy(&mut safety, 0);
    safety.message(500, &heartbeat(2, 2));
    assert_eq!(red(&mut safety), ["Election Safety"]);
    let (at, text) = safety.view().verdicts[0].violation.clone().unwrap();
    assert_eq!(at, 500);
    assert!(text.contains("n0 sent Heartbeat in term 2"), "{text}");
    assert!(text.contains("n2 sent Heartbeat in term 2"), "{text}");
    assert!(
        safety
            .take_fresh()
            .unwrap()
            .starts_with("Election Safety violated")
    );
}

#[test]
fn logs_that_share_an_entry_but_differ_before_it_break_log_matching() {
    let mut safety = Safety::default();
    healthy(&mut safety, 0);
    let forked = [(0, 0), (1, 1), (2, 9), (3, 2)];
    safety.statuses(
        100,
        &[
            status(0, Role::Leader, 2, &LOG, 1),
            status(1, Role::Follower, 2, &forked, 1),
            None,
        ],
    );
    assert_eq!(red(&mut safety), ["Log Matching"]);
    let text = safety.view().verdicts[1].violation.clone().unwrap().1;
    assert!(
        text.contains("entry 3 of term 2 but differ at index 2"),
        "{text}"
    );
}

#[test]
fn a_leader_without_an_entry_committed_in_an_earlier_term_breaks_leader_completeness() {
    let mut safety = Safety::default();
    healthy(&mut safety, 0);
    // n2 leads term 3 with a log that ends at index 2: committed entry 3 (term 2) is missing.
    safety.statuses(100, &[None, None, status(2, Role::Leader, 3, &LOG[..3], 2)]);
    assert_eq!(red(&mut safety), ["Leader Completeness"]);
    let text = safety.view().verdicts[2].violation.clone().unwrap().1;
    assert!(
        text.contains("n2 leads term 3") && text.contains("entry 3 (term 2)"),
        "{text}"
    );
}

#[test]
fn an_entry_committed_only_later_need_not_be_in_an_intermediate_leaders_log() {
    // Entry 3 of term 2 is first seen committed by a node in term 4 (a leader of term 4 may
    // commit it along with its own entry); a leader of term 3 without it breaks nothing.
    let mut safety = Safety::default();
    safety.statuses(0, &[status(0, Role::Follower, 4, &LOG, 3), None, None]);
    safety.statuses(100, &[None, status(1, Role::Leader, 3, &LOG[..3], 2), None]);
    assert_eq!(red(&mut safety), Vec::<String>::new());
}

#[test]
fn two_nodes_applying_different_entries_at_one_index_break_state_machine_safety() {
    let mut safety = Safety::default();
    healthy(&mut safety, 0);
    // n2 applies index 3 from term 5; it is shown committed there too, which is also a
    // committed entry replaced (Leader Completeness' concern): both go red.
    let other = [(0, 0), (1, 1), (2, 1), (3, 5)];
    safety.statuses(100, &[None, None, status(2, Role::Follower, 5, &other, 3)]);
    let red = red(&mut safety);
    assert!(red.contains(&"State Machine Safety".to_string()), "{red:?}");
    let text = safety.view().verdicts[3].violation.clone().unwrap().1;
    assert!(
        text.contains("index 3") && text.contains("term 5"),
        "{text}"
    );
}

#[test]
fn acknowledged_appends_sharing_a_position_or_out_of_real_time_order_break_linearizability() {
    let mut safety = Safety::default();
    safety.invoked(0, 1, 0, "k", "a");
    safety.completed(10, 1, Outcome::Ok { len: 1 });
    safety.invoked(20, 2, 0, "k", "b");
    safety.completed(30, 2, Outcome::Ok { len: 1 }); // a was lost: b took its place
    assert_eq!(red(&mut safety), ["Linearizability"]);
    assert!(
        safety.view().verdicts[4]
            .violation
            .clone()
            .unwrap()
            .1
            .contains("position 1")
    );

    let mut safety = Safety::default();
    safety.invoked(0, 1, 0, "k", "a");
    safety.completed(10, 1, Outcome::Ok { len: 3 });
    safety.invoked(20, 2, 0, "k", "b");
    safety.completed(30, 2, Outcome::Ok { len: 2 }); // b sent after a's ack, yet placed before
    assert_eq!(red(&mut safety), ["Linearizability"]);

    // Concurrent requests may land in either order; an unknown outcome constrains nothing.
    let mut safety = Safety::default();
    safety.invoked(0, 1, 0, "k", "a");
    safety.invoked(1, 2, 0, "k", "b");
    safety.completed(10, 2, Outcome::Ok { len: 1 });
    safety.completed(11, 1, Outcome::Ok { len: 2 });
    safety.invoked(20, 3, 0, "k", "c");
    safety.completed(
        30,
        3,
        Outcome::Unknown {
            error: "timeout".into(),
        },
    );
    assert_eq!(red(&mut safety), Vec::<String>::new());
}
