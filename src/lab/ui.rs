//! Rendering only: draws a [`LabState`] and the [`View`] (selection, help) into a ratatui frame.
//! No input, no awaiting, no mutation. Readable at 120×40; the same layout shrinks to 80×24.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::command::ACTIONS;
use super::message::{MessageFilter, MessageView};
use super::state::{LabState, NodeView, TimelineEntry};
use super::theme;
use crate::observe::{AppendAnswer, Fate, ReplyFields, Rpc};
use crate::raft::status::{Role, Status};

/// What the person looking at the dashboard chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub selected: usize,
    pub help: bool,
    /// The messages pane is shown where the timeline is.
    pub messages: bool,
    /// The selected node's detail pane is shown in place of the bottom row.
    pub detail: bool,
    /// Timeline lines scrolled back from the newest (0: follow the newest).
    pub scroll: usize,
    /// The timeline shows only lines that name the selected node.
    pub only_selected: bool,
    /// The held message chosen with `]`/`[` (while paused), shown in the inspector.
    pub held: Option<u64>,
    /// The messages pane shows only this kind (`y` cycles through the kinds).
    pub kind: Option<Rpc>,
    /// The last command's outcome, shown in the title bar.
    pub message: String,
    /// The safety pane (verdicts with evidence, client-history lane) is shown where the
    /// timeline is.
    pub safety: bool,
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

pub fn render(frame: &mut Frame, state: &LabState, view: &View) {
    let area = frame.area();
    let node_rows = (state.nodes.len() as u16) * 2 + 2;
    let keys_rows = if area.width >= 150 { 1 } else { 2 };
    let [title, strip, nodes, bottom, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(node_rows),
        Constraint::Min(6),
        Constraint::Length(keys_rows),
    ])
    .areas(area);
    render_title(frame, title, state, view);
    frame.render_widget(
        Paragraph::new(super::safety_pane::strip(&state.safety)),
        strip,
    );
    render_nodes(frame, nodes, state, view);
    render_keys(frame, keys, state.replay.is_some());
    if view.detail {
        super::detail::render(frame, bottom, state, view.selected);
        if view.help {
            render_help(frame, area, state);
        }
        return;
    }
    // The messages pane takes the key/value pane's room too: its lines are long.
    let kv_share = if view.messages || view.safety || state.paused {
        0
    } else {
        25
    };
    let [links, timeline, kv] = Layout::horizontal([
        Constraint::Length(10 + 5 * state.nodes.len() as u16),
        Constraint::Min(30),
        Constraint::Percentage(kv_share),
    ])
    .areas(bottom);
    render_links(frame, links, state);
    // While paused the held messages and the inspector take the upper half.
    let timeline = if state.paused {
        let [held, rest] = Layout::vertical([
            Constraint::Length(super::held::height(state, view.held)),
            Constraint::Min(4),
        ])
        .areas(timeline);
        super::held::render(frame, held, state, view.held);
        rest
    } else {
        timeline
    };
    if view.safety {
        super::safety_pane::render(frame, timeline, &state.safety, state.uptime_ms);
    } else if view.messages {
        render_messages(frame, timeline, state, view);
    } else {
        render_timeline(frame, timeline, state, view);
    }
    if kv_share > 0 {
        render_kv(frame, kv, state);
    }
    if view.help {
        render_help(frame, area, state);
    }
}

fn render_title(frame: &mut Frame, area: Rect, state: &LabState, view: &View) {
    if let Some(cursor) = &state.replay {
        let line = Line::from(vec![
            Span::styled(" raftkv lab ", theme::TITLE),
            Span::styled(" REPLAY ", theme::PAUSED),
            Span::raw(format!(
                "  t={:.3}s of {:.1}–{:.1}s  record {}/{}  ",
                state.uptime_ms as f64 / 1000.0,
                cursor.first_ms as f64 / 1000.0,
                cursor.last_ms as f64 / 1000.0,
                cursor.record,
                cursor.records,
            )),
            Span::styled(cursor.what.clone(), theme::NOTICE),
            Span::raw("  "),
            Span::styled(view.message.clone(), theme::MESSAGE),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let (run, run_style) = if state.paused {
        ("PAUSED", theme::PAUSED)
    } else {
        ("RUNNING", theme::RUNNING)
    };
    let line = Line::from(vec![
        Span::styled(" raftkv lab ", theme::TITLE),
        Span::styled(format!(" {run} "), run_style),
        Span::raw(format!(
            "  pre-vote {}  timing {} (heartbeat {} ms)  ",
            if state.pre_vote { "on" } else { "off" },
            state.timing,
            state.heartbeat_ms,
        )),
        Span::styled(speed(state.slowdown), theme::NOTICE),
        Span::raw(format!("  t={:.1}s  ", state.uptime_ms as f64 / 1000.0)),
        Span::styled(view.message.clone(), theme::MESSAGE),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

/// The speed in the header: real time, or how many times slower (`+`/`-`).
fn speed(slowdown: u32) -> String {
    match slowdown {
        1 => "speed ×1 (real time)".into(),
        n => format!("speed: {n}× slower"),
    }
}

fn render_nodes(frame: &mut Frame, area: Rect, state: &LabState, view: &View) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" nodes  (log: each entry's term from index #N on; ┃ after the commit index; dim = not committed) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let leader = state.leader().map(|s| s.id);
    let mut lines = Vec::new();
    for node in &state.nodes {
        lines.push(node_line(
            node,
            state,
            view.selected == node.id,
            inner.width < 110,
        ));
        lines.push(log_line(node, state, leader, inner.width));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn node_line(node: &NodeView, state: &LabState, selected: bool, compact: bool) -> Line<'static> {
    let marker = if selected { "▶" } else { " " };
    let mut spans = vec![Span::styled(format!("{marker}n{} ", node.id), theme::TITLE)];
    let group = node.group.map_or(String::new(), |g| format!(" [{g}]"));
    if node.removed {
        spans.push(Span::styled("REMOVED  ", theme::HINT));
        spans.push(Span::raw("not a member any more; its id is never reused"));
        return Line::from(spans);
    }
    let Some(s) = node.status.as_ref().filter(|_| node.up) else {
        spans.push(Span::styled("DOWN     ", theme::FAULT));
        spans.push(Span::raw(format!("killed; restart it with r{group}")));
        return Line::from(spans);
    };
    // During a pause every quorum contact ages; that is not a lost quorum.
    let stale = s.role == Role::Leader && !s.has_quorum && !state.paused;
    let role = if stale {
        "LEADER?".to_string()
    } else {
        s.role.as_str().to_uppercase()
    };
    spans.push(Span::styled(format!("{role:<10}"), theme::role(s.role)));
    let vote = s.voted_for.map_or("-".into(), |v| format!("n{v}"));
    let leader = s.leader_id.map_or("-".into(), |v| format!("n{v}"));
    let (log, commit, applied) = (
        opt(s.last_log_index),
        opt(s.commit_index),
        opt(s.last_applied),
    );
    spans.push(Span::raw(if compact {
        // 80 columns: the same facts, abbreviated (T term, V vote, L leader, log/commit/applied).
        format!("T{:<3} V{vote:<3} L{leader:<3} {log:>4}/{commit:>4}/{applied:>4}", s.term)
    } else {
        format!("term {:<3} vote {vote:<2} leader {leader:<2} log {log:<5} commit {commit:<5} applied {applied:<5}", s.term)
    }));
    spans.push(Span::styled(group, theme::NOTICE));
    spans.push(Span::raw(" "));
    spans.extend(timer(s, state));
    Line::from(spans)
}

/// The election timer: drains from the last contact with a leader to the latest moment this
/// follower would start an election. A leader shows its quorum contact instead.
fn timer(s: &Status, state: &LabState) -> Vec<Span<'static>> {
    const WIDTH: u64 = 10;
    if state.paused {
        // Timers are frozen during a pause; wall-clock ages would drain the bar misleadingly.
        return vec![Span::styled("timer paused", theme::NOTICE)];
    }
    let contact = if s.role == Role::Leader {
        s.quorum_contact_ms
    } else {
        s.leader_contact_ms
    };
    match (s.role, contact) {
        (Role::Leader, Some(ms)) if s.has_quorum => {
            vec![Span::styled(format!("quorum ✓ {ms}ms ago"), theme::HEALTHY)]
        }
        (Role::Leader, _) => vec![Span::styled("no quorum: stale leader", theme::STALE)],
        (_, Some(ms)) => {
            let full = state.election_deadline_ms.1.max(1);
            let left = full.saturating_sub(ms);
            let cells = (left * WIDTH).div_ceil(full).min(WIDTH);
            let style = if ms >= state.election_deadline_ms.0 {
                theme::TIMER_DUE
            } else {
                theme::TIMER
            };
            vec![
                Span::styled("█".repeat(cells as usize), style),
                Span::styled("░".repeat((WIDTH - cells) as usize), theme::HINT),
                Span::raw(format!(" {:.1}s", left as f64 / 1000.0)),
            ]
        }
        _ => vec![Span::styled("timer: no leader heard", theme::NOTICE)],
    }
}

fn log_line(node: &NodeView, state: &LabState, leader: Option<u64>, width: u16) -> Line<'static> {
    let Some(s) = node.status.as_ref().filter(|_| node.up) else {
        return Line::from("");
    };
    // Each entry is its term, as a number (as in the paper's figures), padded to the widest term
    // so that columns line up across nodes; the newest entries that fit are shown.
    let digits = s.recent_log.iter().map(|(_, t)| t.to_string().len()).max();
    let cell = digits.unwrap_or(1) + 1;
    let room = (width as usize).saturating_sub(34) / cell;
    let from = s.recent_log.len().saturating_sub(room);
    let shown = &s.recent_log[from..];
    let Some((first, _)) = shown.first() else {
        return Line::from(Span::styled("     log (empty)", theme::HINT));
    };
    let mut spans = vec![Span::styled(format!("     log #{first:<4}"), theme::HINT)];
    for (index, term) in shown {
        let committed = s.commit_index.is_some_and(|c| *index <= c);
        let style = Style::new().fg(theme::term_colour(*term));
        let style = if committed {
            style
        } else {
            style.add_modifier(Modifier::DIM)
        };
        // The gap after the last committed entry is the commit marker.
        let gap = if s.commit_index == Some(*index) {
            "┃"
        } else {
            " "
        };
        spans.push(Span::styled(format!("{term:>w$}", w = cell - 1), style));
        spans.push(Span::styled(gap, theme::HINT));
    }
    if let (Some(leader), Some(last)) = (leader, s.last_log_index) {
        if let Some(l) = state
            .nodes
            .get(leader as usize)
            .and_then(|n| n.status.as_ref())
            && let Some(p) = l.followers.as_ref().and_then(|f| f.get(&s.id))
        {
            let next = state.next_index(leader, s.id);
            let next = next.map_or(String::new(), |n| format!("  nextIndex {n}"));
            spans.push(Span::styled(
                format!("  matchIndex {}{next}", opt(p.matched_index)),
                theme::HINT,
            ));
        } else if s.id == leader {
            spans.push(Span::styled(format!("  last {last}"), theme::HINT));
        }
    }
    Line::from(spans)
}

fn render_links(frame: &mut Frame, area: Rect, state: &LabState) {
    let n = state.nodes.len() as u64;
    let mut lines = vec![Line::from(
        std::iter::once(Span::raw("from\\to"))
            .chain((0..n).map(|t| Span::raw(format!("{:>5}", format!("n{t}")))))
            .collect::<Vec<_>>(),
    )];
    for from in 0..n {
        let mut spans = vec![Span::raw(format!("  n{from:<4}"))];
        for to in 0..n {
            let cell = match state.link(from, to) {
                None => Span::raw("    ·"),
                Some(l) if l.cut => Span::styled("    ✕", theme::FAULT),
                Some(l) => {
                    let total: u32 = l.per_second.values().sum();
                    let votes = l.per_second.get("Vote").copied().unwrap_or(0)
                        + l.per_second.get("PreVote").copied().unwrap_or(0);
                    let style = if votes > 0 {
                        theme::NOTICE
                    } else {
                        Style::new()
                    };
                    Span::styled(format!("{total:>5}"), style)
                }
            };
            spans.push(cell);
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(Span::styled(
        "msgs/s; ✕ cut; yellow: votes",
        theme::HINT,
    )));
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" links ")),
        area,
    );
}

/// One message: when, who to whom, kind and term (red if lost or in conflict, yellow for votes,
/// dim for heartbeats), then its fields and fate.
pub(super) fn message_line(m: &MessageView) -> Line<'static> {
    let style = match (&m.fate, &m.reply) {
        (Fate::Dropped | Fate::Failed, _) => theme::STALE,
        (_, Some(ReplyFields::Append(AppendAnswer::Conflict))) => theme::STALE,
        _ if m.kind == Rpc::Heartbeat => theme::HINT,
        _ if matches!(m.kind, Rpc::Vote | Rpc::PreVote) => theme::NOTICE,
        _ => Style::new(),
    };
    Line::from(vec![
        Span::styled(format!("{:>6.1}s ", m.at_ms as f64 / 1000.0), theme::HINT),
        Span::styled(
            format!("n{}→n{} {:?} t{} ", m.from, m.to, m.kind, m.term),
            style,
        ),
        Span::raw(m.summary()),
    ])
}

/// The newest messages that fit, newest at the bottom like the timeline: when, who to whom, kind,
/// term, the fields and what became of the message.
fn render_messages(frame: &mut Frame, area: Rect, state: &LabState, view: &View) {
    let rows = area.height.saturating_sub(2) as usize;
    let filter = MessageFilter {
        kind: view.kind,
        node: view.only_selected.then_some(view.selected as u64),
    };
    let lines: Vec<Line> = state
        .messages
        .iter()
        .filter(|m| filter.matches(m))
        .take(rows)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(message_line)
        .collect();
    let kind = view
        .kind
        .map_or("every kind".into(), |k| format!("{k:?} only"));
    let node = filter
        .node
        .map_or("every node".into(), |n| format!("n{n} only"));
    let title = format!(" messages: {kind}, {node} (y: kind  f: node  m: timeline) ");
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

/// Whether a timeline line is about node `id` (names it as a word: n2, not n21).
pub(super) fn names_node(text: &str, id: usize) -> bool {
    let name = format!("n{id}");
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The timeline from `view.scroll` lines back, newest at the bottom; repeated lines show their
/// count; with `only_selected`, only the lines that name the selected node.
fn render_timeline(frame: &mut Frame, area: Rect, state: &LabState, view: &View) {
    let rows = area.height.saturating_sub(2) as usize;
    let shown: Vec<&TimelineEntry> = state
        .timeline
        .iter()
        .filter(|e| !view.only_selected || names_node(&e.text, view.selected))
        .collect();
    let scroll = view.scroll.min(shown.len().saturating_sub(rows));
    let end = shown.len() - scroll;
    let lines: Vec<Line> = shown[end.saturating_sub(rows)..end]
        .iter()
        .map(|e| {
            let times = if e.count > 1 {
                format!(" ×{}", e.count)
            } else {
                String::new()
            };
            Line::from(vec![
                Span::styled(format!("{:>6.1}s ", e.at_ms as f64 / 1000.0), theme::HINT),
                Span::raw(format!("{}{times}", e.text)),
            ])
        })
        .collect();
    let mut title = String::from(" timeline ");
    if view.only_selected {
        title += &format!("of n{} (f: all) ", view.selected);
    }
    if scroll > 0 {
        title += &format!("— {scroll} newer lines below (End: follow) ");
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn render_kv(frame: &mut Frame, area: Rect, state: &LabState) {
    let lines: Vec<Line> = state
        .kv
        .iter()
        .map(|(k, v)| {
            let shown = if v.len() > 6 {
                format!("[{} … {}] ({})", v[0], v[v.len() - 1], v.len())
            } else {
                format!("{v:?}")
            };
            Line::from(format!("{k} = {shown}"))
        })
        .collect();
    let n = state.kv.len();
    let title = format!(" key/value ({n} key{}) ", if n == 1 { "" } else { "s" });
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn render_keys(frame: &mut Frame, area: Rect, replay: bool) {
    let mut spans = Vec::new();
    if replay {
        for (key, label) in super::replay::KEYS {
            spans.push(Span::styled(format!(" {key}"), theme::KEY_CAP));
            spans.push(Span::raw(format!(" {label} ")));
        }
        spans.push(Span::raw("  (views as live: ←→ m ⏎ f y ] [ ?)"));
    }
    for action in ACTIONS.iter().filter(|a| !a.label.is_empty() && !replay) {
        let key = action.key_name();
        spans.push(Span::styled(format!(" {key}"), theme::KEY_CAP));
        spans.push(Span::raw(format!(" {} ", action.label)));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).wrap(Wrap { trim: false }),
        area,
    );
}

/// The help overlay: every key with its help. When the terminal is too short for one column, two
/// columns, each help cut to its column (the first words stay readable at 80×24).
fn render_help(frame: &mut Frame, area: Rect, state: &LabState) {
    let one_column = ACTIONS.len() as u16 + 6 <= area.height;
    let rows = if one_column {
        ACTIONS.len()
    } else {
        ACTIONS.len().div_ceil(2)
    };
    let width = if one_column {
        area.width.min(90)
    } else {
        area.width
    };
    let height = (rows as u16 + 6).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let column = (width.saturating_sub(2) / if one_column { 1 } else { 2 }) as usize;
    let entry = |a: &super::command::Action| {
        let key = format!("{:>6}  ", a.key_name());
        let help: String = a.help.chars().take(column.saturating_sub(9)).collect();
        vec![
            Span::styled(key, theme::TITLE),
            Span::raw(format!("{help:<w$} ", w = column.saturating_sub(9))),
        ]
    };
    let mut lines: Vec<Line> = (0..rows)
        .map(|r| {
            let mut spans = entry(&ACTIONS[r]);
            if let Some(right) = ACTIONS.get(r + rows).filter(|_| !one_column) {
                spans.extend(entry(right));
            }
            Line::from(spans)
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "A follower starts an election {:.1}–{:.1}s after it last heard from a leader.",
        state.election_deadline_ms.0 as f64 / 1000.0,
        state.election_deadline_ms.1 as f64 / 1000.0
    )));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" help (? to close) "),
        ),
        popup,
    );
}
