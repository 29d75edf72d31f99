//! The node detail pane (Enter on a node): everything its `/admin/status` says, the messages it
//! sent and received most recently, and curl lines for its own HTTP port, so a learner can ask the
//! real node the same questions. Rendering only, like `ui`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::state::LabState;
use super::theme;
use super::ui::{message_line, opt};
use crate::raft::status::Status;

pub fn render(frame: &mut Frame, area: Rect, state: &LabState, id: usize) {
    let title = format!(" n{id} in detail (Enter: close) ");
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let node = state.nodes.get(id);
    let Some(s) = node
        .and_then(|n| n.status.as_ref())
        .filter(|_| node.is_some_and(|n| n.up))
    else {
        let why = match node {
            Some(n) if n.removed => "removed from the cluster: it will not run again",
            Some(_) => "down: restart it with r",
            None => "no such node",
        };
        frame.render_widget(Paragraph::new(format!("n{id} is {why}")), inner);
        return;
    };
    let [facts, messages] =
        Layout::horizontal([Constraint::Length(46), Constraint::Min(20)]).areas(inner);
    frame.render_widget(
        Paragraph::new(fact_lines(s)).wrap(Wrap { trim: false }),
        facts,
    );
    let rows = messages.height as usize;
    let mut mine: Vec<Line> = state
        .messages
        .iter()
        .filter(|m| m.from == id as u64 || m.to == id as u64)
        .take(rows)
        .map(message_line)
        .collect();
    // Newest at the bottom, as everywhere in the dashboard.
    mine.reverse();
    frame.render_widget(Paragraph::new(mine), messages);
}

/// The node's status, one fact per line, in the paper's words, then curl lines for its HTTP port.
fn fact_lines(s: &Status) -> Vec<Line<'static>> {
    let node = |v: Option<u64>| v.map_or("-".into(), |v| format!("n{v}"));
    let voters: Vec<String> = s
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| format!("n{}", m.id))
        .collect();
    let learners: Vec<String> = s
        .members
        .iter()
        .filter(|m| !m.voter)
        .map(|m| format!("n{}", m.id))
        .collect();
    let contact = match (s.role, s.quorum_contact_ms, s.leader_contact_ms) {
        (crate::raft::status::Role::Leader, Some(ms), _) => format!("quorum heard {ms} ms ago"),
        (crate::raft::status::Role::Leader, None, _) => "no quorum heard".into(),
        (_, _, Some(ms)) => format!("leader heard {ms} ms ago"),
        (_, _, None) => "no leader heard".into(),
    };
    let mut lines = vec![
        fact("role", format!("{} in term {}", s.role, s.term)),
        fact(
            "voted for",
            match s.voted_for {
                Some(v) => format!("n{v} in term {}", s.term),
                None => format!("nobody in term {}", s.term),
            },
        ),
        // openraft's vote: the node it holds, which a follower also takes from its leader.
        fact(
            "held vote",
            format!(
                "{} (openraft's{})",
                node(s.vote_holder),
                if s.vote_committed { ", committed" } else { "" }
            ),
        ),
        fact("leader", format!("{} ({contact})", node(s.leader_id))),
        fact(
            "last log",
            format!(
                "index {} term {}",
                opt(s.last_log_index),
                opt(s.last_log_term)
            ),
        ),
        fact(
            "commit",
            format!(
                "index {}  applied {}",
                opt(s.commit_index),
                opt(s.last_applied)
            ),
        ),
        fact(
            "snapshot",
            format!(
                "up to {}  purged up to {}",
                opt(s.snapshot_index),
                opt(s.purged_index)
            ),
        ),
        fact(
            "members",
            format!(
                "voters {}  learners {}",
                voters.join(" "),
                if learners.is_empty() {
                    "-".into()
                } else {
                    learners.join(" ")
                }
            ),
        ),
        fact(
            "state",
            format!(
                "{} keys, up {} s, pre-vote {}",
                s.keys,
                s.uptime_secs,
                if s.pre_vote { "on" } else { "off" }
            ),
        ),
    ];
    if let Some(f) = &s.followers {
        for (id, p) in f {
            lines.push(fact(
                &format!("→ n{id}"),
                format!(
                    "matchIndex {}  acked {} ms ago",
                    opt(p.matched_index),
                    opt(p.last_ack_ms)
                ),
            ));
        }
    }
    if let Some(fatal) = &s.fatal {
        lines.push(Line::from(Span::styled(
            format!("fatal: {fatal}"),
            theme::FAULT,
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("ask it yourself:", theme::HINT)));
    lines.push(Line::from(format!("curl -s {}/admin/status", s.http_addr)));
    lines.push(Line::from(format!("curl -s {}/keys/log", s.http_addr)));
    lines
}

fn fact(name: &str, value: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{name:>9} "), theme::HINT),
        Span::raw(value),
    ])
}
