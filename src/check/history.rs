//! One client operation as observed from outside: what was asked, when it was invoked and when it
//! completed (milliseconds on one clock), and how it ended.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// APPEND `value` to `key`. Values are unique across the history.
    Append { key: String, value: String },
    /// GET `key` (linearizable).
    Read { key: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged; a read carries the list it returned (empty for a missing key).
    Ok(Option<Vec<String>>),
    /// Definitely not applied (the service said nothing was appended, or it never got the request).
    Failed,
    /// May or may not have been applied (timeout after sending, "outcome unknown").
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub kind: Kind,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    pub outcome: Outcome,
}

impl Op {
    pub fn key(&self) -> &str {
        match &self.kind {
            Kind::Append { key, .. } | Kind::Read { key } => key,
        }
    }
}
