//! MessagePack wrappers that give openraft values the `codeq` Encode/Decode that raft-log needs.
//! MessagePack is self-delimiting, which a record stream requires: the decoder stops at the end of
//! one value. Struct fields are written by name so optional/defaulted serde fields stay decodable.

use std::cmp::Ordering;
use std::io;

use openraft::RaftTypeConfig;
use openraft::type_config::alias::VoteOf;
use openraft::vote::RaftVote;
use raft_log::codeq::{Decode, Encode, OffsetWriter};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Any serde value, stored as MessagePack.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pack<T>(pub T);

/// The vote, stored as MessagePack and ordered the way openraft orders votes (raft-log refuses to
/// store a vote lower than the current one: a protocol bug becomes an io error, not silent damage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackVote<C: RaftTypeConfig>(pub VoteOf<C>);

impl<C: RaftTypeConfig> PartialOrd for PackVote<C> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        RaftVote::partial_cmp(&self.0, &other.0)
    }
}

impl<T: Serialize> Pack<T> {
    /// Encoded size, which raft-log uses to bound its payload cache.
    pub fn encoded_len(&self) -> u64 {
        encode(&self.0, io::sink()).map(|n| n as u64).unwrap_or(0)
    }
}

impl<T: Serialize> Encode for Pack<T> {
    fn encode<W: io::Write>(&self, w: W) -> io::Result<usize> {
        encode(&self.0, w)
    }
}

impl<T: DeserializeOwned> Decode for Pack<T> {
    fn decode<R: io::Read>(r: R) -> io::Result<Self> {
        decode(r).map(Pack)
    }
}

impl<C: RaftTypeConfig> Encode for PackVote<C> {
    fn encode<W: io::Write>(&self, w: W) -> io::Result<usize> {
        encode(&self.0, w)
    }
}

impl<C: RaftTypeConfig> Decode for PackVote<C> {
    fn decode<R: io::Read>(r: R) -> io::Result<Self> {
        decode(r).map(PackVote)
    }
}

fn encode<T: Serialize, W: io::Write>(value: &T, mut w: W) -> io::Result<usize> {
    let mut counting = OffsetWriter::new(&mut w);
    rmp_serde::encode::write_named(&mut counting, value)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(counting.offset())
}

fn decode<T: DeserializeOwned, R: io::Read>(r: R) -> io::Result<T> {
    rmp_serde::decode::from_read(r).map_err(|e| {
        // A torn record at the WAL's tail shows up as UnexpectedEof; raft-log tells it apart from
        // corruption by the error kind, so keep the kind of an underlying io error.
        let kind = match &e {
            rmp_serde::decode::Error::InvalidMarkerRead(io)
            | rmp_serde::decode::Error::InvalidDataRead(io) => io.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    })
}
