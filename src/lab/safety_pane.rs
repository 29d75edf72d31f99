//! Drawing the safety checks: a one-line strip under the title (every property green or red)
//! and, on `S`, a pane with each verdict's evidence and the client-history lane: each request
//! the lab sent as an interval on a time axis, coloured by outcome.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::safety::{ClientOp, Outcome, SafetyView};
use super::theme;

/// The strip: ✓ or ✗ per property.
pub fn strip(safety: &SafetyView) -> Line<'static> {
    let mut spans = vec![Span::styled(" safety ", theme::TITLE)];
    for verdict in &safety.verdicts {
        let (mark, style) = if verdict.holds() {
            ("✓", theme::HEALTHY)
        } else {
            ("✗", theme::FAULT)
        };
        spans.push(Span::styled(format!(" {mark} {}", verdict.property), style));
    }
    spans.push(Span::styled("  (S: evidence)", theme::HINT));
    Line::from(spans)
}

/// The pane: verdicts with what they checked or the first offending observations, then the
/// client-history lane (newest at the bottom) over the requests that fit.
pub fn render(frame: &mut Frame, area: Rect, safety: &SafetyView, now_ms: u64) {
    let mut lines = Vec::new();
    for verdict in &safety.verdicts {
        lines.push(match &verdict.violation {
            None => Line::from(vec![
                Span::styled(format!("✓ {:<21}", verdict.property), theme::HEALTHY),
                Span::styled(
                    format!("holds: {} observations checked", verdict.checked),
                    theme::HINT,
                ),
            ]),
            Some((at, text)) => Line::from(vec![
                Span::styled(format!("✗ {:<21}", verdict.property), theme::FAULT),
                Span::styled(
                    format!("at {:.3}s: {text}", *at as f64 / 1000.0),
                    theme::STALE,
                ),
            ]),
        });
    }
    lines.push(Line::from(""));
    // Borders, the blank line and the lane's heading take four rows.
    let rows = (area.height as usize).saturating_sub(lines.len() + 4);
    let shown: Vec<&ClientOp> = safety.history.iter().rev().take(rows).rev().collect();
    let count = |f: fn(&Outcome) -> bool| safety.history.iter().filter(|o| f(&o.outcome)).count();
    lines.push(Line::from(Span::styled(
        format!(
            "client requests, sent → answered: {} ok (green), {} unknown (red), {} waiting",
            count(|o| matches!(o, Outcome::Ok { .. })),
            count(|o| matches!(o, Outcome::Unknown { .. })),
            count(|o| matches!(o, Outcome::Pending)),
        ),
        theme::TITLE,
    )));
    let label_width = 34usize;
    let lane = (area.width as usize)
        .saturating_sub(label_width + 4)
        .max(10);
    let start = shown.first().map_or(0, |o| o.invoked_ms);
    let end = shown
        .iter()
        .map(|o| o.completed_ms.unwrap_or(now_ms))
        .max()
        .unwrap_or(now_ms)
        .max(start + 1);
    let column = |t: u64| {
        ((t.saturating_sub(start)) as u128 * (lane - 1) as u128 / (end - start) as u128) as usize
    };
    for op in shown {
        let (style, result) = match &op.outcome {
            Outcome::Ok { len } => (theme::HEALTHY, format!("len {len}")),
            Outcome::Unknown { .. } => (theme::FAULT, "unknown".into()),
            Outcome::Pending => (theme::NOTICE, "…".into()),
        };
        let label = format!("n{} APPEND {} {} {result}", op.via, op.key, op.value);
        let label: String = label.chars().take(label_width).collect();
        let (a, b) = (
            column(op.invoked_ms),
            column(op.completed_ms.unwrap_or(now_ms)),
        );
        let bar = if b > a {
            format!("├{}┤", "─".repeat(b - a - 1))
        } else {
            "│".into()
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{label:<label_width$} ")),
            Span::raw(" ".repeat(a)),
            Span::styled(bar, style),
        ]));
    }
    let title = format!(
        " safety: Raft's properties (Figure 3), checked on what the lab saw; lane {:.1}s–{:.1}s  (S: back) ",
        start as f64 / 1000.0,
        end as f64 / 1000.0
    );
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
