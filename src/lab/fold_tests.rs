//! The fold driven by made-up inputs: an election as the transport and the statuses report it.

use std::collections::BTreeSet;

use super::{Input, Memory, TIMELINE, groups};
use crate::lab::message::MessageView;
use crate::observe::{AppendAnswer, Event, Fate, Fields, LogPos, ReplyFields, Rpc};
use crate::raft::status::{Role, Status};

fn vote(from: u64, to: u64, term: u64, rpc: Rpc, granted: Option<bool>) -> Input {
    let heartbeat = Fields::Append {
        prev_log: None,
        first: None,
        last: None,
        leader_commit: None,
    };
    Input::Message(Event {
        from,
        to,
        rpc,
        term,
        entries: 0,
        fate: Fate::Answered { granted },
        fields: Some(match rpc {
            Rpc::Heartbeat => heartbeat,
            _ => Fields::Vote { last_log: None },
        }),
        reply: Some(match granted {
            Some(granted) => ReplyFields::Vote {
                term,
                granted,
                // A refusing voter has voted for another (n9 here).
                vote_for: Some(if granted { from } else { 9 }),
                vote_committed: false,
                last_log: None,
            },
            None => ReplyFields::Append(AppendAnswer::Success),
        }),
        legs: None,
    })
}

fn status(id: u64, role: Role, term: u64) -> Option<Status> {
    let json = serde_json::json!({
        "id": id, "raft_addr": "", "http_addr": "", "role": role, "term": term,
        "voted_for": null, "vote_committed": false, "leader_id": null, "leader_addr": null,
        "last_log_index": null, "last_log_term": null, "recent_log": [], "commit_index": null,
        "last_applied": null, "snapshot_index": null, "purged_index": null, "members": [],
        "followers": null, "has_quorum": false, "quorum_contact_ms": null, "pre_vote": true,
        "keys": 0, "uptime_secs": 0, "fatal": null
    });
    Some(serde_json::from_value(json).unwrap())
}

fn texts(m: &mut Memory) -> Vec<String> {
    m.timeline().iter().map(|e| e.text.clone()).collect()
}

#[test]
fn an_election_reads_as_the_paper_tells_it() {
    let mut m = Memory::default();
    // Three nodes as (role, term); n1 is the one that times out.
    let refresh = |nodes: [(Role, u64); 3]| {
        let statuses = nodes.iter().enumerate();
        Input::Statuses(
            statuses
                .map(|(i, (r, t))| status(i as u64, *r, *t))
                .collect(),
        )
    };
    let follower = |t| (Role::Follower, t);
    m.fold(0, refresh([follower(1), follower(1), follower(1)]));
    m.fold(10, vote(1, 0, 2, Rpc::PreVote, Some(true)));
    m.fold(
        20,
        refresh([follower(1), (Role::Candidate, 2), follower(1)]),
    );
    m.fold(30, vote(1, 0, 2, Rpc::Vote, Some(true)));
    m.fold(31, vote(1, 2, 2, Rpc::Vote, Some(false)));
    m.fold(32, vote(1, 2, 2, Rpc::Heartbeat, None));
    m.fold(40, refresh([follower(2), (Role::Leader, 2), follower(2)]));
    assert_eq!(
        texts(&mut m),
        [
            "n0 would vote for n1 (pre-vote, term 2)",
            "n1 starts an election for term 2",
            "n0 voted for n1 in term 2",
            "n2 refused its vote to n1 (term 2): it already voted for n9 in term 2 (one vote per term, §5.2)",
            "n0 moves to term 2",
            "n1 is leader for term 2",
            "n2 moves to term 2",
        ]
    );
    assert_eq!(m.timeline()[2].at_ms, 30);
}

#[test]
fn a_node_that_goes_down_and_comes_back_is_not_a_change_of_role() {
    let mut m = Memory::default();
    m.fold(0, Input::Statuses(vec![status(0, Role::Leader, 3)]));
    m.fold(100, Input::Statuses(vec![None]));
    m.fold(200, Input::Statuses(vec![status(0, Role::Follower, 3)]));
    assert!(texts(&mut m).is_empty(), "{:?}", texts(&mut m));
}

#[test]
fn link_rates_count_the_last_second_per_kind_and_show_cuts() {
    let mut m = Memory::default();
    for at in [0, 500, 900] {
        m.fold(at, vote(0, 1, 1, Rpc::Heartbeat, None));
    }
    m.fold(950, vote(1, 0, 2, Rpc::Vote, Some(true)));
    let cut = BTreeSet::from([(1, 0)]);
    let links = m.links(2, &cut);
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].per_second.get("Heartbeat"), Some(&3));
    assert!(!links[0].cut && links[1].cut);
    assert_eq!(links[1].per_second.get("Vote"), Some(&1));
    // 1.2 s later only what came in the last second counts.
    m.fold(1_600, Input::Note("later".into()));
    let links = m.links(2, &cut);
    assert_eq!(links[0].per_second.get("Heartbeat"), Some(&1));
}

#[test]
fn heartbeats_fold_into_one_line_per_link_until_another_message_comes() {
    let mut m = Memory::default();
    for at in 0..6 {
        // n1 leads; its heartbeats to n0 and n2 interleave.
        m.fold(at, vote(1, at % 2 * 2, 4, Rpc::Heartbeat, None));
    }
    let lines = m.messages();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!((lines[0].to, lines[0].count, lines[0].id), (2, 3, 6));
    assert_eq!((lines[1].to, lines[1].count, lines[1].id), (0, 3, 5));
    // A vote breaks the run: the next heartbeat starts a new line.
    m.fold(10, vote(0, 1, 5, Rpc::Vote, Some(true)));
    m.fold(11, vote(1, 0, 4, Rpc::Heartbeat, None));
    let lines = m.messages();
    assert_eq!(lines.len(), 4);
    assert_eq!((lines[0].kind, lines[0].count), (Rpc::Heartbeat, 1));
    assert_eq!(lines[1].kind, Rpc::Vote);
}

#[test]
fn next_index_follows_the_append_entries_and_backs_up_on_a_conflict() {
    let pos = |index, term| Some(LogPos { index, term });
    let append = |prev, last| Fields::Append {
        prev_log: prev,
        first: last,
        last,
        leader_commit: None,
    };
    let mut m = Memory::default();
    let ok = ReplyFields::Append(AppendAnswer::Success);
    m.fold(
        0,
        Input::Message(event(Rpc::Append, append(pos(4, 2), pos(5, 5)), ok.clone())),
    );
    assert_eq!(m.next_index()[0].next, 6);
    let conflict = ReplyFields::Append(AppendAnswer::Conflict);
    m.fold(
        1,
        Input::Message(event(Rpc::Append, append(pos(9, 5), pos(10, 5)), conflict)),
    );
    assert_eq!(
        m.next_index()[0].next,
        9,
        "the leader backs up to the previous index"
    );
    let heartbeat = append(pos(6, 5), None);
    m.fold(2, Input::Message(event(Rpc::Heartbeat, heartbeat, ok)));
    let n = m.next_index()[0];
    assert_eq!((n.leader, n.follower, n.next), (1, 2, 7));
}

#[test]
fn a_line_noted_again_right_after_counts_up_instead_of_repeating() {
    let mut m = Memory::default();
    for at in [10, 20, 30] {
        m.fold(
            at,
            Input::Note("(dashboard fell behind: 3 messages not counted)".into()),
        );
    }
    m.fold(40, Input::Note("healed the network".into()));
    let t = m.timeline();
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].count, t[0].at_ms, t[1].count), (3, 30, 1));
    // The shared timeline is handed out again until a line is added.
    assert!(std::sync::Arc::ptr_eq(&t, &m.timeline()));
}

#[test]
fn a_minority_asking_for_pre_votes_round_after_round_folds_into_one_line_per_asker() {
    let mut m = Memory::default();
    m.fold(0, Input::Note("partitioned n0 n1 n2 | n3 n4".into()));
    let pre_vote = |from, to| vote(from, to, 3, Rpc::PreVote, Some(true));
    let round = |m: &mut Memory, at| {
        m.fold(at, pre_vote(3, 4));
        m.fold(at + 1, pre_vote(4, 3));
    };
    for at in [100, 300, 500] {
        round(&mut m, at);
    }
    let lines = |m: &mut Memory| -> Vec<(String, u32, u64)> {
        let t = m.timeline();
        t.iter()
            .map(|e| (e.text.clone(), e.count, e.at_ms))
            .collect()
    };
    let asked_by_3 = "n4 would vote for n3 (pre-vote, term 3)".to_string();
    let asked_by_4 = "n3 would vote for n4 (pre-vote, term 3)".to_string();
    assert_eq!(
        lines(&mut m)[1..],
        [(asked_by_3.clone(), 3, 500), (asked_by_4.clone(), 3, 501)]
    );
    // Another kind of line ends the run: votes after it never move above it.
    m.fold(600, Input::Note("client→n3: APPEND a minority".into()));
    round(&mut m, 700);
    m.fold(900, pre_vote(3, 4));
    let after = lines(&mut m);
    assert_eq!(after.len(), 6, "{after:?}");
    assert_eq!(after[3].0, "client→n3: APPEND a minority");
    assert_eq!(
        after[4..],
        [(asked_by_4, 1, 701), (asked_by_3, 2, 900)],
        "the run after the client's line counts on its own"
    );
    // A deposed leader's heartbeats, rejected again and again, fold the same way.
    let heartbeat = Fields::Append {
        prev_log: None,
        first: None,
        last: None,
        leader_commit: None,
    };
    let rejected = ReplyFields::Append(AppendAnswer::HigherTerm { term: 7 });
    for at in [1_000, 1_050, 1_100] {
        let e = event(Rpc::Heartbeat, heartbeat.clone(), rejected.clone());
        m.fold(at, Input::Message(e));
    }
    let last = lines(&mut m).pop().unwrap();
    assert!(
        last.0.starts_with("n2 rejected AppendEntries from n1"),
        "{last:?}"
    );
    assert_eq!((last.1, last.2, lines(&mut m).len()), (3, 1_100, 7));
}

#[test]
fn the_timeline_keeps_the_newest_entries() {
    let mut m = Memory::default();
    for i in 0..(TIMELINE as u64 + 5) {
        m.fold(i, Input::Note(format!("line {i}")));
    }
    let t = m.timeline();
    assert_eq!(t.len(), TIMELINE);
    assert_eq!(t[0].text, "line 5");
}

#[test]
fn groups_follow_two_way_reachability() {
    let mut cut = BTreeSet::new();
    assert_eq!(groups(5, &cut), vec![None; 5]);
    for a in 0..3u64 {
        for b in 3..5u64 {
            cut.insert((a, b));
            cut.insert((b, a));
        }
    }
    let g = groups(5, &cut);
    assert_eq!(
        g,
        vec![Some('A'), Some('A'), Some('A'), Some('B'), Some('B')]
    );
    // A one-way cut splits nobody: the two still reach each other through a third.
    assert_eq!(groups(3, &BTreeSet::from([(0, 1)])), vec![None; 3]);
}

/// A message from n1 (term 5) to n2 with these fields and reply, as the lab shows it.
fn message(rpc: Rpc, fields: Fields, reply: ReplyFields) -> MessageView {
    MessageView::new(1, 0, event(rpc, fields, reply))
}

/// An answered message from n1 (term 5) to n2.
fn event(rpc: Rpc, fields: Fields, reply: ReplyFields) -> Event {
    let granted = match &reply {
        ReplyFields::Vote { granted, .. } => Some(*granted),
        _ => None,
    };
    Event {
        from: 1,
        to: 2,
        rpc,
        term: 5,
        entries: 0,
        fate: Fate::Answered { granted },
        fields: Some(fields),
        reply: Some(reply),
        legs: None,
    }
}

fn refused(
    rpc: Rpc,
    theirs: (u64, u64),
    term: u64,
    vote: Option<(u64, bool)>,
    ours: (u64, u64),
) -> String {
    let pos = |(term, index)| Some(LogPos { index, term });
    let m = message(
        rpc,
        Fields::Vote {
            last_log: pos(theirs),
        },
        ReplyFields::Vote {
            term,
            granted: false,
            vote_for: vote.map(|v| v.0),
            vote_committed: vote.is_some_and(|v| v.1),
            last_log: pos(ours),
        },
    );
    m.decision().unwrap()
}

#[test]
fn refused_votes_and_rejected_entries_say_why_in_the_papers_terms() {
    // (term, index) of the candidate's and the voter's last entries.
    assert_eq!(
        refused(Rpc::Vote, (2, 9), 5, None, (3, 5)),
        "n2 refused its vote to n1 (term 5): the candidate's log (term 2, index 9) is behind \
         its own (term 3, index 5) (§5.4.1)"
    );
    assert_eq!(
        refused(Rpc::Vote, (3, 5), 5, Some((0, false)), (3, 5)),
        "n2 refused its vote to n1 (term 5): it already voted for n0 in term 5 (one vote per \
         term, §5.2)"
    );
    assert_eq!(
        refused(Rpc::Vote, (3, 5), 5, Some((0, true)), (3, 4)),
        "n2 refused its vote to n1 (term 5): it already follows n0, leader of term 5"
    );
    assert_eq!(
        refused(Rpc::Vote, (3, 5), 6, Some((0, true)), (3, 5)),
        "n2 refused its vote to n1 (term 5): it is already in term 6"
    );
    assert_eq!(
        refused(Rpc::PreVote, (3, 5), 4, Some((0, true)), (3, 5)),
        "n2 would not vote for n1 (pre-vote, term 5): it still hears from a leader (its leader \
         lease has not expired)"
    );
    let pos = |index, term| Some(LogPos { index, term });
    let append = Fields::Append {
        prev_log: pos(9, 3),
        first: pos(10, 5),
        last: pos(10, 5),
        leader_commit: Some(8),
    };
    let conflict = message(
        Rpc::Append,
        append.clone(),
        ReplyFields::Append(AppendAnswer::Conflict),
    );
    assert_eq!(
        conflict.decision().unwrap(),
        "n2 rejected AppendEntries from n1: no entry at index 9 with term 3 (the entry before \
         the new ones): the leader backs up and sends earlier entries (§5.3)"
    );
    let stale = message(
        Rpc::Append,
        append.clone(),
        ReplyFields::Append(AppendAnswer::HigherTerm { term: 7 }),
    );
    assert!(
        stale
            .why
            .as_deref()
            .unwrap()
            .starts_with("it is in term 7, above the sender's 5")
    );
    // A refusal seen without fields (sent before the lab watched) says only what happened.
    let mut bare = message(
        Rpc::Vote,
        Fields::Vote { last_log: None },
        ReplyFields::Other {
            text: String::new(),
        },
    );
    bare.fate = Fate::Answered {
        granted: Some(false),
    };
    bare.why = None;
    assert_eq!(
        bare.decision().unwrap(),
        "n2 refused its vote to n1 (term 5)"
    );
    let ok = message(
        Rpc::Append,
        append,
        ReplyFields::Append(AppendAnswer::Success),
    );
    assert_eq!((ok.why.clone(), ok.decision()), (None, None));
}
