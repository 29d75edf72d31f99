//! What travels in a frame: MessagePack (self-describing, fields by name, so a version mismatch is a
//! clean decode error rather than garbage) of the types below, one value per length-delimited frame.

use std::io;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};
use serde::{Deserialize, Serialize};

use crate::kv;
use crate::observe::Rpc;
use crate::raft::TypeConfig;
use crate::raft::leader::{ReadOutcome, WriteOutcome};
use crate::raft::members::{MemberChange, MemberOutcome};
use crate::raft::typ::{SnapshotMeta, Vote};

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
    /// A whole snapshot in one frame (bounded by `MAX_FRAME`).
    InstallSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
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
    InstallSnapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Write(WriteOutcome),
    ReadIndex(ReadOutcome),
    Member(MemberOutcome),
    /// The receiver could not serve a Raft RPC (stopped, fatal error).
    Failed(String),
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

impl Reply {
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
