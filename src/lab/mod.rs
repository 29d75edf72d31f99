//! The lab: a whole cluster in this process, a dashboard to watch it and keys and a control API to
//! break it on purpose. Drives nodes only through `cluster::Cluster` (via the engine) and reads only
//! plain status data: it never touches openraft, the transport's internals or storage. It
//! remembers (`trace`: every session recorded; `replay`: the same dashboard over a recording;
//! `export`: pictures of it) and checks Raft's safety properties on what it sees (`safety`).

pub mod coach;
pub mod coach_pane;
pub mod command;
pub mod control;
pub mod detail;
pub mod engine;
pub mod exercise;
pub mod export;
pub mod fold;
pub mod held;
pub mod logs;
pub mod message;
pub mod recorder;
pub mod replay;
pub mod safety;
pub mod safety_pane;
pub mod state;
pub mod theme;
pub mod trace;
pub mod tui;
pub mod ui;
#[cfg(test)]
mod ui_tests;

pub use command::LabCommand;
pub use engine::{Lab, spawn, spawn_recording};
pub use state::{LabState, TimingPreset};
