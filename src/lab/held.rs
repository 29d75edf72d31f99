//! The held messages while the lab is paused, and the inspector: the list of messages the pause
//! holds, oldest first, with the one the learner chose (`]`/`[`) marked, and every field of that
//! message in the paper's names (candidateId, lastLogIndex, prevLogTerm, leaderCommit,
//! voteGranted, …). `.` delivers the oldest, `d` the chosen one, `D` drops it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::message::{MessageView, held_line};
use super::state::LabState;
use super::theme;
use crate::observe::{AppendAnswer, Fields, Held, Leg, LogPos, ReplyFields, Rpc};

/// The chosen held message: the learner's choice while it is still held, else the oldest.
pub fn chosen(state: &LabState, choice: Option<u64>) -> Option<&Held> {
    let held = &state.held;
    choice
        .and_then(|id| held.iter().find(|h| h.id == id))
        .or_else(|| held.first())
}

/// At most this many held messages are listed at once (the list scrolls to the chosen one).
const LIST_ROWS: usize = 8;

/// The rows the held list and the inspector need, borders included.
pub fn height(state: &LabState, choice: Option<u64>) -> u16 {
    let list = state.held.len().clamp(1, LIST_ROWS) + 2;
    let inspector = chosen(state, choice).map_or(1, |h| inspect(h).len()) + 2;
    (list + inspector) as u16
}

/// The held list above, the inspector of the chosen message below.
pub fn render(frame: &mut Frame, area: Rect, state: &LabState, choice: Option<u64>) {
    let chosen = chosen(state, choice);
    let list_rows = (state.held.len().clamp(1, LIST_ROWS) + 2) as u16;
    let [list, inspector] =
        Layout::vertical([Constraint::Length(list_rows), Constraint::Min(3)]).areas(area);
    let rows = list.height.saturating_sub(2) as usize;
    // Keep the chosen message in view.
    let at = chosen.and_then(|c| state.held.iter().position(|h| h.id == c.id));
    let skip = at.map_or(0, |i| (i + 1).saturating_sub(rows));
    let lines: Vec<Line> = state
        .held
        .iter()
        .skip(skip)
        .take(rows)
        .map(|h| {
            let mark = chosen.is_some_and(|c| c.id == h.id);
            let style = if mark { theme::SELECTED } else { style_of(h) };
            Line::from(vec![
                Span::raw(if mark { "▶ " } else { "  " }),
                Span::styled(held_line(h), style),
            ])
        })
        .collect();
    let title = match state.held.len() {
        0 => " held: nothing in flight (t: time a node out) ".to_string(),
        n => format!(" held: {n}, oldest first (. step  ]/[ choose  d deliver  D drop) "),
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        list,
    );
    let lines = chosen.map(inspect).unwrap_or_default();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" inspector: the chosen message, every field "),
        ),
        inspector,
    );
}

fn style_of(h: &Held) -> ratatui::style::Style {
    match h.rpc {
        Rpc::Vote | Rpc::PreVote => theme::NOTICE,
        Rpc::Heartbeat => theme::HINT,
        _ => ratatui::style::Style::new(),
    }
}

/// Every field of a held message, one per line, in the paper's names.
pub fn inspect(h: &Held) -> Vec<Line<'static>> {
    let mut rows: Vec<(String, String)> = vec![
        (
            "message".into(),
            format!("#{} ({:?})", h.id, h.leg).to_lowercase(),
        ),
        ("from → to".into(), format!("n{} → n{}", h.from, h.to)),
        ("kind".into(), format!("{:?}", h.rpc)),
    ];
    let pos = |p: &Option<LogPos>| {
        p.map_or(("none".into(), "none".into()), |p| {
            (p.index.to_string(), p.term.to_string())
        })
    };
    // The request's sender: for a reply, the node it goes back to.
    let sender = if h.leg == Leg::Request { h.from } else { h.to };
    if h.rpc != Rpc::Forward {
        rows.push(("term".into(), h.term.to_string()));
    }
    match &h.fields {
        Some(Fields::Vote { last_log }) => {
            let (i, t) = pos(last_log);
            rows.push(("candidateId".into(), format!("n{sender}")));
            rows.push(("lastLogIndex".into(), i));
            rows.push(("lastLogTerm".into(), t));
        }
        Some(Fields::Append {
            prev_log,
            first,
            last,
            leader_commit,
        }) => {
            let (i, t) = pos(prev_log);
            rows.push(("leaderId".into(), format!("n{sender}")));
            rows.push(("prevLogIndex".into(), i));
            rows.push(("prevLogTerm".into(), t));
            let entries = match (first, last) {
                (Some(f), Some(l)) => format!(
                    "{} (indexes {}..={}, terms {}..={})",
                    l.index - f.index + 1,
                    f.index,
                    l.index,
                    f.term,
                    l.term
                ),
                _ => "none (a heartbeat)".into(),
            };
            rows.push(("entries[]".into(), entries));
            let commit = leader_commit.map_or("none".into(), |c| c.to_string());
            rows.push(("leaderCommit".into(), commit));
        }
        Some(Fields::Snapshot {
            last_included,
            bytes,
            offset,
            size,
            done,
        }) => {
            let (i, t) = pos(last_included);
            rows.push(("lastIncludedIndex".into(), i));
            rows.push(("lastIncludedTerm".into(), t));
            rows.push(("offset".into(), format!("{offset} of {size} bytes")));
            rows.push(("data[]".into(), format!("{bytes} bytes")));
            rows.push(("done".into(), done.to_string()));
        }
        Some(Fields::TransferLeader { to, last_log }) => {
            let (i, t) = pos(last_log);
            rows.push(("to".into(), format!("n{to}")));
            rows.push(("lastLogIndex".into(), i));
            rows.push(("lastLogTerm".into(), t));
        }
        Some(Fields::Forward { what }) => rows.push(("request".into(), what.clone())),
        None => {}
    }
    match &h.reply {
        Some(ReplyFields::Vote {
            term,
            granted,
            vote_for,
            last_log,
            ..
        }) => {
            rows.push(("reply: term".into(), term.to_string()));
            rows.push(("reply: voteGranted".into(), granted.to_string()));
            let vote = vote_for.map_or("none".into(), |v| format!("n{v}"));
            rows.push(("reply: its vote".into(), vote));
            let (i, t) = pos(last_log);
            rows.push(("reply: its last log".into(), format!("index {i}, term {t}")));
        }
        Some(ReplyFields::Append(answer)) => {
            let success = match answer {
                AppendAnswer::Success => "true".into(),
                AppendAnswer::Partial { matched } => {
                    let (i, t) = pos(matched);
                    format!("true, matched through index {i} (term {t})")
                }
                AppendAnswer::Conflict => "false: no entry matches prevLogIndex/prevLogTerm".into(),
                AppendAnswer::HigherTerm { term } => format!("false: its term {term} is newer"),
                AppendAnswer::Failed { why } => format!("failed: {why}"),
            };
            rows.push(("reply: success".into(), success));
        }
        Some(ReplyFields::Snapshot { term, next_offset }) => {
            rows.push(("reply: term".into(), term.to_string()));
            if let Some(next) = next_offset {
                rows.push(("reply: next offset".into(), next.to_string()));
            }
        }
        Some(ReplyFields::Other { text }) => rows.push(("reply".into(), text.clone())),
        None => {}
    }
    if let Some(why) = MessageView::of_held(h).why {
        rows.push(("why".into(), why));
    }
    rows.into_iter()
        .map(|(name, value)| {
            Line::from(vec![
                Span::styled(format!("{name:>20}  "), theme::HINT),
                Span::raw(value),
            ])
        })
        .collect()
}
