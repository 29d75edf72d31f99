//! The dashboard's styles, in one table: each says what it marks, and `ui` draws only with these.
//! Colour is a help, never the only carrier: every styled thing also has a word or a symbol
//! (role names, `DOWN`, `✕`, each log entry's term as a number, `┃` at the commit index), so the dashboard reads the same without colour.

use ratatui::style::{Color, Modifier, Style};

use crate::raft::status::Role;

/// A leader.
pub const LEADER: Style = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
/// A candidate (an election in progress).
pub const CANDIDATE: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
pub const FOLLOWER: Style = Style::new().fg(Color::White);
/// Learners, stopped and removed servers: present but not voting.
pub const INACTIVE: Style = Style::new().fg(Color::DarkGray);
/// Something broken on purpose or lost: a killed node, a cut link, a stale leader.
pub const FAULT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
pub const STALE: Style = Style::new().fg(Color::Red);
/// Healthy: a leader in contact with a quorum.
pub const HEALTHY: Style = Style::new().fg(Color::Green);
/// Worth a look: votes on a link, a frozen or leaderless timer, a partition group.
pub const NOTICE: Style = Style::new().fg(Color::Yellow);
/// Hints and captions: axes, ages, "…".
/// The held message the learner chose.
pub const SELECTED: Style = Style::new().fg(Color::Black).bg(Color::Cyan);
pub const HINT: Style = Style::new().fg(Color::DarkGray);
/// The last command's outcome in the title bar.
pub const MESSAGE: Style = Style::new().fg(Color::Gray);
pub const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);
pub const RUNNING: Style = Style::new().fg(Color::Black).bg(Color::Green);
pub const PAUSED: Style = Style::new().fg(Color::Black).bg(Color::Yellow);
/// A key on the key bar.
pub const KEY_CAP: Style = Style::new().fg(Color::Black).bg(Color::Gray);
/// The election timer while it has time left, and once it may fire.
pub const TIMER: Style = Style::new().fg(Color::Blue);
pub const TIMER_DUE: Style = Style::new().fg(Color::Red);

/// Colours by term, so entries written by the same leader share a colour (as on raft.github.io).
const TERM_COLOURS: [Color; 6] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
    Color::Red,
];

pub fn term_colour(term: u64) -> Color {
    TERM_COLOURS[(term % TERM_COLOURS.len() as u64) as usize]
}

pub fn role(role: Role) -> Style {
    match role {
        Role::Leader => LEADER,
        Role::Candidate => CANDIDATE,
        Role::Follower => FOLLOWER,
        Role::Learner | Role::Shutdown | Role::Removed => INACTIVE,
    }
}
