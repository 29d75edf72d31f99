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

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
