//! What a node is told at start: its addresses, how it becomes a member, timings, where its data
//! lives. Node ids are not configured: a founding member's id is the position of its Raft address
//! in the sorted address list, so every process started with the same list agrees on them; a
//! server added at runtime gets the next id from the cluster (`raft::members`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Raft timing. openraft requires heartbeat < election min < election max.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How often a leader sends heartbeats (AppendEntries) to each follower, in ms.
    pub heartbeat_ms: u64,
    /// A follower that hears no leader starts an election after a random timeout in this range
    /// (plus openraft's leader lease, equal to the max), so 650–800 ms after the last heartbeat
    /// by default: a failover commits again in well under a second (bench/compare.sh measures
    /// it), while ≥ 5× the heartbeat keeps a busy 2-core machine from looking like a dead leader
    /// (the same script counts elections during full-load runs: none).
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Ask "could I win?" before starting a real election (Raft thesis §9.6).
    pub pre_vote: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_ms: 50,
            election_min_ms: 250,
            election_max_ms: 400,
            pre_vote: true,
        }
    }
}

/// The founding membership: node id → Raft address.
pub type Members = BTreeMap<u64, SocketAddr>;

/// How a node becomes a member of its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// One of the servers the cluster was created with (the assignment's five). The first start
    /// of each proposes `members` as the initial configuration.
    Founding { id: u64, members: Members },
    /// A server added at runtime: on its first start it asks a member (any of these HTTP base
    /// URLs) to add its Raft address as a learner, and gets its id back. It then catches up
    /// from the leader (by snapshot if the log was purged) and votes only once promoted.
    /// `ca`: a certificate authority (PEM) to trust when those URLs are `https://`.
    Join {
        via: Vec<String>,
        ca: Option<PathBuf>,
    },
}

/// Everything `node::Node::start` needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub start: Start,
    pub raft_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    pub timing: Timing,
    /// How long a client write or linearizable read may take before the node gives up with 503.
    pub request_timeout: Duration,
    /// Snapshot after this many log entries (see `raft::SNAPSHOT_EVERY`).
    pub snapshot_every: u64,
    /// Also snapshot, and purge the log it covers, once the log takes this many bytes on disk
    /// (see `node::compact`): entry counts alone let a log of big values grow to gigabytes.
    pub log_bytes_limit: u64,
    /// The leader takes no new writes while its data directory's disk has less than this many
    /// bytes free (`store::space`).
    pub disk_reserve: u64,
    /// HTTP requests served at once; more are refused at once with 503 (see `api::router`).
    pub max_in_flight: usize,
    /// With a cluster secret, peers authenticate each other and encrypt Raft traffic.
    pub secret: Option<Secret>,
    /// With an admin token, membership changes over HTTP need it (`api::admin`); without one they
    /// are accepted from loopback only.
    pub admin_token: Option<AdminToken>,
    /// With a certificate and its key (PEM files), the HTTP port serves HTTPS only (`api::tls`).
    pub tls: Option<TlsFiles>,
    /// How much data and how large messages travel between nodes (`net`).
    pub transfer: Transfer,
}

/// Sizes on the wire between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// A snapshot is sent to a follower in InstallSnapshot messages of at most this many bytes of
    /// it (`net::snapshot`), so neither side ever holds more of it in memory than this.
    pub snapshot_chunk: usize,
    /// Largest message a node sends or accepts; a bigger one is refused rather than allowed to
    /// exhaust memory. It bounds AppendEntries (at most `store::log::MAX_APPEND_BYTES` of
    /// entries, plus one entry of up to 1 MiB of writes) and a snapshot chunk, not the state.
    pub max_message: usize,
}

/// Largest [`Transfer::max_message`], and its default (`net::MAX_FRAME`).
pub const MAX_MESSAGE: usize = 256 << 20;
/// Default for [`Transfer::snapshot_chunk`]: large enough that a gigabyte moves in a few hundred
/// round trips, small enough to be a fraction of a heartbeat's worth of time on a slow link.
pub const SNAPSHOT_CHUNK: usize = 4 << 20;
/// Smallest [`Transfer::max_message`]: an AppendEntries of `MAX_APPEND_BYTES` must fit.
pub const MIN_MAX_MESSAGE: usize = 8 << 20;
/// Smallest [`Transfer::snapshot_chunk`].
pub const MIN_SNAPSHOT_CHUNK: usize = 4 << 10;

impl Default for Transfer {
    fn default() -> Self {
        Transfer {
            snapshot_chunk: SNAPSHOT_CHUNK,
            max_message: MAX_MESSAGE,
        }
    }
}

impl Transfer {
    /// Checks the sizes fit together: a chunk (with its message's fields) inside a message.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_message < MIN_MAX_MESSAGE || self.max_message > MAX_MESSAGE {
            return Err(format!(
                "the largest message must be between {} and {} MiB, not {} bytes",
                MIN_MAX_MESSAGE >> 20,
                MAX_MESSAGE >> 20,
                self.max_message
            ));
        }
        if self.snapshot_chunk < MIN_SNAPSHOT_CHUNK || self.snapshot_chunk > self.max_message / 2 {
            return Err(format!(
                "a snapshot chunk must be between {} KiB and half the largest message ({} KiB), \
                 not {} bytes",
                MIN_SNAPSHOT_CHUNK >> 10,
                self.max_message >> 11,
                self.snapshot_chunk
            ));
        }
        Ok(())
    }
}

/// A PEM certificate chain and its private key (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The bearer token that membership changes over HTTP must carry (`--admin-token-file`).
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: &str) -> Result<AdminToken, String> {
        let token = token.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("an admin token is one word of printable characters, not empty".into());
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// Reads the token from the first line of `path`.
    pub fn from_file(path: &std::path::Path) -> Result<AdminToken, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
        AdminToken::new(text.lines().next().unwrap_or(""))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

/// Default for [`NodeConfig::log_bytes_limit`]: 256 MiB of log per node at most between
/// compactions, whatever the size of the values.
pub const LOG_BYTES_LIMIT: u64 = 256 << 20;

/// Default for [`NodeConfig::disk_reserve`]: room for a WAL chunk (64 MiB) and a snapshot of a
/// small state. A state of gigabytes needs a larger reserve.
pub const DISK_RESERVE: u64 = 128 << 20;

/// Default for [`NodeConfig::max_in_flight`]: far above what a node needs to saturate its disk
/// (the benchmark peaks below 256 connections), low enough to bound memory under a flood.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Resolves `host:port` to one socket address (the first IPv4 one if there is any).
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(parsed) = addr.parse() {
        return Ok(parsed);
    }
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve address {addr:?}: {e}"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}

/// Gives ids 0..n to the Raft addresses in sorted order. `self_addr` must be one of them.
/// Returns (own id, members).
pub fn assign_ids(self_addr: SocketAddr, peers: &[SocketAddr]) -> Result<(u64, Members), String> {
    let mut all: Vec<SocketAddr> = peers.to_vec();
    all.push(self_addr);
    all.sort();
    if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("address {} is listed twice", w[0]));
    }
    let members: Members = all
        .into_iter()
        .enumerate()
        .map(|(i, a)| (i as u64, a))
        .collect();
    let id = members
        .iter()
        .find(|(_, a)| **a == self_addr)
        .map(|(id, _)| *id)
        .expect("self is a member");
    Ok((id, members))
}

/// Parses `MIN..MAX` (milliseconds).
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (min, max) = s
        .split_once("..")
        .ok_or_else(|| format!("expected MIN..MAX in ms, got {s:?}"))?;
    let min: u64 = min
        .trim()
        .parse()
        .map_err(|_| format!("bad minimum in {s:?}"))?;
    let max: u64 = max
        .trim()
        .parse()
        .map_err(|_| format!("bad maximum in {s:?}"))?;
    if min >= max {
        return Err(format!(
            "election timeout minimum must be below maximum, got {s:?}"
        ));
    }
    Ok((min, max))
}

/// Shortest cluster secret accepted: anything shorter is guessable.
pub const MIN_SECRET_BYTES: usize = 16;

/// The cluster secret, as the 32-byte pre-shared key derived from it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Derives the key from a secret's bytes (surrounding whitespace, e.g. a final newline, is
    /// ignored). Refuses secrets shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<Secret, String> {
        let trimmed = secret.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                trimmed.len()
            ));
        }
        Ok(Secret(Sha256::digest(trimmed).into()))
    }

    /// The pre-shared key for the Noise handshake (`net::secure`).
    pub fn key(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the cluster secret {}: {e}", path.display()))?;
        Secret::new(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_sorted_addresses_whatever_the_argument_order() {
        let a: Vec<SocketAddr> = ["127.0.0.1:6002", "127.0.0.1:6000", "127.0.0.1:6001"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let (id, members) = assign_ids(a[0], &a[1..]).unwrap();
        assert_eq!(id, 2);
        let (id, members2) = assign_ids(a[1], &[a[2], a[0]]).unwrap();
        assert_eq!(id, 0);
        assert_eq!(members, members2);
        assert!(assign_ids(a[0], &[a[0]]).is_err());
    }

    #[test]
    fn election_range_is_validated() {
        assert_eq!(parse_range("150..300"), Ok((150, 300)));
        assert!(parse_range("300..150").is_err());
        assert!(parse_range("300").is_err());
    }
}
