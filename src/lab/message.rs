//! One message between nodes as the lab shows it: who sent what to whom, the message's Raft fields,
//! what became of it, and the reply's fields. Between two messages that decide something (votes,
//! entries, conflicts), routine repeats — heartbeats, and retries that got no answer — fold into
//! one line per link with a count, so a quiet cluster or a dead follower does not bury them.

use serde::{Deserialize, Serialize};

use crate::observe::{AppendAnswer, Event, Fate, Fields, Held, Leg, LogPos, ReplyFields, Rpc};

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
    /// How many repeats this line stands for (1 for a message that decides something).
    pub count: u32,
    /// Why the receiver decided as it did, in the paper's terms, when it refused or rejected.
    #[serde(default)]
    pub why: Option<String>,
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
    /// A held message seen as the exchange it belongs to: from the request's sender to its
    /// receiver, with the reply's fields if it is the reply, so that reasons derive alike.
    pub fn of_held(h: &Held) -> MessageView {
        let (from, to) = match h.leg {
            Leg::Request => (h.from, h.to),
            Leg::Reply => (h.to, h.from),
        };
        let event = Event {
            from,
            to,
            rpc: h.rpc,
            term: h.term,
            entries: h.entries,
            fate: Fate::Answered { granted: None },
            fields: h.fields.clone(),
            reply: h.reply.clone(),
            legs: None,
        };
        MessageView::new(h.id, 0, event)
    }

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
            why: None,
        }
        .with_reason()
    }

    fn with_reason(mut self) -> MessageView {
        self.why = self.reason();
        self
    }

    /// Why a vote was refused or an AppendEntries rejected, derived from the message's and the
    /// reply's fields (None when it was granted, succeeded or is not known).
    fn reason(&self) -> Option<String> {
        match (&self.fields, &self.reply) {
            (
                Some(Fields::Vote { last_log: theirs }),
                Some(ReplyFields::Vote {
                    term,
                    granted: false,
                    vote_for,
                    vote_committed,
                    last_log: ours,
                }),
            ) => {
                // Up-to-date as §5.4.1 says: the later last term wins, then the longer log.
                let key = |p: &Option<LogPos>| p.map(|p| (p.term, p.index));
                Some(if key(ours) > key(theirs) {
                    format!(
                        "the candidate's log ({}) is behind its own ({}) (§5.4.1)",
                        describe(theirs),
                        describe(ours)
                    )
                } else {
                    self.other_reason(*term, *vote_for, *vote_committed)
                })
            }
            (Some(Fields::Append { prev_log, .. }), Some(ReplyFields::Append(answer))) => {
                match answer {
                    AppendAnswer::Conflict => Some(match prev_log {
                        Some(p) => format!(
                            "no entry at index {} with term {} (the entry before the new ones): \
                             the leader backs up and sends earlier entries (§5.3)",
                            p.index, p.term
                        ),
                        None => "its log does not match from the start".into(),
                    }),
                    AppendAnswer::HigherTerm { term } => Some(format!(
                        "it is in term {term}, above the sender's {}: the sender is no longer \
                         leader (§5.1)",
                        self.term
                    )),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A refused vote whose candidate's log was not behind: the term, the vote already given, or
    /// a leader the voter still hears.
    fn other_reason(&self, term: u64, vote_for: Option<u64>, committed: bool) -> String {
        let pre = self.kind == Rpc::PreVote;
        match vote_for {
            _ if term > self.term || (pre && term >= self.term) => {
                format!("it is already in term {term}")
            }
            Some(v) if v != self.from && term == self.term && committed => {
                format!("it already follows n{v}, leader of term {term}")
            }
            Some(v) if v != self.from && term == self.term => {
                format!("it already voted for n{v} in term {term} (one vote per term, §5.2)")
            }
            _ => "it still hears from a leader (its leader lease has not expired)".into(),
        }
    }

    /// The decision this message carries, as a timeline line, if it is one worth a line.
    pub fn decision(&self) -> Option<String> {
        let (from, to, term) = (self.from, self.to, self.term);
        // A message sent before anyone watched carries no fields to derive a reason from (the
        // lab's first election can start before it subscribes): then say only what happened.
        let why = self
            .why
            .as_ref()
            .map_or(String::new(), |w| format!(": {w}"));
        match (self.kind, &self.fate, &self.reply) {
            (
                Rpc::Vote,
                Fate::Answered {
                    granted: Some(true),
                },
                _,
            ) => Some(format!("n{to} voted for n{from} in term {term}")),
            (
                Rpc::PreVote,
                Fate::Answered {
                    granted: Some(true),
                },
                _,
            ) => Some(format!(
                "n{to} would vote for n{from} (pre-vote, term {term})"
            )),
            (
                Rpc::Vote,
                Fate::Answered {
                    granted: Some(false),
                },
                _,
            ) => Some(format!(
                "n{to} refused its vote to n{from} (term {term}){why}"
            )),
            (
                Rpc::PreVote,
                Fate::Answered {
                    granted: Some(false),
                },
                _,
            ) => Some(format!(
                "n{to} would not vote for n{from} (pre-vote, term {term}){why}"
            )),
            (
                Rpc::Append | Rpc::Heartbeat,
                _,
                Some(ReplyFields::Append(AppendAnswer::Conflict | AppendAnswer::HigherTerm { .. })),
            ) => Some(format!("n{to} rejected AppendEntries from n{from}{why}")),
            _ => None,
        }
    }

    /// For an AppendEntries the follower accepted, the index up to which its log now matches the
    /// leader's (the last entry sent, or for a heartbeat the previous entry).
    pub fn matched(&self) -> Option<u64> {
        let Some(Fields::Append { prev_log, last, .. }) = &self.fields else {
            return None;
        };
        match &self.reply {
            Some(ReplyFields::Append(AppendAnswer::Success)) => last.or(*prev_log).map(|p| p.index),
            Some(ReplyFields::Append(AppendAnswer::Partial { matched })) => {
                matched.map(|p| p.index)
            }
            _ => None,
        }
    }

    /// For an answered AppendEntries, the leader's nextIndex for the follower after it: one past
    /// what now matches, or on a conflict the previous index, where the leader backs up to (§5.3).
    pub fn next_index(&self) -> Option<u64> {
        let Some(Fields::Append { prev_log, .. }) = &self.fields else {
            return None;
        };
        match &self.reply {
            Some(ReplyFields::Append(AppendAnswer::Conflict)) => {
                Some(prev_log.map_or(0, |p| p.index))
            }
            Some(ReplyFields::Append(_)) => self.matched().map(|m| m + 1),
            _ => None,
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

    /// The message's fields in one line, the paper's names first, then its fate.
    pub fn summary(&self) -> String {
        let fate = match (&self.fate, &self.reply) {
            (Fate::Dropped, _) => "dropped (link cut, or by hand while paused)".into(),
            (Fate::Failed, _) => "failed (no answer)".into(),
            (Fate::Answered { .. }, Some(reply)) => reply_summary(reply),
            (Fate::Answered { .. }, None) => "answered".into(),
        };
        let times = if self.count > 1 {
            format!(" ×{}", self.count)
        } else {
            String::new()
        };
        format!("{} → {fate}{times}", self.what())
    }

    /// The message's own fields in one line (not its fate).
    pub fn what(&self) -> String {
        let pos =
            |p: &Option<LogPos>| p.map_or("none".into(), |p| format!("{}@{}", p.index, p.term));
        match &self.fields {
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
                offset,
                size,
                done,
            }) => {
                let last = if *done { ", done" } else { "" };
                format!(
                    "up to {}: {bytes} bytes at {offset} of {size}{last}",
                    pos(last_included)
                )
            }
            Some(Fields::TransferLeader { to, last_log }) => {
                format!("to n{to}, needs {}", pos(last_log))
            }
            Some(Fields::Forward { what }) => what.clone(),
            None => String::new(),
        }
    }
}

/// A held message in one line: its number, link, kind and term, then its fields, or for a reply
/// the answer and, when it refuses, why.
pub fn held_line(h: &Held) -> String {
    let view = MessageView::of_held(h);
    let head = format!("#{} n{} → n{}", h.id, h.from, h.to);
    match (&h.leg, &h.reply) {
        // A forwarded client request and its answer carry no term.
        (Leg::Reply, Some(reply)) if h.rpc == Rpc::Forward => {
            format!("{head} reply to {:?}: {}", h.rpc, reply_summary(reply))
        }
        (Leg::Reply, Some(reply)) => {
            let why = view.why.map(|w| format!(": {w}")).unwrap_or_default();
            format!(
                "{head} reply to {:?} (term {}): {}{why}",
                h.rpc,
                h.term,
                reply_summary(reply)
            )
        }
        // A forwarded client request carries no term.
        _ if h.rpc == Rpc::Forward => format!("{head} {:?}: {}", h.rpc, view.what()),
        _ => format!("{head} {:?} term {}: {}", h.rpc, h.term, view.what()),
    }
}

fn describe(pos: &Option<LogPos>) -> String {
    pos.map_or("empty".into(), |p| {
        format!("term {}, index {}", p.term, p.index)
    })
}

pub(super) fn reply_summary(reply: &ReplyFields) -> String {
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
        ReplyFields::Snapshot {
            term,
            next_offset: Some(next),
        } => format!("received, next offset {next} (term {term})"),
        ReplyFields::Snapshot { term, .. } => format!("installed (term {term})"),
        ReplyFields::Other { text } => text.clone(),
    }
}
