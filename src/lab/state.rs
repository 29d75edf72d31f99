//! What the lab shows, as plain serde data: the dashboard renders it and `GET /lab/state` returns
//! it. Built by the engine from node statuses, the fault table and the transport's events.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::message::MessageView;
use super::safety::SafetyView;
use crate::cluster;
use crate::config::Timing;
use crate::observe::Held;
use crate::raft::status::{Status, leader_of};

/// The lab's two timings: the service's defaults, or slow enough to follow an election by eye.
/// Serialized as `"normal"` / `"slow"` (the `--timing` flag, `GET /lab/state`). Slowing down
/// while the lab runs is the speed control's job (the lab's clock), which needs no restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimingPreset {
    #[default]
    Normal,
    Slow,
}

impl TimingPreset {
    pub fn as_str(self) -> &'static str {
        match self {
            TimingPreset::Normal => "normal",
            TimingPreset::Slow => "slow",
        }
    }

    /// The Raft timers this preset stands for (pre-vote as in [`Timing::default`]).
    pub fn timing(self) -> Timing {
        match self {
            TimingPreset::Normal => Timing::default(),
            TimingPreset::Slow => cluster::SLOW,
        }
    }

    /// The preset whose heartbeat `timing` has.
    pub fn of(timing: &Timing) -> TimingPreset {
        if timing.heartbeat_ms == cluster::SLOW.heartbeat_ms {
            TimingPreset::Slow
        } else {
            TimingPreset::Normal
        }
    }
}

impl std::fmt::Display for TimingPreset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for TimingPreset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(TimingPreset::Normal),
            "slow" => Ok(TimingPreset::Slow),
            other => Err(format!(
                "timing must be \"slow\" or \"normal\", not {other:?}"
            )),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    pub nodes: Vec<NodeView>,
    /// Directed links between distinct nodes.
    pub links: Vec<LinkView>,
    /// Newest last; up to `fold::TIMELINE` entries, shared (the engine rebuilds it only when a
    /// line is added, so publishing the state ten times a second does not copy it).
    pub timeline: Arc<Vec<TimelineEntry>>,
    /// Messages between nodes with their fields and fates, newest first (runs of heartbeats
    /// folded into one line with a count).
    pub messages: Vec<MessageView>,
    /// The key/value contents as applied by the leader (or, without one, the most advanced node).
    pub kv: Vec<(String, Vec<String>)>,
    pub paused: bool,
    /// Messages held by the pause, oldest first; a learner delivers or drops them one by one.
    #[serde(default)]
    pub held: Vec<Held>,
    pub pre_vote: bool,
    /// The timers the lab started with (`--timing`).
    pub timing: TimingPreset,
    /// How many times slower than real time the cluster runs (`+`/`-`, `POST /lab/speed`).
    #[serde(default = "real_time")]
    pub slowdown: u32,
    pub heartbeat_ms: u64,
    /// A follower starts an election at most this long after it last heard from a leader
    /// (openraft: leader lease = election timeout max, plus a random timeout in [min, max)).
    pub election_deadline_ms: (u64, u64),
    /// Milliseconds since the lab started.
    pub uptime_ms: u64,
    /// Client requests sent from the lab so far.
    pub requests: u64,
    /// Each leader's nextIndex for each follower, as its AppendEntries show it.
    #[serde(default)]
    pub next_index: Vec<NextIndex>,
    /// Raft's safety properties as checked so far, and the lab's client requests.
    #[serde(default)]
    pub safety: SafetyView,
    /// Set when this state is read from a trace (`raftkv lab --replay`), not a live cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayCursor>,
}

/// Where a replay stands in its trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayCursor {
    /// The trace's time span, in milliseconds since its lab started.
    pub first_ms: u64,
    pub last_ms: u64,
    /// The record the state is at (from 1) and how many there are.
    pub record: usize,
    pub records: usize,
    /// What the record at the cursor is, in words.
    pub what: String,
}

/// The paper's nextIndex: the index of the next entry `leader` will send `follower` (openraft does
/// not publish it; the lab reads it off the AppendEntries and their replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextIndex {
    pub leader: u64,
    pub follower: u64,
    pub next: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub id: usize,
    pub up: bool,
    /// Removed from the cluster (or an id the cluster handed out but never used): never restarts.
    pub removed: bool,
    /// Nodes that can talk to each other both ways share a group (A, B, …); None when the network
    /// is whole.
    pub group: Option<char>,
    pub status: Option<Status>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    pub from: u64,
    pub to: u64,
    pub cut: bool,
    /// Messages per second over the last second, by kind.
    pub per_second: BTreeMap<String, u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Milliseconds since the lab started (of the latest, when the line repeats).
    pub at_ms: u64,
    pub text: String,
    /// How many times this line was noted in a row (1: once).
    #[serde(default = "once")]
    pub count: u32,
}

fn once() -> u32 {
    1
}

fn real_time() -> u32 {
    1
}

impl LabState {
    /// The leader with a quorum, highest term first (an isolated old leader may still say leader).
    pub fn leader(&self) -> Option<&Status> {
        leader_of(self.nodes.iter().filter_map(|n| n.status.as_ref()))
    }

    /// `leader`'s nextIndex for `follower`, if the lab has seen an AppendEntries between them.
    pub fn next_index(&self, leader: u64, follower: u64) -> Option<u64> {
        let same = |n: &&NextIndex| (n.leader, n.follower) == (leader, follower);
        self.next_index.iter().find(same).map(|n| n.next)
    }

    pub fn link(&self, from: u64, to: u64) -> Option<&LinkView> {
        self.links.iter().find(|l| l.from == from && l.to == to)
    }
}
