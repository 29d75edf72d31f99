//! Dashboard rendering on ratatui's TestBackend: what a person sees for a healthy cluster, a
//! killed node, a partition, a pause and the help overlay (text and colours).

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::message::MessageView;
use super::state::{LabState, LinkView, NextIndex, NodeView, TimelineEntry, TimingPreset};
use super::theme::term_colour;
use super::ui::{View, render};
use crate::observe::{AppendAnswer, Fate, Fields, Held, Leg, LogPos, ReplyFields, Rpc};
use crate::raft::status::{FollowerProgress, Role, Status};

fn status(id: u64, role: Role, term: u64, leader: u64) -> Status {
    let leading = role == Role::Leader;
    let followers = (role == Role::Leader).then(|| {
        (0..5u64)
            .filter(|f| *f != id)
            .map(|f| {
                (
                    f,
                    FollowerProgress {
                        matched_index: Some(3),
                        last_ack_ms: Some(20),
                    },
                )
            })
            .collect()
    });
    Status {
        id,
        raft_addr: format!("127.0.0.1:{}", 6000 + id),
        http_addr: format!("127.0.0.1:{}", 8080 + id),
        role,
        term,
        voted_for: Some(leader),
        vote_holder: Some(leader),
        vote_committed: true,
        leader_id: Some(leader),
        leader_addr: Some(format!("127.0.0.1:{}", 6000 + leader)),
        last_log_index: Some(4),
        last_log_term: Some(term),
        recent_log: vec![(0, 0), (1, 1), (2, 1), (3, term), (4, term)],
        commit_index: Some(3),
        last_applied: Some(3),
        snapshot_index: None,
        purged_index: None,
        members: vec![],
        followers,
        has_quorum: leading,
        quorum_contact_ms: leading.then_some(50),
        heard_from_leader: !leading,
        leader_contact_ms: (!leading).then_some(50),
        pre_vote: true,
        keys: 1,
        uptime_secs: 5,
        fatal: None,
        removed: None,
    }
}

fn healthy() -> LabState {
    let nodes = (0..5)
        .map(|id| NodeView {
            id,
            up: true,
            removed: false,
            group: None,
            status: Some(status(
                id as u64,
                if id == 2 {
                    Role::Leader
                } else {
                    Role::Follower
                },
                3,
                2,
            )),
        })
        .collect();
    let links = (0..5u64)
        .flat_map(|f| {
            (0..5u64).filter(move |t| *t != f).map(move |t| LinkView {
                from: f,
                to: t,
                cut: false,
                per_second: [("Heartbeat".to_string(), 10)].into(),
            })
        })
        .collect();
    LabState {
        replay: None,
        safety: Default::default(),
        nodes,
        links,
        timeline: vec![TimelineEntry {
            at_ms: 700,
            text: "n2 is leader for term 3".into(),
            count: 1,
        }]
        .into(),
        messages: messages(),
        kv: vec![("a".into(), vec!["cat".into(), "dog".into()])],
        paused: false,
        pre_vote: true,
        timing: TimingPreset::Normal,
        held: Vec::new(),
        slowdown: 1,
        heartbeat_ms: 100,
        election_deadline_ms: (1500, 2000),
        uptime_ms: 5000,
        requests: 0,
        next_index: vec![NextIndex {
            leader: 2,
            follower: 1,
            next: 3,
        }],
    }
}

/// Newest first: a run of heartbeats, an AppendEntries that conflicted, a granted vote.
fn messages() -> Vec<MessageView> {
    let pos = |index, term| Some(LogPos { index, term });
    let message = |id, from, to, kind, fields, reply| MessageView {
        id,
        at_ms: 600 + id * 10,
        from,
        to,
        kind,
        term: 3,
        fields: Some(fields),
        fate: Fate::Answered { granted: None },
        reply: Some(reply),
        count: 1,
        why: None,
    };
    let append = |first, last| Fields::Append {
        prev_log: pos(3, 2),
        first,
        last,
        leader_commit: Some(3),
    };
    vec![
        MessageView {
            count: 12,
            ..message(
                3,
                2,
                4,
                Rpc::Heartbeat,
                append(None, None),
                ReplyFields::Append(AppendAnswer::Success),
            )
        },
        message(
            2,
            2,
            1,
            Rpc::Append,
            append(pos(4, 3), pos(4, 3)),
            ReplyFields::Append(AppendAnswer::Conflict),
        ),
        MessageView {
            fate: Fate::Answered {
                granted: Some(true),
            },
            ..message(
                1,
                2,
                0,
                Rpc::Vote,
                Fields::Vote {
                    last_log: pos(3, 2),
                },
                ReplyFields::Vote {
                    term: 3,
                    granted: true,
                    vote_for: Some(2),
                    vote_committed: false,
                    last_log: pos(3, 2),
                },
            )
        },
    ]
}

fn draw(state: &LabState, view: &View, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, state, view)).unwrap();
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            (0..area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect()
}

/// The position of the first occurrence of `needle` in the rendered screen.
fn find(buffer: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let screen = text(buffer);
    screen.lines().enumerate().find_map(|(y, line)| {
        line.find(needle)
            .map(|byte| (line[..byte].chars().count() as u16, y as u16))
    })
}

#[test]
fn a_healthy_cluster_shows_one_green_leader_terms_and_a_log_coloured_by_term() {
    let buffer = draw(&healthy(), &View::default(), 120, 40);
    let screen = text(&buffer);
    assert!(screen.contains("RUNNING"), "{screen}");
    assert_eq!(screen.matches("LEADER").count(), 1, "{screen}");
    assert_eq!(screen.matches("FOLLOWER").count(), 4);
    assert!(screen.contains("term 3"));
    assert!(screen.contains("a = [\"cat\", \"dog\"]"));
    assert!(screen.contains("key/value (1 key)"), "{screen}");
    assert!(screen.contains("n2 is leader for term 3"));
    let (x, y) = find(&buffer, "LEADER").unwrap();
    assert_eq!(buffer[(x, y)].fg, Color::Green);
    // The log as the paper draws it: from index 0, each entry's term as a number in its term's
    // colour, the commit marker after index 3; index 4 (not committed) dim.
    let (lx, ly) = find(&buffer, "log #0   0 1 1 3┃3").expect(&screen);
    // The leader's view of each follower: matchIndex, and nextIndex where the lab saw one.
    assert!(
        screen.contains("0 1 1 3┃3   matchIndex 3  nextIndex 3"),
        "{screen}"
    );
    let first = lx + 9;
    assert_eq!(buffer[(first, ly)].fg, term_colour(0));
    assert_eq!(buffer[(first + 2, ly)].fg, term_colour(1));
    assert_eq!(buffer[(first + 6, ly)].fg, term_colour(3));
    assert!(!buffer[(first + 6, ly)].modifier.contains(Modifier::DIM));
    assert!(buffer[(first + 8, ly)].modifier.contains(Modifier::DIM));
}

#[test]
fn the_messages_pane_shows_each_message_with_its_fields_and_fate() {
    let view = View {
        messages: true,
        ..View::default()
    };
    let buffer = draw(&healthy(), &view, 120, 40);
    let screen = text(&buffer);
    assert!(
        screen.contains("messages: every kind, every node"),
        "{screen}"
    );
    assert!(
        !screen.contains("n2 is leader for term 3"),
        "the timeline is replaced"
    );
    for line in [
        "n2→n0 Vote t3 lastLog 3@2 → granted (term 3)",
        "n2→n1 Append t3 prev 3@2 entry 4@3 commit 3 → conflict: prev not matched",
        "n2→n4 Heartbeat t3 prev 3@2 commit 3 → success ×12",
    ] {
        assert!(screen.contains(line), "missing {line:?}:\n{screen}");
    }
    // Newest at the bottom, as in the timeline; votes stand out, a conflict is marked.
    let (_, vote_y) = find(&buffer, "n2→n0 Vote").unwrap();
    let (_, beat_y) = find(&buffer, "n2→n4 Heartbeat").unwrap();
    assert!(vote_y < beat_y);
    let (x, y) = find(&buffer, "n2→n1 Append").unwrap();
    assert_eq!(buffer[(x, y)].fg, Color::Red);
    let (x, y) = find(&buffer, "n2→n0 Vote").unwrap();
    assert_eq!(buffer[(x, y)].fg, Color::Yellow);
}

#[test]
fn the_messages_pane_filters_by_kind_and_by_node() {
    let state = healthy();
    let only = |kind, only_selected, selected| {
        let view = View {
            messages: true,
            kind,
            only_selected,
            selected,
            ..View::default()
        };
        text(&draw(&state, &view, 120, 40))
    };
    let votes = only(Some(Rpc::Vote), false, 0);
    assert!(votes.contains("messages: Vote only, every node"), "{votes}");
    assert!(
        votes.contains("n2→n0 Vote") && !votes.contains("Heartbeat t3"),
        "{votes}"
    );
    let n4 = only(None, true, 4);
    assert!(n4.contains("every kind, n4 only"), "{n4}");
    assert!(
        n4.contains("n2→n4 Heartbeat") && !n4.contains("n2→n0 Vote"),
        "{n4}"
    );
}

#[test]
fn the_detail_pane_shows_a_nodes_whole_status_its_messages_and_curl_lines() {
    let view = View {
        detail: true,
        selected: 2,
        ..View::default()
    };
    let buffer = draw(&healthy(), &view, 120, 40);
    let screen = text(&buffer);
    for line in [
        "n2 in detail (Enter: close)",
        "role leader in term 3",
        "last log index 4 term 3",
        "commit index 3  applied 3",
        "→ n0 matchIndex 3",
        "curl -s 127.0.0.1:8082/admin/status",
        // n2's messages, newest at the bottom.
        "n2→n0 Vote t3 lastLog 3@2 → granted (term 3)",
    ] {
        assert!(screen.contains(line), "missing {line:?}:\n{screen}");
    }
    assert!(!screen.contains(" timeline "), "the bottom row is replaced");
    // A node that is down says so.
    let mut state = healthy();
    state.nodes[2].up = false;
    let screen = text(&draw(&state, &view, 120, 40));
    assert!(screen.contains("n2 is down: restart it with r"), "{screen}");
}

/// A timeline of 100 lines, every tenth about n3.
fn long_timeline() -> LabState {
    let lines = (0..100u64).map(|i| TimelineEntry {
        at_ms: i * 100,
        text: if i % 10 == 0 {
            format!("line {i} about n3")
        } else {
            format!("line {i} about n1")
        },
        count: if i == 99 { 4 } else { 1 },
    });
    LabState {
        timeline: lines.collect::<Vec<_>>().into(),
        ..healthy()
    }
}

#[test]
fn the_timeline_scrolls_back_filters_by_node_and_counts_repeats() {
    let state = long_timeline();
    let screen = text(&draw(&state, &View::default(), 120, 40));
    assert!(screen.contains("line 99 about n1 ×4"), "{screen}");
    assert!(!screen.contains("line 50 "), "{screen}");
    let back = View {
        scroll: 45,
        ..View::default()
    };
    let screen = text(&draw(&state, &back, 120, 40));
    assert!(
        screen.contains("line 54 about n1") && !screen.contains("line 99"),
        "{screen}"
    );
    assert!(
        screen.contains("45 newer lines below (End: follow)"),
        "{screen}"
    );
    // Scrolling past the oldest stops at the oldest.
    let oldest = View {
        scroll: 10_000,
        ..View::default()
    };
    let screen = text(&draw(&state, &oldest, 120, 40));
    assert!(screen.contains("line 0 about n3"), "{screen}");
    let only = View {
        selected: 3,
        only_selected: true,
        ..View::default()
    };
    let screen = text(&draw(&state, &only, 120, 40));
    assert!(screen.contains("timeline of n3 (f: all)"), "{screen}");
    assert!(
        screen.contains("line 90 about n3") && !screen.contains("about n1"),
        "{screen}"
    );
}

#[test]
fn a_node_is_named_as_a_word() {
    assert!(super::ui::names_node("n2 voted for n1 in term 3", 1));
    assert!(super::ui::names_node("client→n1: APPEND", 1));
    assert!(!super::ui::names_node("n12 voted for n0", 1));
    assert!(!super::ui::names_node("an1 n0", 1));
}

#[test]
fn a_killed_node_is_shown_down_in_red() {
    let mut state = healthy();
    state.nodes[4].up = false;
    state.nodes[4].status = None;
    let buffer = draw(&state, &View::default(), 120, 40);
    let (x, y) = find(&buffer, "DOWN").expect("the killed node says DOWN");
    assert_eq!(buffer[(x, y)].fg, Color::Red);
    assert!(
        text(&buffer)
            .lines()
            .nth(y as usize)
            .unwrap()
            .contains("n4")
    );
}

#[test]
fn a_partition_shows_groups_cut_links_and_a_stale_leader() {
    let mut state = healthy();
    for (i, node) in state.nodes.iter_mut().enumerate() {
        node.group = Some(if i < 3 { 'A' } else { 'B' });
    }
    state.nodes[2].status.as_mut().unwrap().has_quorum = false;
    for link in &mut state.links {
        link.cut = (link.from < 3) != (link.to < 3);
    }
    let buffer = draw(&state, &View::default(), 120, 40);
    let screen = text(&buffer);
    assert_eq!(screen.matches("[A]").count(), 3, "{screen}");
    assert_eq!(screen.matches("[B]").count(), 2);
    assert_eq!(
        screen.matches("    ✕").count(),
        12,
        "12 directed links cross the partition"
    );
    assert!(screen.contains("LEADER?") && screen.contains("stale leader"));
    let (x, y) = find(&buffer, "✕").unwrap();
    assert_eq!(buffer[(x, y)].fg, Color::Red);
}

#[test]
fn a_paused_cluster_says_paused_in_yellow() {
    let mut state = healthy();
    state.paused = true;
    let buffer = draw(&state, &View::default(), 120, 40);
    let (x, y) = find(&buffer, "PAUSED").expect("paused banner");
    assert_eq!(buffer[(x, y)].bg, Color::Yellow);
    assert!(!text(&buffer).contains("RUNNING"));
    assert_eq!(
        text(&buffer).matches("timer paused").count(),
        5,
        "frozen timers do not drain, the leader's included"
    );
}

#[test]
fn the_help_overlay_lists_every_key_and_fits_80_by_24() {
    let view = View {
        help: true,
        ..Default::default()
    };
    let buffer = draw(&healthy(), &view, 80, 24);
    let screen = text(&buffer);
    assert!(screen.contains("help (? to close)"), "{screen}");
    for action in super::command::ACTIONS {
        let first_words: String = action.help.chars().take(20).collect();
        assert!(
            screen.contains(&first_words),
            "help lacks {:?}:\n{screen}",
            action.help
        );
    }
}

#[test]
fn the_selected_node_is_marked() {
    let view = View {
        selected: 3,
        ..Default::default()
    };
    let screen = text(&draw(&healthy(), &view, 120, 40));
    assert!(screen.contains("▶n3"), "{screen}");
}

#[test]
fn at_80_by_24_every_node_shows_role_term_indexes_and_timer() {
    let screen = text(&draw(&healthy(), &View::default(), 80, 24));
    for id in 0..5 {
        let line = screen
            .lines()
            .find(|l| l.contains(&format!("n{id} ")))
            .unwrap_or_else(|| panic!("n{id} missing:\n{screen}"));
        assert!(line.contains("T3 "), "term shown: {line}");
        assert!(
            line.contains("4/   3/   3"),
            "log/commit/applied shown: {line}"
        );
        assert!(
            line.contains('s') && (line.contains("quorum") || line.contains('█')),
            "timer shown: {line}"
        );
    }
}

/// A paused election: n2's vote requests to n0 and n1, and n0's granting reply.
fn paused_election() -> LabState {
    let mut state = healthy();
    state.paused = true;
    state.slowdown = 10;
    let last_log = Some(LogPos { index: 4, term: 3 });
    let request = |id, to| Held {
        id,
        from: 2,
        to,
        rpc: Rpc::Vote,
        leg: Leg::Request,
        term: 4,
        entries: 0,
        fields: Some(Fields::Vote { last_log }),
        reply: None,
    };
    let reply = Held {
        id: 9,
        from: 0,
        to: 2,
        leg: Leg::Reply,
        reply: Some(ReplyFields::Vote {
            term: 4,
            granted: false,
            vote_for: Some(1),
            vote_committed: false,
            last_log,
        }),
        ..request(9, 0)
    };
    state.held = vec![request(7, 0), request(8, 1), reply];
    state
}

#[test]
fn a_pause_lists_held_messages_oldest_first_and_inspects_the_chosen_one() {
    let state = paused_election();
    let view = View {
        held: Some(9),
        ..View::default()
    };
    let buffer = draw(&state, &view, 160, 50);
    let screen = text(&buffer);
    assert!(screen.contains("held: 3, oldest first"), "{screen}");
    assert!(screen.contains("speed: 10× slower"), "{screen}");
    let first = find(&buffer, "#7 n2 → n0 Vote term 4: lastLog 4@3").expect("oldest listed");
    let second = find(&buffer, "#8 n2 → n1 Vote").expect("second listed");
    let chosen = find(&buffer, "#9 n0 → n2 reply to Vote (term 4): refused").expect("reply");
    assert!(first.1 < second.1 && second.1 < chosen.1, "oldest first");
    assert_eq!(
        buffer[chosen].bg,
        Color::Cyan,
        "the chosen message is marked"
    );
    assert_eq!(buffer[first].fg, Color::Yellow, "votes in yellow");
    // The inspector: every field of #9 in the paper's names, and why it was refused.
    for field in [
        "message  #9 (reply)",
        "candidateId  n2",
        "lastLogIndex  4",
        "lastLogTerm  3",
        "reply: voteGranted  false",
        "reply: its vote  n1",
        "why  it already voted for n1 in term 4 (one vote per term, §5.2)",
    ] {
        assert!(
            screen.contains(field),
            "inspector lacks {field:?}:\n{screen}"
        );
    }
}

#[test]
fn without_a_choice_the_inspector_shows_the_oldest_held_message() {
    let state = paused_election();
    let screen = text(&draw(&state, &View::default(), 160, 50));
    assert!(screen.contains("message  #7 (request)"), "{screen}");
    let mut running = state.clone();
    running.paused = false;
    let screen = text(&draw(&running, &View::default(), 160, 50));
    assert!(!screen.contains("inspector"), "no held pane while running");
}

#[test]
fn an_append_entries_is_inspected_with_its_index_range_and_leader_commit() {
    let held = Held {
        id: 3,
        from: 1,
        to: 4,
        rpc: Rpc::Append,
        leg: Leg::Request,
        term: 2,
        entries: 2,
        fields: Some(Fields::Append {
            prev_log: Some(LogPos { index: 5, term: 1 }),
            first: Some(LogPos { index: 6, term: 2 }),
            last: Some(LogPos { index: 7, term: 2 }),
            leader_commit: Some(5),
        }),
        reply: None,
    };
    let lines: Vec<String> = super::held::inspect(&held)
        .iter()
        .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
        .collect();
    let all = lines.join("\n");
    for field in [
        "leaderId  n1",
        "prevLogIndex  5",
        "prevLogTerm  1",
        "entries[]  2 (indexes 6..=7, terms 2..=2)",
        "leaderCommit  5",
    ] {
        assert!(all.contains(field), "{field:?} in\n{all}");
    }
}
