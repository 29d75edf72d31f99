//! One message between nodes as the lab shows it: who sent what to whom, the message's Raft fields,
//! what became of it, and the reply's fields. Between two messages that decide something (votes,
//! entries, conflicts), routine repeats — heartbeats, and retries that got no answer — fold into
//! one line per link with a count, so a quiet cluster or a dead follower does not bury them.

use serde::{Deserialize, Serialize};

use crate::observe::{AppendAnswer, Event, Fate, Fields, LogPos, ReplyFields, Rpc};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The lab's number for this message (for heartbeat lines: for the newest one), increasing.
    pub id: u64,
    /// Milliseconds since the lab started, when the message's fate was known.
    pub at_ms: u64,
    pub from: u64,
    pub to: u64,
    pub kind: Rpc,
    /// The sender's term in the message.
    pub term: u64,
    pub fields: Option<Fields>,
    pub fate: Fate,
    pub reply: Option<ReplyFields>,
    /// How many heartbeats this line stands for (1 for every other message).
    pub count: u32,
}

/// Which messages a reader wants (`GET /lab/messages?kind=…&node=…`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MessageFilter {
    /// The kind, as the JSON names it: Vote, PreVote, Append, Heartbeat, Snapshot, …
    pub kind: Option<Rpc>,
    /// Sent or received by this node.
    pub node: Option<u64>,
}

impl MessageFilter {
    pub fn matches(&self, m: &MessageView) -> bool {
        self.kind.is_none_or(|k| k == m.kind) && self.node.is_none_or(|n| n == m.from || n == m.to)
    }
}

impl MessageView {
    pub fn new(id: u64, at_ms: u64, event: Event) -> MessageView {
        MessageView {
            id,
            at_ms,
            from: event.from,
            to: event.to,
            kind: event.rpc,
            term: event.term,
            fields: event.fields,
            fate: event.fate,
            reply: event.reply,
            count: 1,
        }
    }

    /// A message that only repeats: a heartbeat, or a message that got no answer (the leader
    /// retries those to a dead or cut-off follower every few milliseconds).
    pub fn routine(&self) -> bool {
        self.kind == Rpc::Heartbeat || matches!(self.fate, Fate::Failed | Fate::Dropped)
    }

    /// Whether `next` repeats this routine line exactly: same link, kind, term, fields, fate and
    /// reply. It then adds to the line's count instead of taking a line of its own.
    pub fn absorbs(&self, next: &MessageView) -> bool {
        self.routine()
            && (self.from, self.to, self.kind, self.term)
                == (next.from, next.to, next.kind, next.term)
            && (&self.fields, &self.fate, &self.reply) == (&next.fields, &next.fate, &next.reply)
    }

    /// The message's fields in one line, the paper's names first.
    pub fn summary(&self) -> String {
        let pos =
            |p: &Option<LogPos>| p.map_or("none".into(), |p| format!("{}@{}", p.index, p.term));
        let what = match &self.fields {
            Some(Fields::Vote { last_log }) => format!("lastLog {}", pos(last_log)),
            Some(Fields::Append {
                prev_log,
                first,
                last,
                leader_commit,
            }) => {
                let entries = match (first, last) {
                    (Some(f), Some(l)) if f.index == l.index => {
                        format!(" entry {}@{}", f.index, f.term)
                    }
                    (Some(f), Some(l)) => format!(
                        " entries {}..{} (terms {}..{})",
                        f.index, l.index, f.term, l.term
                    ),
                    _ => String::new(),
                };
                let commit = leader_commit.map_or("none".into(), |c| c.to_string());
                format!("prev {}{entries} commit {commit}", pos(prev_log))
            }
            Some(Fields::Snapshot {
                last_included,
                bytes,
            }) => {
                format!("up to {} ({bytes} bytes)", pos(last_included))
            }
            Some(Fields::TransferLeader { to, last_log }) => {
                format!("to n{to}, needs {}", pos(last_log))
            }
            Some(Fields::Forward { what }) => what.clone(),
            None => String::new(),
        };
        let fate = match (&self.fate, &self.reply) {
            (Fate::Dropped, _) => "dropped (link cut)".into(),
            (Fate::Failed, _) => "failed (no answer)".into(),
            (Fate::Answered { .. }, Some(reply)) => reply_summary(reply),
            (Fate::Answered { .. }, None) => "answered".into(),
        };
        let times = if self.count > 1 {
            format!(" ×{}", self.count)
        } else {
            String::new()
        };
        format!("{what} → {fate}{times}")
    }
}

fn reply_summary(reply: &ReplyFields) -> String {
    match reply {
        ReplyFields::Vote {
            term,
            granted: true,
            ..
        } => format!("granted (term {term})"),
        ReplyFields::Vote {
            term,
            granted: false,
            ..
        } => format!("refused (term {term})"),
        ReplyFields::Append(AppendAnswer::Success) => "success".into(),
        ReplyFields::Append(AppendAnswer::Partial { matched }) => match matched {
            Some(m) => format!("matched up to {}@{}", m.index, m.term),
            None => "matched nothing".into(),
        },
        ReplyFields::Append(AppendAnswer::Conflict) => "conflict: prev not matched".into(),
        ReplyFields::Append(AppendAnswer::HigherTerm { term }) => {
            format!("refused: term {term} is newer")
        }
        ReplyFields::Append(AppendAnswer::Failed { why }) => format!("failed: {why}"),
        ReplyFields::Snapshot { term } => format!("installed (term {term})"),
        ReplyFields::Other { text } => text.clone(),
    }
}
