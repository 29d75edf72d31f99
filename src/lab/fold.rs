//! The lab's memory as a pure fold: [`Memory::fold`] takes one [`Input`] (a message the transport
//! observed, every node's status at a refresh, a line to note) at a time given in milliseconds
//! since the lab started, and updates the timeline, the message rates and the last statuses. No
//! clock, no I/O, no cluster: the engine feeds it what happened, and tests feed it made-up inputs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::logs::{self, Matched};
use super::message::MessageView;
use super::state::{LinkView, NextIndex, TimelineEntry};
use crate::observe::{Event, Rpc};
use crate::raft::status::{Role, Status};

/// How many timeline entries are kept.
pub const TIMELINE: usize = 10_000;
/// How many message lines are kept (heartbeat runs count as one).
pub const MESSAGES: usize = 1_000;
/// Link rates count the messages of this last window.
const RATE_WINDOW_MS: u64 = 1_000;

/// One thing the lab learned.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message and its fate, as the transport saw it.
    Message(Event),
    /// Every node's status at one refresh (None: the node does not answer).
    Statuses(Vec<Option<Status>>),
    /// A line for the timeline: a command's outcome, a client request's result.
    Note(String),
}

#[derive(Clone, Debug, Default)]
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
    matched: Matched,
    /// Each leader's nextIndex for each follower: (leader, follower) → index.
    next: BTreeMap<(u64, u64), u64>,
    /// The timeline as last handed out; None once a line was added since.
    shared: Option<Arc<Vec<TimelineEntry>>>,
}

impl Memory {
    /// Folds one input observed at `at_ms` into the memory.
    pub fn fold(&mut self, at_ms: u64, input: Input) {
        match input {
            Input::Message(event) => {
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
                    self.note(at_ms, text);
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
            _ => self.timeline.push_back(TimelineEntry {
                at_ms,
                text,
                count: 1,
            }),
        }
        while self.timeline.len() > TIMELINE {
            self.timeline.pop_front();
        }
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
