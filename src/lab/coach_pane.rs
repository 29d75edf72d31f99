//! Drawing a guided exercise over the dashboard: the step's text, the question and its choices
//! (the right one shown once answered), what the step did, its checks and the explanation.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::coach::{CoachView, Waiting};
use super::theme;

/// Text as written in the exercise file, its lines joined into paragraphs (the pane wraps them),
/// the first one after `lead`.
fn reflow(text: &str, lead: &str, style: Style) -> Vec<Line<'static>> {
    let paragraphs = text.trim().split("\n\n").enumerate();
    paragraphs
        .map(|(i, p)| {
            let words = p.split_whitespace().collect::<Vec<_>>().join(" ");
            let lead = if i == 0 { lead } else { "" };
            Line::from(Span::styled(format!("{lead}{words}"), style))
        })
        .collect()
}

/// One line of what an action answered, cut to fit: a `drop all` can list dozens of messages.
fn one_line(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub fn render(frame: &mut Frame, area: Rect, coach: &CoachView) {
    let width = area.width.saturating_sub(3) as usize;
    let mut lines = reflow(&coach.say, "", Style::new());
    if let Some(question) = &coach.predict {
        lines.push(Line::from(""));
        lines.extend(reflow(question, "Predict: ", theme::TITLE));
        let revealed = coach.waiting != Waiting::Answer;
        for (i, choice) in coach.choices.iter().enumerate() {
            let n = i + 1;
            let right = revealed && coach.answer == Some(n);
            let mark = match (coach.chosen == Some(n), right) {
                (true, true) => "✓",
                (true, false) => "✗",
                (false, true) => "→",
                _ => " ",
            };
            let style = if right {
                theme::HEALTHY
            } else {
                theme::MESSAGE
            };
            lines.push(Line::from(Span::styled(
                format!("{mark} {n}. {choice}"),
                style,
            )));
        }
    }
    let mut tail = Vec::new();
    for (check, ok, seen) in &coach.checks {
        let (mark, style) = if *ok {
            ("✓", theme::HEALTHY)
        } else {
            ("✗", theme::FAULT)
        };
        let text = one_line(&format!("{mark} {check}  ({seen})"), width);
        tail.push(Line::from(Span::styled(text, style)));
    }
    if let Some(explain) = coach
        .explain
        .as_ref()
        .filter(|_| coach.waiting != Waiting::Answer)
    {
        tail.push(Line::from(""));
        tail.extend(reflow(explain, "Why: ", theme::NOTICE));
    }
    // What the actions answered is the first thing to go when the pane is short: the text, the
    // question, the checks and the reason matter more.
    let rows = |ls: &[Line]| -> usize {
        ls.iter()
            .map(|l| l.width().div_ceil(width.max(1)).max(1))
            .sum()
    };
    let room = (area.height as usize).saturating_sub(2 + rows(&lines) + rows(&tail) + 1);
    if !coach.log.is_empty() {
        lines.push(Line::from(""));
        let skip = coach.log.len().saturating_sub(room.max(1));
        if skip > 0 {
            let said = format!("(… {skip} earlier actions)");
            lines.push(Line::from(Span::styled(said, theme::HINT)));
        }
        let log = coach
            .log
            .iter()
            .skip(skip + usize::from(skip > 0))
            .map(|l| one_line(l, width));
        lines.extend(log.map(|l| Line::from(Span::styled(l, theme::HINT))));
    }
    lines.extend(tail);
    let hint = match (coach.waiting, coach.passed) {
        (Waiting::Answer, _) => format!("press 1–{} to answer", coach.choices.len()),
        (Waiting::Next, _) => "Enter: next step".into(),
        (Waiting::Done, Some(true)) => "done: every check held (q quits)".into(),
        (Waiting::Done, _) => "done: the exercise did not turn out as written (q quits)".into(),
        (Waiting::Working, _) => "running…".into(),
    };
    // The step and what to press go on the bottom border: a long title would cut them off.
    let title = format!(" exercise: {} ", coach.title);
    let status = format!(" step {} of {} · {hint} ", coach.step, coach.steps);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title)
                .title_bottom(Line::from(status).style(theme::TITLE)),
        ),
        area,
    );
}
