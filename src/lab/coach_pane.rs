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
    if !coach.log.is_empty() {
        lines.push(Line::from(""));
        let log = coach.log.iter().map(|l| one_line(l, width));
        lines.extend(log.map(|l| Line::from(Span::styled(l, theme::HINT))));
    }
    for (check, ok, seen) in &coach.checks {
        let (mark, style) = if *ok {
            ("✓", theme::HEALTHY)
        } else {
            ("✗", theme::FAULT)
        };
        let text = one_line(&format!("{mark} {check}  ({seen})"), width);
        lines.push(Line::from(Span::styled(text, style)));
    }
    if let Some(explain) = coach
        .explain
        .as_ref()
        .filter(|_| coach.waiting != Waiting::Answer)
    {
        lines.push(Line::from(""));
        lines.extend(reflow(explain, "Why: ", theme::NOTICE));
    }
    let hint = match (coach.waiting, coach.passed) {
        (Waiting::Answer, _) => format!("press 1–{} to answer", coach.choices.len()),
        (Waiting::Next, _) => "Enter: next step".into(),
        (Waiting::Done, Some(true)) => "done: every check held (q quits)".into(),
        (Waiting::Done, _) => "done: the exercise did not turn out as written (q quits)".into(),
        (Waiting::Working, _) => "running…".into(),
    };
    let title = format!(
        " exercise: {} · step {} of {} · {hint} ",
        coach.title, coach.step, coach.steps
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
