//! The dashboard's run loop: terminal input becomes [`LabCommand`]s for the engine, state changes
//! and a frame tick become redraws. Key handling is a plain function ([`on_key`]) so tests can
//! drive it without a terminal; drawing goes through `ui::render`.

use std::io;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::Rect;
use tokio::sync::{mpsc, watch};

use super::coach::{CoachView, Learner, Waiting};
use super::coach_pane;
use super::command::{self, Context, KeyAction, LabCommand};
use super::replay::Replay;
use super::ui::{self, View};
use super::{Lab, LabState};
use crate::observe::{Held, Rpc};

/// What a key press asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    Run(LabCommand),
}

/// Applies a key to the view; returns the command to run, if any.
pub fn on_key(view: &mut View, state: &LabState, key: char) -> Effect {
    let n = state.nodes.len().max(1);
    if let Some(digit) = key.to_digit(10).filter(|d| (*d as usize) < n) {
        view.selected = digit as usize;
        return Effect::None;
    }
    // Timeline navigation: PgUp is in ACTIONS (and so in the help); its siblings are here.
    let page = 10;
    match key {
        '⇟' => view.scroll = view.scroll.saturating_sub(page),
        '⇤' => view.scroll = state.timeline.len(),
        '⇥' => view.scroll = 0,
        _ => {}
    }
    if key == '[' {
        view.held = next_held(&state.held, view.held, -1);
        return Effect::None;
    }
    match command::action_for(key) {
        Some(KeyAction::SelectNext) => view.selected = (view.selected + 1) % n,
        Some(KeyAction::SelectPrev) => view.selected = (view.selected + n - 1) % n,
        Some(KeyAction::Help) => view.help = !view.help,
        Some(KeyAction::Messages) => {
            view.messages = !view.messages;
            view.safety = false;
        }
        Some(KeyAction::Safety) => view.safety = !view.safety,
        Some(KeyAction::Detail) => view.detail = !view.detail,
        Some(KeyAction::ScrollBack) => view.scroll = (view.scroll + page).min(state.timeline.len()),
        Some(KeyAction::OnlySelected) => view.only_selected = !view.only_selected,
        Some(KeyAction::NextHeld) => view.held = next_held(&state.held, view.held, 1),
        Some(KeyAction::NextKind) => view.kind = next_kind(view.kind),
        Some(KeyAction::Quit) => return Effect::Quit,
        Some(KeyAction::Command(make)) => {
            let context = Context {
                selected: view.selected,
                nodes: n,
                paused: state.paused,
                pre_vote: state.pre_vote,
                slowdown: state.slowdown,
                held: view
                    .held
                    .filter(|id| state.held.iter().any(|h| h.id == *id)),
                requests: state.requests,
            };
            return Effect::Run(make(&context));
        }
        None => {}
    }
    Effect::None
}

/// The held message `by` places after (or before, when negative) `chosen`, wrapping around;
/// the oldest when nothing valid is chosen.
fn next_held(held: &[Held], chosen: Option<u64>, by: isize) -> Option<u64> {
    let n = held.len() as isize;
    let at = chosen.and_then(|id| held.iter().position(|h| h.id == id));
    let next = match at {
        Some(i) => (i as isize + by).rem_euclid(n.max(1)),
        None => 0,
    };
    held.get(next as usize).map(|h| h.id)
}

/// The kinds `y` cycles through in the messages pane, then back to every kind.
const KINDS: [Rpc; 7] = [
    Rpc::Vote,
    Rpc::PreVote,
    Rpc::Append,
    Rpc::Heartbeat,
    Rpc::Snapshot,
    Rpc::TransferLeader,
    Rpc::Forward,
];

fn next_kind(now: Option<Rpc>) -> Option<Rpc> {
    match now.and_then(|k| KINDS.iter().position(|x| *x == k)) {
        None => Some(KINDS[0]),
        Some(i) => KINDS.get(i + 1).copied(),
    }
}

/// Runs the dashboard on a real terminal until `q`; restores the terminal also on panic.
pub async fn run(lab: Lab) -> io::Result<()> {
    let mut terminal = ratatui::init();
    let result = run_on(&mut terminal, lab).await;
    ratatui::restore();
    result
}

/// Runs the dashboard over a recorded trace until `q`: the cursor keys move through it, the
/// view keys (selection, messages, inspector, help) work as live, commands do not run.
pub async fn run_replay(mut replay: Replay) -> io::Result<()> {
    let mut terminal = ratatui::init();
    let mut input = EventStream::new();
    let mut view = View::default();
    let result = async {
        loop {
            let state = replay.state();
            terminal.draw(|frame| ui::render(frame, &state, &view))?;
            let Some(event) = input.next().await else {
                return Ok(());
            };
            let Event::Key(key) = event? else { continue };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let Some(c) = key_char(key.code, key.modifiers, &view) else {
                continue;
            };
            if super::replay::on_key(&mut replay, c, &mut view.message) {
                continue;
            }
            match on_key(&mut view, &state, c) {
                Effect::Quit => return Ok(()),
                Effect::Run(_) => {
                    view.message = "a replay runs no commands: it shows what was recorded".into()
                }
                Effect::None => {}
            }
        }
    }
    .await;
    ratatui::restore();
    result
}

/// The character a key stands for in [`on_key`] (arrows and named keys as symbols).
fn key_char(code: KeyCode, modifiers: KeyModifiers, view: &View) -> Option<char> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => 'q',
        KeyCode::Char(c) => c,
        KeyCode::Left => '←',
        KeyCode::Right | KeyCode::Tab => '→',
        KeyCode::Enter => '⏎',
        KeyCode::PageUp => '⇞',
        KeyCode::PageDown => '⇟',
        KeyCode::Home => '⇤',
        KeyCode::End => '⇥',
        KeyCode::Esc if view.help => '?',
        KeyCode::Esc if view.detail => '⏎',
        _ => return None,
    })
}

/// The dashboard with a guided exercise over it: digits answer the exercise's question, Enter
/// goes on to its next step; every other key works as in the lab.
pub async fn run_coached(
    lab: Lab,
    coach: watch::Receiver<CoachView>,
    learner: mpsc::Sender<Learner>,
) -> io::Result<()> {
    let mut terminal = ratatui::init();
    let result = run_with(&mut terminal, lab, Some((coach, learner))).await;
    ratatui::restore();
    result
}

async fn run_on<B: Backend>(terminal: &mut Terminal<B>, lab: Lab) -> io::Result<()> {
    run_with(terminal, lab, None).await
}

/// The exercise pane's place: the lower right, under the nodes.
fn coach_area(area: Rect, state: &LabState) -> Rect {
    let top = 2 + state.nodes.len() as u16 * 2 + 2;
    let x = area.width * 45 / 100;
    Rect {
        x,
        y: top.min(area.height),
        width: area.width - x,
        height: area.height.saturating_sub(top + 2),
    }
}

async fn run_with<B: Backend>(
    terminal: &mut Terminal<B>,
    lab: Lab,
    mut coach: Option<(watch::Receiver<CoachView>, mpsc::Sender<Learner>)>,
) -> io::Result<()> {
    let mut input = EventStream::new();
    let mut state_rx = lab.state.clone();
    let (message_tx, mut message_rx) = mpsc::channel::<String>(16);
    let mut view = View::default();
    // Redraw at least this often so timers drain smoothly between state updates.
    let mut frame_tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let state = state_rx.borrow().clone();
        let shown = coach.as_ref().map(|(c, _)| c.borrow().clone());
        terminal.draw(|frame| {
            ui::render(frame, &state, &view);
            if let Some(shown) = &shown {
                coach_pane::render(frame, coach_area(frame.area(), &state), shown);
            }
        })?;
        let coach_changed = async {
            match &mut coach {
                Some((c, _)) => c.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = input.next() => {
                let Some(Ok(Event::Key(key))) = event else { continue };
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let Some(c) = key_char(key.code, key.modifiers, &view) else { continue };
                if let (Some((_, learner)), Some(shown)) = (&coach, &shown) {
                    let said = match (shown.waiting, c) {
                        (Waiting::Answer, d) if d.is_ascii_digit() => {
                            Some(Learner::Choose(d.to_digit(10).unwrap_or(0) as usize))
                        }
                        (Waiting::Next, '⏎') => Some(Learner::Next),
                        _ => None,
                    };
                    if let Some(said) = said {
                        let _ = learner.send(said).await;
                        continue;
                    }
                    // Enter belongs to the exercise (its next step), even while a step runs.
                    if c == '⏎' {
                        continue;
                    }
                }
                match on_key(&mut view, &state, c) {
                    Effect::Quit => return Ok(()),
                    Effect::Run(command) => {
                        let (lab, tx) = (lab.clone(), message_tx.clone());
                        // Commands run in the engine; a client request may take seconds, so never
                        // wait for it here.
                        tokio::spawn(async move {
                            let text = lab.run(command).await.unwrap_or_else(|e| e);
                            let _ = tx.send(text).await;
                        });
                    }
                    Effect::None => {}
                }
            }
            Some(text) = message_rx.recv() => view.message = text,
            _ = state_rx.changed() => {}
            _ = coach_changed => {}
            _ = frame_tick.tick() => {}
        }
    }
}
