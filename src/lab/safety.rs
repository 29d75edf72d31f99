//! Raft's safety properties (paper, Figure 3), checked live on what the lab observes, plus the
//! lab's own client requests as a history. A pure fold like the memory it lives in: fed
//! transport events, statuses and client requests, it keeps for each property whether it held
//! so far, how much evidence it looked at, and the first offending observations when it did not.
//!
//! The checks see what the lab sees: a node's last [`RECENT_LOG`](crate::raft::status::RECENT_LOG)
//! entries at each refresh and every message. They can miss a violation that leaves no trace in
//! that window, but never invent one: each red verdict names the observations that contradict
//! the property.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::serde_as;

use crate::observe::{Event, Rpc};
use crate::raft::status::{Role, Status};

/// Committed and applied entries remembered per property (the newest indexes).
const REMEMBER: usize = 4096;
/// Client requests kept for the history lane.
const HISTORY: usize = 200;

/// The five properties, in the order the panel shows them.
pub const PROPERTIES: [&str; 5] = [
    "Election Safety",
    "Log Matching",
    "Leader Completeness",
    "State Machine Safety",
    "Linearizability",
];

/// What the panel shows for one property.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub property: String,
    /// Observations checked against it so far.
    pub checked: u64,
    /// When it first failed (ms since the lab started) and the offending observations.
    pub violation: Option<(u64, String)>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.violation.is_none()
    }
}

/// A client request the lab sent, as an interval with its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOp {
    pub id: u64,
    pub via: usize,
    pub key: String,
    pub value: String,
    pub invoked_ms: u64,
    pub completed_ms: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still waiting for an answer.
    Pending,
    /// Committed; the key's list had this length after the append.
    Ok { len: u64 },
    /// An error: the append may or may not have happened (a timeout, a lost leader).
    Unknown { error: String },
}

/// What the safety panel shows: one verdict per property and the newest client requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SafetyView {
    pub verdicts: Vec<Verdict>,
    /// Newest last.
    pub history: Vec<ClientOp>,
}

#[serde_as]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Safety {
    verdicts: Vec<Verdict>,
    /// term → leader → the first sign that it led that term.
    #[serde_as(as = "Vec<(_, Vec<(_, _)>)>")]
    leaders: BTreeMap<u64, BTreeMap<u64, String>>,
    /// index → (term, which node showed it committed, when).
    #[serde_as(as = "Vec<(_, _)>")]
    committed: BTreeMap<u64, (u64, String)>,
    /// index → the term of the node that first showed it committed: at least the term in which
    /// it was committed (the paper's "committed in a given term").
    #[serde_as(as = "Vec<(_, _)>")]
    committed_in: BTreeMap<u64, u64>,
    /// index → (term, which node applied it, when).
    #[serde_as(as = "Vec<(_, _)>")]
    applied: BTreeMap<u64, (u64, String)>,
    history: Vec<ClientOp>,
    /// The newest violation not yet announced by the engine.
    fresh: Option<String>,
}

impl Safety {
    fn verdict(&mut self, i: usize) -> &mut Verdict {
        if self.verdicts.len() < PROPERTIES.len() {
            self.verdicts = PROPERTIES
                .iter()
                .map(|p| Verdict {
                    property: p.to_string(),
                    ..Verdict::default()
                })
                .collect();
        }
        &mut self.verdicts[i]
    }

    fn check(&mut self, i: usize, at_ms: u64, broken: Option<String>) {
        let verdict = self.verdict(i);
        verdict.checked += 1;
        if let Some(text) = broken
            && verdict.violation.is_none()
        {
            verdict.violation = Some((at_ms, text.clone()));
            self.fresh = Some(format!("{} violated: {text}", PROPERTIES[i]));
        }
    }

    /// A message between nodes: only a leader sends AppendEntries and InstallSnapshot, each in
    /// its term, so two senders for one term are two leaders in it.
    pub fn message(&mut self, at_ms: u64, event: &Event) {
        if !matches!(event.rpc, Rpc::Append | Rpc::Heartbeat | Rpc::Snapshot) {
            return;
        }
        let sign = format!(
            "n{} sent {:?} in term {} at {:.3}s",
            event.from,
            event.rpc,
            event.term,
            at_ms as f64 / 1000.0
        );
        self.led(at_ms, event.term, event.from, sign);
    }

    fn led(&mut self, at_ms: u64, term: u64, node: u64, sign: String) {
        let leaders = self.leaders.entry(term).or_default();
        leaders.entry(node).or_insert(sign);
        let broken = (leaders.len() > 1).then(|| {
            let signs: Vec<&String> = leaders.values().collect();
            format!("two leaders in term {term}: {}", join(&signs))
        });
        self.check(0, at_ms, broken);
    }

    /// Every node's status at a refresh.
    pub fn statuses(&mut self, at_ms: u64, statuses: &[Option<Status>]) {
        let at = at_ms as f64 / 1000.0;
        let live: Vec<&Status> = statuses.iter().flatten().collect();
        for s in &live {
            if s.role == Role::Leader {
                let sign = format!(
                    "n{} said it was leader of term {} at {at:.3}s",
                    s.id, s.term
                );
                self.led(at_ms, s.term, s.id, sign);
            }
        }
        // Log Matching: two logs that hold an entry with the same index and term agree on every
        // entry before it.
        for (i, a) in live.iter().enumerate() {
            for b in &live[i + 1..] {
                let broken = log_mismatch(a, b, at);
                self.check(1, at_ms, broken);
            }
        }
        // What each node shows committed and applied: one term per index across all nodes and
        // times (a committed entry is never replaced; no two nodes apply different entries).
        for s in &live {
            let upto = |limit: Option<u64>| {
                s.recent_log
                    .iter()
                    .filter(move |(index, _)| limit.is_some_and(|l| *index <= l && *index > 0))
            };
            for &(index, term) in upto(s.commit_index) {
                let who = format!("n{} at {at:.3}s", s.id);
                if !self.committed.contains_key(&index) {
                    self.committed_in.insert(index, s.term);
                    while self.committed_in.len() > REMEMBER {
                        self.committed_in.pop_first();
                    }
                }
                let broken = remember(&mut self.committed, index, term, who).map(|(t, w)| {
                    format!(
                        "entry {index} was committed with term {t} ({w}) and later shows term \
                         {term} on n{}: a committed entry was replaced",
                        s.id
                    )
                });
                self.check(2, at_ms, broken);
            }
            for &(index, term) in upto(s.last_applied) {
                let who = format!("n{} at {at:.3}s", s.id);
                let broken = remember(&mut self.applied, index, term, who).map(|(t, w)| {
                    format!(
                        "index {index}: {w} applied the entry of term {t}, n{} at {at:.3}s the \
                         entry of term {term}",
                        s.id
                    )
                });
                self.check(3, at_ms, broken);
            }
        }
        // Leader Completeness: a leader holds every entry committed in an earlier term. (An
        // entry of an old term committed only later, by a later leader, need not be in the log
        // of a leader between the two: "earlier" is the term the entry was committed in, and the
        // lab knows it only from above, so it checks fewer entries than it could, never more.)
        for s in live.iter().filter(|s| s.role == Role::Leader) {
            let last = s.last_log_index.unwrap_or(0);
            let window_start = s.recent_log.first().map_or(u64::MAX, |(i, _)| *i);
            let committed_in = &self.committed_in;
            let earlier = self
                .committed
                .iter()
                .filter(|(i, _)| committed_in.get(i).is_some_and(|t| *t < s.term));
            let mut broken = None;
            for (&index, (term, who)) in earlier {
                let held = s.recent_log.iter().find(|(i, _)| *i == index);
                let missing = match held {
                    _ if index > last => Some("its log ends before it".to_string()),
                    Some((_, t)) if t != term => Some(format!("it holds term {t} there")),
                    None if index >= window_start => Some("it does not hold it".to_string()),
                    _ => None,
                };
                if let Some(why) = missing {
                    broken = Some(format!(
                        "n{} leads term {} at {at:.3}s without entry {index} (term {term}), \
                         committed as {who} showed: {why}",
                        s.id, s.term
                    ));
                    break;
                }
            }
            self.check(2, at_ms, broken);
        }
    }

    /// The lab sent a client request.
    pub fn invoked(&mut self, at_ms: u64, id: u64, via: usize, key: &str, value: &str) {
        self.history.push(ClientOp {
            id,
            via,
            key: key.into(),
            value: value.into(),
            invoked_ms: at_ms,
            completed_ms: None,
            outcome: Outcome::Pending,
        });
        if self.history.len() > HISTORY {
            self.history.remove(0);
        }
    }

    /// A client request finished. An acknowledged APPEND that left the list at length `len`
    /// holds position `len`: no other acknowledged append to that key may hold it, and one
    /// acknowledged before another was sent must hold a lower one (real-time order). Assumes
    /// the lab's requests are the only writes to their keys.
    pub fn completed(&mut self, at_ms: u64, id: u64, outcome: Outcome) {
        let Some(op) = self.history.iter_mut().find(|o| o.id == id) else {
            return;
        };
        op.completed_ms = Some(at_ms);
        op.outcome = outcome;
        let op = op.clone();
        let Outcome::Ok { len } = op.outcome else {
            return;
        };
        let describe = |o: &ClientOp| {
            let (from, to) = (
                o.invoked_ms as f64 / 1000.0,
                o.completed_ms.unwrap_or(0) as f64 / 1000.0,
            );
            format!(
                "APPEND {} {} [{from:.3}s–{to:.3}s] → len {}",
                o.key,
                o.value,
                len_of(o)
            )
        };
        let mut broken = None;
        for other in self
            .history
            .iter()
            .filter(|o| o.id != id && o.key == op.key)
        {
            let Outcome::Ok { len: other_len } = other.outcome else {
                continue;
            };
            let before = other.completed_ms.is_some_and(|c| c < op.invoked_ms);
            if other_len == len {
                broken = Some(format!(
                    "two acknowledged appends at position {len}: {} and {}",
                    describe(other),
                    describe(&op)
                ));
            } else if before && other_len > len {
                broken = Some(format!(
                    "{} was acknowledged before {} was sent, yet holds a later position",
                    describe(other),
                    describe(&op)
                ));
            }
            if broken.is_some() {
                break;
            }
        }
        self.check(4, at_ms, broken);
    }

    /// A violation found since the last call, once.
    pub fn take_fresh(&mut self) -> Option<String> {
        self.fresh.take()
    }

    pub fn view(&mut self) -> SafetyView {
        self.verdict(0);
        SafetyView {
            verdicts: self.verdicts.clone(),
            history: self.history.clone(),
        }
    }
}

fn len_of(op: &ClientOp) -> String {
    match &op.outcome {
        Outcome::Ok { len } => len.to_string(),
        _ => "?".into(),
    }
}

fn join(signs: &[&String]) -> String {
    signs
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Remembers that `index` holds `term`; the earlier observation if it held another term.
fn remember(
    seen: &mut BTreeMap<u64, (u64, String)>,
    index: u64,
    term: u64,
    who: String,
) -> Option<(u64, String)> {
    match seen.get(&index) {
        Some((t, w)) if *t != term => return Some((*t, w.clone())),
        Some(_) => return None,
        None => {}
    }
    seen.insert(index, (term, who));
    while seen.len() > REMEMBER {
        seen.pop_first();
    }
    None
}

/// Where two nodes' recent logs break Log Matching, in words.
fn log_mismatch(a: &Status, b: &Status, at: f64) -> Option<String> {
    let theirs: BTreeMap<u64, u64> = b.recent_log.iter().copied().collect();
    let common: Vec<(u64, u64, u64)> = a
        .recent_log
        .iter()
        .filter_map(|(i, ta)| theirs.get(i).map(|tb| (*i, *ta, *tb)))
        .collect();
    let (index, term, _) = common.iter().rev().find(|(_, ta, tb)| ta == tb)?;
    let (bad, ta, tb) = common
        .iter()
        .find(|(i, ta, tb)| i < index && ta != tb)
        .copied()?;
    Some(format!(
        "at {at:.3}s n{} and n{} both hold entry {index} of term {term} but differ at index \
         {bad} (term {ta} on n{}, term {tb} on n{})",
        a.id, b.id, a.id, b.id
    ))
}

#[cfg(test)]
#[path = "safety_tests.rs"]
mod tests;
