//! Drawing a guided exercise over the dashboard: the step's text, the question and its choices
//! (the right one shown once answered), what the step did, its checks and the explanation.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::coach::{CoachView, Waiting};
use super::theme;

pub fn render(frame: &mut Frame, area: Rect, coach: &CoachView) {
    let mut lines: Vec<Line> = coach
        .say
        .lines()
        .map(|l| Line::from(l.to_string()))
        .collect();
    if let Some(question) = &coach.predict {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!("Predict: {question}"),
            theme::TITLE,
        )));
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
                format!(" {mark} {n}. {choice}"),
                style,
            )));
        }
    }
    if !coach.log.is_empty() {
        lines.push(Line::from(""));
        lines.extend(
            coach
                .log
                .iter()
                .map(|l| Line::from(Span::styled(l.clone(), theme::HINT))),
        );
    }
    for (check, ok, seen) in &coach.checks {
        let (mark, style) = if *ok {
            ("✓", theme::HEALTHY)
        } else {
            ("✗", theme::FAULT)
        };
        lines.push(Line::from(Span::styled(
            format!("{mark} {check}  ({seen})"),
            style,
        )));
    }
    if let Some(explain) = coach
        .explain
        .as_ref()
        .filter(|_| coach.waiting != Waiting::Answer)
    {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!("Why: {}", explain.trim()),
            theme::NOTICE,
        )));
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
