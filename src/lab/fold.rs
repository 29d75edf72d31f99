//! The lab's memory as a pure fold: [`Memory::fold`] takes one [`Input`] (a message the transport
//! observed, every node's status at a refresh, a line to note) at a time given in milliseconds
//! since the lab started, and updates the timeline, the message rates and the last statuses. No
//! clock, no I/O, no cluster: the engine feeds it what happened, and tests feed it made-up inputs.
//! [`Memory::compose`] turns the memory, a [`Scene`] (what the lab did to the cluster) and the
//! key/value contents into the [`LabState`] everyone sees; the live engine and a replay of a
//! trace both build their state through it, so a replay shows what the live lab showed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_with::serde_as;

use super::logs::{self, Matched};
use super::message::MessageView;
use super::safety::{Outcome, Safety};
use super::state::{LabState, LinkView, NextIndex, NodeView, TimelineEntry, TimingPreset};
use crate::config::Timing;
use crate::observe::{Event, Held, Rpc};
use crate::raft::status::{Role, Status, leader_of};

/// How many timeline entries are kept.
pub const TIMELINE: usize = 10_000;
/// How many message lines are kept (heartbeat runs count as one).
pub const MESSAGES: usize = 1_000;
/// Link rates count the messages of this last window.
const RATE_WINDOW_MS: u64 = 1_000;

/// One thing the lab learned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A message and its fate, as the transport saw it.
    Message(Event),
    /// Every node's status at one refresh (None: the node does not answer).
    Statuses(Vec<Option<Status>>),
    /// A line for the timeline: a command's outcome.
    Note(String),
    /// The lab sent client request `id` (an APPEND) through node `via`.
    Request {
        id: u64,
        via: usize,
        key: String,
        value: String,
    },
    /// Client request `id` finished: its outcome, and in words for the timeline.
    Response {
        id: u64,
        outcome: Outcome,
        text: String,
    },
}

/// Serializable whole (a trace's keyframes carry it), so a replay continues folding from any
/// keyframe exactly as the live engine did.
#[serde_as]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    timeline: VecDeque<TimelineEntry>,
    /// Messages of the last rate window: (at_ms, from, to, kind).
    recent: VecDeque<(u64, u64, u64, Rpc)>,
    /// Statuses at the previous refresh, to describe what changed.
    last: Vec<Option<Status>>,
    /// Message lines, oldest first; runs of heartbeats folded into one.
    messages: VecDeque<MessageView>,
    /// Messages seen so far (the next message's id).
    seen: u64,
    /// What each follower acknowledged to each leader, from AppendEntries replies.
    #[serde_as(as = "Vec<(_, _)>")]
    matched: Matched,
    /// Each leader's nextIndex for each follower: (leader, follower) → index.
    #[serde_as(as = "Vec<(_, _)>")]
    next: BTreeMap<(u64, u64), u64>,
    /// Raft's safety properties, checked on everything folded.
    safety: Safety,
    /// How many of the newest timeline lines are decisions messages carried (votes, pre-votes,
    /// rejected AppendEntries) with no line of another kind after them: a decision said again
    /// joins its twin among these.
    #[serde(default)]
    decision_run: usize,
    /// The timeline as last handed out; None once a line was added since.
    #[serde(skip)]
    shared: Option<Arc<Vec<TimelineEntry>>>,
}

impl Memory {
    /// Folds one input observed at `at_ms` into the memory.
    pub fn fold(&mut self, at_ms: u64, input: Input) {
        match input {
            Input::Message(event) => {
                self.safety.message(at_ms, &event);
                self.recent
                    .push_back((at_ms, event.from, event.to, event.rpc));
                self.seen += 1;
                let mut message = MessageView::new(self.seen, at_ms, event);
                if let Some(index) = message.matched() {
                    self.matched.insert((message.from, message.to), index);
                }
                if let Some(next) = message.next_index() {
                    self.next.insert((message.from, message.to), next);
                }
                if let Some(text) = message.decision() {
                    self.note_decision(at_ms, text);
                }
                // A routine message joins the line it repeats among the routine lines since the
                // last message that decided something; that line moves down to the newest place.
                let run = self.messages.iter().rev();
                let run = run.take_while(|m| m.routine()).count();
                let first_of_run = self.messages.len() - run;
                let same_link = (first_of_run..self.messages.len())
                    .find(|i| self.messages[*i].absorbs(&message));
                if let Some(line) = same_link.and_then(|i| self.messages.remove(i)) {
                    message.count += line.count;
                }
                self.messages.push_back(message);
                while self.messages.len() > MESSAGES {
                    self.messages.pop_front();
                }
            }
            Input::Statuses(now) => {
                self.safety.statuses(at_ms, &now);
                let last = std::mem::replace(&mut self.last, now.clone());
                for (id, status) in now.iter().enumerate() {
                    let before = last.get(id).and_then(Option::as_ref);
                    let (Some(b), Some(s)) = (before, status) else {
                        continue;
                    };
                    let said = [
                        change(id, b, s),
                        logs::dropped(b, s),
                        logs::committed(b, s, &self.matched),
                    ];
                    for text in said.into_iter().flatten() {
                        self.note(at_ms, text);
                    }
                }
            }
            Input::Note(text) => self.note(at_ms, text),
            Input::Request {
                id,
                via,
                key,
                value,
            } => {
                self.note(at_ms, format!("client→n{via}: APPEND {key} {value}"));
                self.safety.invoked(at_ms, id, via, &key, &value);
            }
            Input::Response { id, outcome, text } => {
                self.note(at_ms, text);
                self.safety.completed(at_ms, id, outcome);
            }
        }
        let cutoff = at_ms.saturating_sub(RATE_WINDOW_MS);
        while self.recent.front().is_some_and(|(t, ..)| *t < cutoff) {
            self.recent.pop_front();
        }
    }

    /// Adds a line; the same line again right after only counts up (and takes the later time).
    fn note(&mut self, at_ms: u64, text: String) {
        self.shared = None;
        match self.timeline.back_mut() {
            Some(last) if last.text == text => {
                last.count += 1;
                last.at_ms = at_ms;
            }
            _ => {
                self.decision_run = 0;
                self.push(at_ms, text, 1);
            }
        }
    }

    /// Adds a decision a message carried (a vote, a pre-vote, a rejected AppendEntries). One that
    /// repeats a line among the decisions since the last line of another kind counts up that
    /// line, which moves down to the newest place: a minority
    /// that keeps asking for pre-votes (n3 asks n4, n4 asks n3, in the same term, round after
    /// round) shows as two lines with counts, not a screenful that pushes the partition, the
    /// commits and the client's request out of sight. Any other line ends the run, so a decision
    /// never moves past an event it came before.
    fn note_decision(&mut self, at_ms: u64, text: String) {
        self.shared = None;
        let run = self.timeline.len() - self.decision_run.min(self.timeline.len());
        let twin = (run..self.timeline.len()).find(|i| self.timeline[*i].text == text);
        match twin.and_then(|i| self.timeline.remove(i)) {
            Some(line) => self.push(at_ms, text, line.count + 1),
            None => {
                self.decision_run += 1;
                self.push(at_ms, text, 1);
            }
        }
    }

    fn push(&mut self, at_ms: u64, text: String, count: u32) {
        self.timeline
            .push_back(TimelineEntry { at_ms, text, count });
        while self.timeline.len() > TIMELINE {
            self.timeline.pop_front();
        }
        self.decision_run = self.decision_run.min(self.timeline.len());
    }

    /// A safety violation found since the last call, once (the engine pauses on it).
    pub fn fresh_violation(&mut self) -> Option<String> {
        self.safety.take_fresh()
    }

    /// Every node's status at the last refresh.
    pub fn statuses(&self) -> &[Option<Status>] {
        &self.last
    }

    /// The state the lab shows at `at_ms`: this memory, what the lab did to the cluster
    /// (`scene`) and the key/value contents shown (`kv`).
    pub fn compose(
        &mut self,
        scene: &Scene,
        kv: Vec<(String, Vec<String>)>,
        at_ms: u64,
    ) -> LabState {
        let n = scene.up.len() as u64;
        let groups = groups(n, &scene.cut);
        let nodes = (0..n as usize)
            .map(|id| NodeView {
                id,
                up: scene.up[id],
                removed: scene.removed.get(id).copied().unwrap_or(false),
                group: groups[id],
                status: self.last.get(id).cloned().flatten(),
            })
            .collect();
        let timing = scene.timing;
        LabState {
            nodes,
            links: self.links(n, &scene.cut),
            timeline: self.timeline(),
            messages: self.messages(),
            next_index: self.next_index(),
            kv,
            paused: scene.paused,
            held: scene.held.clone(),
            slowdown: scene.slowdown,
            pre_vote: timing.pre_vote,
            timing: TimingPreset::of(&timing),
            heartbeat_ms: timing.heartbeat_ms,
            election_deadline_ms: (
                timing.election_max_ms + timing.election_min_ms,
                2 * timing.election_max_ms,
            ),
            uptime_ms: at_ms,
            requests: scene.requests,
            safety: self.safety.view(),
            replay: None,
        }
    }

    /// The node whose key/value contents the lab shows: the leader, or without one the node that
    /// applied the most.
    pub fn kv_source(statuses: &[Option<Status>]) -> Option<usize> {
        leader_of(statuses.iter().flatten())
            .or_else(|| statuses.iter().flatten().max_by_key(|s| s.last_applied))
            .map(|s| s.id as usize)
    }

    /// Each leader's nextIndex for each follower, as the AppendEntries showed it.
    pub fn next_index(&self) -> Vec<NextIndex> {
        let n = self.next.iter();
        n.map(|((leader, follower), next)| NextIndex {
            leader: *leader,
            follower: *follower,
            next: *next,
        })
        .collect()
    }

    /// The message lines, newest first.
    pub fn messages(&self) -> Vec<MessageView> {
        self.messages.iter().rev().cloned().collect()
    }

    /// The timeline, oldest first, shared until the next line is added.
    pub fn timeline(&mut self) -> Arc<Vec<TimelineEntry>> {
        let timeline = &self.timeline;
        self.shared
            .get_or_insert_with(|| Arc::new(timeline.iter().cloned().collect()))
            .clone()
    }

    /// Every directed link between `n` nodes, with its messages per kind over the last window and
    /// whether it is cut.
    pub fn links(&self, n: u64, cut: &BTreeSet<(u64, u64)>) -> Vec<LinkView> {
        let mut links = Vec::new();
        for from in 0..n {
            for to in (0..n).filter(|t| *t != from) {
                let mut per_second = BTreeMap::new();
                for (_, f, t, rpc) in &self.recent {
                    if (*f, *t) == (from, to) {
                        *per_second.entry(format!("{rpc:?}")).or_insert(0u32) += 1;
                    }
                }
                links.push(LinkView {
                    from,
                    to,
                    cut: cut.contains(&(from, to)),
                    per_second,
                });
            }
        }
        links
    }
}

/// What the lab did to the cluster, as it stands: which nodes run, the network's cuts, the pause
/// and its held messages, the speed and the timers. Everything in a [`LabState`] that the memory
/// does not know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub up: Vec<bool>,
    pub removed: Vec<bool>,
    /// Directed links that are cut: (from, to).
    pub cut: BTreeSet<(u64, u64)>,
    pub paused: bool,
    pub held: Vec<Held>,
    pub slowdown: u32,
    pub timing: Timing,
    /// Client requests sent from the lab so far.
    pub requests: u64,
}

/// What changed on node `id` between two refreshes, if anything worth a line.
fn change(id: usize, before: &Status, now: &Status) -> Option<String> {
    if before.role != now.role {
        return Some(match now.role {
            Role::Leader => format!("n{id} is leader for term {}", now.term),
            Role::Candidate => format!("n{id} starts an election for term {}", now.term),
            role => format!("n{id} is now {role} (term {})", now.term),
        });
    }
    (before.term != now.term).then(|| format!("n{id} moves to term {}", now.term))
}

/// Groups nodes that reach each other both ways (directly or through others); None for all when
/// the network is whole.
pub fn groups(n: u64, cut: &BTreeSet<(u64, u64)>) -> Vec<Option<char>> {
    let mut group: Vec<usize> = (0..n as usize).collect();
    fn root(g: &mut [usize], i: usize) -> usize {
        if g[i] != i {
            let r = root(g, g[i]);
            g[i] = r;
        }
        g[i]
    }
    for a in 0..n {
        for b in (a + 1)..n {
            if !cut.contains(&(a, b)) && !cut.contains(&(b, a)) {
                let (ra, rb) = (root(&mut group, a as usize), root(&mut group, b as usize));
                group[ra.max(rb)] = ra.min(rb);
            }
        }
    }
    let roots: Vec<usize> = (0..n as usize).map(|i| root(&mut group, i)).collect();
    let mut distinct = roots.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() <= 1 {
        return vec![None; n as usize];
    }
    roots
        .iter()
        .map(|r| Some((b'A' + distinct.iter().position(|d| d == r).unwrap_or(0) as u8) as char))
        .collect()
}

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
