//! A recorded lab, replayed: a cursor over a trace's records and the [`LabState`] at the cursor,
//! built by folding from the nearest keyframe through `Memory::compose`, exactly as the live
//! engine built it. No nodes, no ports, no clock: the dashboard and `--headless --at` read it.

use std::collections::BTreeMap;
use std::path::Path;

use super::fold::{Memory, Scene};
use super::message::held_line;
use super::state::{LabState, ReplayCursor};
use super::trace::{self, Record};
use crate::raft::status::{Status, leader_of};

/// The keys of a replay, shown in its key bar (the live lab's commands do not run on a trace).
pub const KEYS: [(&str, &str); 7] = [
    (", .", "event"),
    ("< >", "message"),
    ("{ }", "second"),
    ("e E", "election"),
    ("g G", "leader"),
    ("c C", "commit"),
    ("q", "quit"),
];

/// Where the cursor can jump to (`e`, `g`, `c`): moments found in the published states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A node became a candidate or the highest term moved.
    Election,
    /// The leader with a quorum (or its term) changed.
    LeaderChange,
    /// The highest commit index moved.
    Commit,
}

pub struct Replay {
    records: Vec<Record>,
    /// Indexes of the keyframes.
    keyframes: Vec<usize>,
    /// Indexes of the records a cursor stops at (everything but keyframes, scenes and contents).
    stops: Vec<usize>,
    /// Published states (`statuses` records) with what they mark.
    marks: Vec<(usize, Vec<Mark>)>,
    /// Position in `stops`.
    at: usize,
    pub warnings: Vec<String>,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Replay, String> {
        let loaded = trace::load(path)?;
        Ok(Replay::new(loaded.records, loaded.warnings))
    }

    /// A replay of `records` (the first a keyframe), its cursor on the first published state.
    pub fn new(records: Vec<Record>, warnings: Vec<String>) -> Replay {
        let mut keyframes = Vec::new();
        let mut stops = Vec::new();
        let mut marks = Vec::new();
        let mut before: Option<Summary> = None;
        for (i, record) in records.iter().enumerate() {
            match record {
                Record::Keyframe { .. } => keyframes.push(i),
                // (A loaded trace has its changed statuses resolved into whole ones.)
                Record::Scene { .. }
                | Record::Kv { .. }
                | Record::Header { .. }
                | Record::StatusesChanged { .. } => {}
                Record::Statuses { statuses, .. } => {
                    stops.push(i);
                    let now = summary(statuses);
                    // The first state is compared with an empty cluster: its leader is a change.
                    let b = before.unwrap_or((None, 0, 0));
                    marks.push((i, changes(b, now, statuses)));
                    before = Some(now);
                }
                _ => stops.push(i),
            }
        }
        let at = stops
            .iter()
            .position(|i| matches!(records[*i], Record::Statuses { .. }))
            .unwrap_or(0);
        Replay {
            records,
            keyframes,
            stops,
            marks,
            at,
            warnings,
        }
    }

    /// Every record, from the first keyframe on.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The trace's span in milliseconds since its lab started.
    pub fn span(&self) -> (u64, u64) {
        let first = self.records.first().map_or(0, Record::t);
        (first, self.records.last().map_or(first, Record::t))
    }

    fn index(&self) -> usize {
        self.stops.get(self.at).copied().unwrap_or(0)
    }

    /// Moves to the last published state at or before `at_ms`; an error when the trace does not
    /// cover that moment.
    pub fn seek(&mut self, at_ms: u64) -> Result<(), String> {
        let (first, last) = self.span();
        if at_ms > last {
            return Err(format!(
                "the trace covers {:.1}s to {:.1}s: it ends before {:.1}s",
                secs(first),
                secs(last),
                secs(at_ms)
            ));
        }
        let found = self
            .marks
            .iter()
            .rev()
            .find(|(i, _)| self.records[*i].t() <= at_ms);
        let Some((index, _)) = found else {
            return Err(format!(
                "the trace covers {:.1}s to {:.1}s: nothing was published by {:.1}s",
                secs(first),
                secs(last),
                secs(at_ms)
            ));
        };
        self.at = self.stops.binary_search(index).unwrap_or(0);
        Ok(())
    }

    /// One record forward (or back, when `by` is negative), message records only if `messages`.
    pub fn step(&mut self, by: isize, messages: bool) {
        let mut at = self.at as isize;
        loop {
            let next = at + by.signum();
            if next < 0 || next as usize >= self.stops.len() {
                return;
            }
            at = next;
            let record = &self.records[self.stops[at as usize]];
            if !messages || matches!(record, Record::Message { .. }) {
                self.at = at as usize;
                return;
            }
        }
    }

    /// A second forward or back: the last published state within it.
    pub fn step_seconds(&mut self, by: i64) {
        let now = self.records[self.index()].t() as i64;
        let target = (now + by * 1000).max(0) as u64;
        if by > 0 {
            if self.seek(target).is_ok() && self.records[self.index()].t() as i64 <= now {
                // Nothing was published within the second: at least the next state.
                self.jump(None, 1);
            }
        } else if self.seek(target).is_err() {
            self.at = 0;
        }
    }

    /// To the next (or previous) published state that shows `mark` (any state for None).
    pub fn jump(&mut self, mark: Option<Mark>, by: isize) -> bool {
        let here = self.index();
        let hit = |(_, m): &&(usize, Vec<Mark>)| mark.is_none_or(|k| m.contains(&k));
        let found = if by > 0 {
            self.marks.iter().filter(|(i, _)| *i > here).find(hit)
        } else {
            self.marks.iter().rev().filter(|(i, _)| *i < here).find(hit)
        };
        match found {
            Some((i, _)) => {
                self.at = self.stops.binary_search(i).unwrap_or(self.at);
                true
            }
            None => false,
        }
    }

    /// The state at the cursor.
    pub fn state(&self) -> LabState {
        let index = self.index();
        let from = self
            .keyframes
            .iter()
            .rev()
            .find(|k| **k <= index)
            .copied()
            .unwrap_or(0);
        let Record::Keyframe {
            memory, scene, kv, ..
        } = &self.records[from]
        else {
            return LabState::default();
        };
        let mut memory: Memory = (**memory).clone();
        let mut scene: Scene = scene.clone();
        let mut kv: BTreeMap<String, Vec<String>> = kv.iter().cloned().collect();
        for record in &self.records[from + 1..=index] {
            match record {
                Record::Scene { scene: s, .. } => scene = s.clone(),
                Record::Kv { changes, .. } => trace::apply_kv(&mut kv, changes),
                other => {
                    if let Some(input) = other.input() {
                        memory.fold(other.t(), input);
                    }
                }
            }
        }
        let record = &self.records[index];
        let mut state = memory.compose(&scene, kv.into_iter().collect(), record.t());
        let (first_ms, last_ms) = self.span();
        state.replay = Some(ReplayCursor {
            first_ms,
            last_ms,
            record: self.at + 1,
            records: self.stops.len(),
            what: describe(record),
        });
        state
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// (leader and its term, highest term, highest commit index) of a published state.
type Summary = (Option<(u64, u64)>, u64, u64);

fn summary(statuses: &[Option<Status>]) -> Summary {
    let live = statuses.iter().flatten();
    let leader = leader_of(live.clone()).map(|s| (s.id, s.term));
    let term = live.clone().map(|s| s.term).max().unwrap_or(0);
    let commit = live.filter_map(|s| s.commit_index).max().unwrap_or(0);
    (leader, term, commit)
}

fn changes(before: Summary, now: Summary, statuses: &[Option<Status>]) -> Vec<Mark> {
    let mut marks = Vec::new();
    let candidate = statuses
        .iter()
        .flatten()
        .any(|s| s.role == crate::raft::status::Role::Candidate);
    if now.1 > before.1 || candidate {
        marks.push(Mark::Election);
    }
    if now.0 != before.0 && now.0.is_some() {
        marks.push(Mark::LeaderChange);
    }
    if now.2 > before.2 {
        marks.push(Mark::Commit);
    }
    marks
}

/// The record at the cursor, in words.
fn describe(record: &Record) -> String {
    match record {
        Record::Message { event, .. } => format!(
            "message n{}→n{} {:?} term {}",
            event.from, event.to, event.rpc, event.term
        ),
        Record::Statuses { .. } => "state published".into(),
        Record::Note { text, .. } => text.clone(),
        Record::Client { input, .. } => match input {
            crate::lab::fold::Input::Response { text, .. } => text.clone(),
            other => format!("{other:?}"),
        },
        Record::Command { command, .. } => format!("command: {command}"),
        Record::Lost { records, .. } => format!("{records} records lost"),
        Record::Scene { scene, .. } => match scene.held.last() {
            Some(h) => format!("held {}", held_line(h)),
            None => "scene".into(),
        },
        Record::Keyframe { .. }
        | Record::Kv { .. }
        | Record::Header { .. }
        | Record::StatusesChanged { .. } => String::new(),
    }
}

/// Applies a replay key; false when the key is not one of [`KEYS`]' cursor keys. Sets `said` to
/// what the learner should know when a jump finds nothing.
pub fn on_key(replay: &mut Replay, key: char, said: &mut String) -> bool {
    let jump = |replay: &mut Replay, mark, by, what: &str, said: &mut String| {
        if !replay.jump(Some(mark), by) {
            *said = format!(
                "no {what} {} this point",
                if by > 0 { "after" } else { "before" }
            );
        }
    };
    said.clear();
    match key {
        '.' => replay.step(1, false),
        ',' => replay.step(-1, false),
        '>' => replay.step(1, true),
        '<' => replay.step(-1, true),
        '}' => replay.step_seconds(1),
        '{' => replay.step_seconds(-1),
        'e' => jump(replay, Mark::Election, 1, "election", said),
        'E' => jump(replay, Mark::Election, -1, "election", said),
        'g' => jump(replay, Mark::LeaderChange, 1, "leader change", said),
        'G' => jump(replay, Mark::LeaderChange, -1, "leader change", said),
        'c' => jump(replay, Mark::Commit, 1, "commit", said),
        'C' => jump(replay, Mark::Commit, -1, "commit", said),
        _ => return false,
    }
    true
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
