//! What the transport saw, as plain data for observers (the lab's message counts, vote tallies and
//! timeline). Consensus never waits for an observer: events go into a bounded broadcast channel,
//! and a receiver that falls behind loses the oldest events (it is told how many).

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Kinds of message between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rpc {
    /// AppendEntries carrying entries.
    Append,
    /// AppendEntries with no entries.
    Heartbeat,
    Vote,
    PreVote,
    Snapshot,
    TransferLeader,
    /// A client write or read-index request forwarded to the leader.
    Forward,
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fate {
    /// Delivered and answered; for (pre-)votes, whether the vote was granted.
    Answered { granted: Option<bool> },
    /// Not delivered: the link is cut.
    Dropped,
    /// Sent but no usable answer (peer down, timeout, error).
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub from: u64,
    pub to: u64,
    pub rpc: Rpc,
    /// The sender's term as carried in the message (0 for forwarded client requests).
    pub term: u64,
    /// Log entries carried (AppendEntries only).
    pub entries: u64,
    pub fate: Fate,
    /// The message's fields in the paper's words (None: not known, e.g. an event made by hand).
    #[serde(default)]
    pub fields: Option<Fields>,
    /// The reply's fields, when the message was answered.
    #[serde(default)]
    pub reply: Option<ReplyFields>,
    /// When the message moved, counted back from the moment this event was reported (None: not
    /// measured, e.g. an event made by hand).
    #[serde(default)]
    pub legs: Option<Legs>,
}

/// A message's passage in microseconds of real time since it was sent: when the request got
/// through the network to the receiver (after any hold), when the receiver's answer came back
/// to the sender's side of the link (before any hold of the reply), and when the event was
/// reported. The lab draws its arrows
/// from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Legs {
    pub delivered_us: u64,
    /// None when there was no answer.
    pub answered_us: Option<u64>,
    pub reported_us: u64,
}

/// A position in a log: the paper's (index, term) pairs, such as a candidate's lastLogIndex and
/// lastLogTerm or AppendEntries' prevLogIndex and prevLogTerm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPos {
    pub index: u64,
    pub term: u64,
}

impl fmt::Display for LogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "index {} (term {})", self.index, self.term)
    }
}

/// What a message says, besides its kind, sender and term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fields {
    /// RequestVote or pre-vote: the candidate's last log entry (None: its log is empty).
    Vote { last_log: Option<LogPos> },
    /// AppendEntries: the entry just before the new ones, the first and last new entries (None
    /// for a heartbeat), and the leader's commit index.
    Append {
        prev_log: Option<LogPos>,
        first: Option<LogPos>,
        last: Option<LogPos>,
        leader_commit: Option<u64>,
    },
    /// InstallSnapshot: the last entry the snapshot covers, and one chunk of it: `bytes` at
    /// `offset` of `size`, `done` on the last.
    Snapshot {
        last_included: Option<LogPos>,
        bytes: u64,
        #[serde(default)]
        offset: u64,
        #[serde(default)]
        size: u64,
        #[serde(default)]
        done: bool,
    },
    /// The leader asks `to` to take over; it must hold at least `last_log`.
    TransferLeader { to: u64, last_log: Option<LogPos> },
    /// A client request a follower forwards to its leader: "write", "read index", "membership".
    Forward { what: String },
}

/// What the reply says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyFields {
    /// The voter's term after handling the request, whether it granted its vote, the vote it
    /// holds in that term (openraft's: the candidate it voted for, or the leader it follows once
    /// `vote_committed`; None before any), and its own last log entry.
    Vote {
        term: u64,
        granted: bool,
        #[serde(default)]
        vote_for: Option<u64>,
        #[serde(default)]
        vote_committed: bool,
        last_log: Option<LogPos>,
    },
    /// The follower's answer to AppendEntries.
    Append(AppendAnswer),
    /// The follower's term; after a chunk that was not the last, the offset it wants next.
    Snapshot {
        term: u64,
        #[serde(default)]
        next_offset: Option<u64>,
    },
    /// Anything else: the receiver served it (or said why not) in its own words.
    Other { text: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AppendAnswer {
    /// The follower's log now matches the leader's through the last entry sent.
    Success,
    /// It matches through `matched` (the rest was not sent in this message).
    Partial { matched: Option<LogPos> },
    /// The follower has no entry at the previous index with the previous term: the leader must
    /// back up and send earlier entries (the paper's consistency check, receiver step 2).
    Conflict,
    /// The follower has seen a higher term: the sender is no longer leader.
    HigherTerm { term: u64 },
    /// The receiver could not serve it (stopped).
    Failed { why: String },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n{}@{} → n{} {:?}",
            self.from, self.term, self.to, self.rpc
        )?;
        if self.entries > 0 {
            write!(f, " +{}", self.entries)?;
        }
        match self.fate {
            Fate::Answered {
                granted: Some(true),
            } => write!(f, " granted"),
            Fate::Answered {
                granted: Some(false),
            } => write!(f, " refused"),
            Fate::Answered { granted: None } => Ok(()),
            Fate::Dropped => write!(f, " dropped"),
            Fate::Failed => write!(f, " failed"),
        }
    }
}

/// Which half of an exchange a held message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    Request,
    /// The answer to a request, travelling back from its receiver.
    Reply,
}

/// A message a pause holds (the lab's fault table), waiting for a learner to deliver or drop it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Numbered in the order messages were held, from 1; never reused within a cluster.
    pub id: u64,
    pub from: u64,
    pub to: u64,
    pub rpc: Rpc,
    pub leg: Leg,
    /// The term of the request (a reply carries its request's term here; its own is in `reply`).
    pub term: u64,
    pub entries: u64,
    /// The request's fields (for a reply: the request it answers).
    pub fields: Option<Fields>,
    /// The reply's fields (replies only).
    pub reply: Option<ReplyFields>,
}

/// Events kept for a slow receiver before the oldest are dropped.
const CAPACITY: usize = 4096;

/// The sending half, cloned into every node's transport.
#[derive(Clone)]
pub struct Observer {
    tx: broadcast::Sender<Event>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Observer {
    /// Never blocks; without receivers the event is simply discarded.
    pub fn emit(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether anyone listens. Senders skip describing a message's fields when nobody does (a
    /// per-process node never has an observer).
    pub fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
