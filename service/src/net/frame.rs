//! What travels in a frame: MessagePack (self-describing, fields by name, so a version mismatch is a
//! clean decode error rather than garbage) of the types below, one value per length-delimited frame.

use std::io;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};
use serde::{Deserialize, Serialize};

use crate::kv;
use crate::observe::{AppendAnswer, Fields, LogPos, ReplyFields, Rpc};
use crate::raft::TypeConfig;
use crate::raft::leader::{ReadOutcome, WriteOutcome};
use crate::raft::members::{MemberChange, MemberOutcome};
use crate::raft::typ::{LogId, SnapshotMeta, Vote};

/// First frame on every connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    pub cluster: String,
    /// Sender's node id.
    pub from: u64,
    /// The node id the sender believes it is talking to.
    pub to: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum HelloReply {
    Welcome,
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// InstallSnapshot as in the paper's Figure 13: a chunk of the snapshot file, `data`, at
    /// `offset`; `done` on the last one. `size` is the whole file's (`net::snapshot`).
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        offset: u64,
        size: u64,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
        done: bool,
    },
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A client write forwarded by a follower; the receiver proposes it only if it leads.
    Write(kv::Request),
    /// A follower asks the leader for a read index (the leader first confirms it still leads).
    ReadIndex,
    /// A membership change forwarded by a follower; the receiver applies it only if it leads.
    Member(MemberChange),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Reply {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    /// To the last chunk (installed, or already held), or to any chunk from a leader of an
    /// older term (refused): the receiver's vote.
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    /// A chunk was written (or not, if it was not where the receiver's file ends): send the one
    /// at `next_offset`.
    SnapshotChunk {
        vote: Vote,
        next_offset: u64,
    },
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Write(WriteOutcome),
    ReadIndex(ReadOutcome),
    Member(MemberOutcome),
    /// The receiver could not serve a Raft RPC (stopped, fatal error).
    Failed(String),
    /// The receiver's committed configuration, at this log index, does not have the sender: it
    /// answers a removed server's vote request this way (`raft::removal`).
    Removed {
        config_index: u64,
    },
}

impl Request {
    /// The message's kind, the sender's term in it, and how many log entries it carries.
    pub fn describe(&self) -> (Rpc, u64, u64) {
        match self {
            Request::AppendEntries(r) if r.entries.is_empty() => {
                (Rpc::Heartbeat, r.vote.leader_id.term, 0)
            }
            Request::AppendEntries(r) => {
                (Rpc::Append, r.vote.leader_id.term, r.entries.len() as u64)
            }
            Request::Vote(r) => (Rpc::Vote, r.vote.leader_id.term, 0),
            Request::PreVote(r) => (Rpc::PreVote, r.vote.leader_id.term, 0),
            Request::InstallSnapshot { vote, .. } => (Rpc::Snapshot, vote.leader_id.term, 0),
            Request::TransferLeader(_) => (Rpc::TransferLeader, 0, 0),
            Request::Write(_) | Request::ReadIndex | Request::Member(_) => (Rpc::Forward, 0, 0),
        }
    }
}

/// A log id as the paper writes it: (index, term).
fn pos(id: &LogId) -> LogPos {
    LogPos {
        index: id.index,
        term: id.leader_id.term,
    }
}

impl Request {
    /// The message's fields, for observers (the lab's messages pane and inspector).
    pub fn fields(&self) -> Fields {
        match self {
            Request::AppendEntries(r) => Fields::Append {
                prev_log: r.prev_log_id.as_ref().map(pos),
                first: r.entries.first().map(|e| pos(&e.log_id)),
                last: r.entries.last().map(|e| pos(&e.log_id)),
                leader_commit: r.leader_commit.as_ref().map(|c| c.index),
            },
            Request::Vote(r) | Request::PreVote(r) => Fields::Vote {
                last_log: r.last_log_id.as_ref().map(pos),
            },
            Request::InstallSnapshot {
                meta,
                offset,
                size,
                data,
                done,
                ..
            } => Fields::Snapshot {
                last_included: meta.last_log_id.as_ref().map(pos),
                bytes: data.len() as u64,
                offset: *offset,
                size: *size,
                done: *done,
            },
            Request::TransferLeader(r) => Fields::TransferLeader {
                to: *r.to_node_id(),
                last_log: r.last_log_id().map(pos),
            },
            Request::Write(_) => Fields::Forward {
                what: "write".into(),
            },
            Request::ReadIndex => Fields::Forward {
                what: "read index".into(),
            },
            Request::Member(_) => Fields::Forward {
                what: "membership".into(),
            },
        }
    }
}

impl Reply {
    /// The reply's fields, for observers.
    pub fn fields(&self) -> ReplyFields {
        match self {
            Reply::Vote(v) => ReplyFields::Vote {
                term: v.vote.leader_id.term,
                granted: v.vote_granted,
                // Term 0 is before any election: openraft fills the vote with a default id then.
                vote_for: (v.vote.leader_id.term > 0).then_some(v.vote.leader_id.voted_for),
                vote_committed: v.vote.committed,
                last_log: v.last_log_id.as_ref().map(pos),
            },
            Reply::AppendEntries(a) => ReplyFields::Append(match a {
                AppendEntriesResponse::Success => AppendAnswer::Success,
                AppendEntriesResponse::PartialSuccess(m) => AppendAnswer::Partial {
                    matched: m.as_ref().map(pos),
                },
                AppendEntriesResponse::Conflict => AppendAnswer::Conflict,
                AppendEntriesResponse::HigherVote(v) => AppendAnswer::HigherTerm {
                    term: v.leader_id.term,
                },
            }),
            Reply::InstallSnapshot(s) => ReplyFields::Snapshot {
                term: s.vote.leader_id.term,
                next_offset: None,
            },
            Reply::SnapshotChunk { vote, next_offset } => ReplyFields::Snapshot {
                term: vote.leader_id.term,
                next_offset: Some(*next_offset),
            },
            Reply::Failed(why) => ReplyFields::Other { text: why.clone() },
            Reply::Removed { config_index } => ReplyFields::Other {
                text: format!(
                    "you are not in the committed configuration at log index {config_index}: removed"
                ),
            },
            Reply::TransferLeader(_) => ReplyFields::Other {
                text: "transfer accepted".into(),
            },
            Reply::Write(o) => ReplyFields::Other {
                text: o.to_string(),
            },
            Reply::ReadIndex(o) => ReplyFields::Other {
                text: o.to_string(),
            },
            Reply::Member(o) => ReplyFields::Other {
                text: o.to_string(),
            },
        }
    }

    /// For a vote reply, whether the vote was granted.
    pub fn granted(&self) -> Option<bool> {
        match self {
            Reply::Vote(v) => Some(v.vote_granted),
            _ => None,
        }
    }
}

pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
