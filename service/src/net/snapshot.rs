//! InstallSnapshot as the paper's Figure 13: the leader sends its snapshot file in chunks of at
//! most `Transfer::snapshot_chunk` bytes, each with its `offset` and `done` on the last; the
//! follower writes them to `snapshot.incoming`, and only when the file is whole does it fsync it
//! and hand it to openraft, which installs it. Neither side holds more than one chunk of the
//! snapshot in memory, and a message never carries more than one chunk, so the size of the data is
//! not bounded by the largest message.
//!
//! Why our own chunking and not openraft's: 0.10 leaves the transfer to the network
//! (`RaftNetworkV2::full_snapshot` takes the whole snapshot, `Raft::install_full_snapshot` the
//! received one), and its older chunked protocol (`RaftNetwork::install_snapshot`) reads the
//! snapshot through `AsyncRead + AsyncSeek` into messages of its own we would still have to carry.
//! Our messages go through the same fault table and observers as every other RPC, so the lab shows
//! each chunk and can hold, drop or cut it.
//!
//! Interrupted transfers: a chunk that is not where the follower's file ends is not written; the
//! reply names the offset it wants (0 for a transfer it does not know), so a sender that
//! reconnects, or a new leader with another snapshot, starts over cleanly. A half-received file is
//! never installed, and is deleted when the node starts (`store::snapshot`).

use std::io;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{NetworkError, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::SnapshotResponse;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::client::PeerNetwork;
use super::frame::{Reply, Request};
use super::transfer_time;
use crate::metrics::Metrics;
use crate::raft::TypeConfig;
use crate::raft::typ::{LogId, Raft, Snapshot, SnapshotMeta, Vote};
use crate::store::SnapshotData;

/// Times in a row a follower may send the leader back to an earlier offset before the transfer
/// is given up (openraft starts a new one later): two leaders' transfers could otherwise reset
/// each other for ever.
const MAX_RESTARTS: u32 = 3;

/// Sends `snapshot` to the peer, chunk by chunk. Called by `full_snapshot`, which also races it
/// against openraft's cancel.
pub(super) async fn send(
    peer: &mut PeerNetwork,
    vote: Vote,
    snapshot: Snapshot,
    option: &RPCOption,
) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
    let Snapshot {
        meta,
        snapshot: mut file,
    } = snapshot;
    let (size, chunk) = (file.len(), peer.me.transfer.snapshot_chunk);
    let (mut offset, mut restarts, started) = (0, 0, std::time::Instant::now());
    loop {
        let data;
        // Reading the file is blocking; the handle goes to the blocking thread and back.
        (file, data) = tokio::task::spawn_blocking(move || {
            let data = file.read_chunk(offset, chunk);
            (file, data)
        })
        .await
        .map_err(|e| unreachable(&io::Error::other(e)))?;
        let data = data.map_err(|e| unreachable(&e))?;
        let end = offset + data.len() as u64;
        let done = end >= size;
        let request = Request::InstallSnapshot {
            vote,
            meta: meta.clone(),
            offset,
            size,
            data,
            done,
        };
        // Each chunk gets openraft's deadline (plus its own transfer time, added by `Conn`); the
        // last one also covers decoding and installing the whole state on the follower.
        let mut deadline = option.soft_ttl();
        if done {
            deadline += transfer_time(size as usize);
        }
        match peer.call(&request, deadline).await {
            Ok(Reply::InstallSnapshot(answer)) => {
                peer.me
                    .metrics
                    .snapshot_step("send", started.elapsed(), size);
                return Ok(answer);
            }
            Ok(Reply::SnapshotChunk { next_offset, .. }) if next_offset <= size => {
                if next_offset != end {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        return Err(unreachable(&io::Error::other(format!(
                            "the follower sent the transfer back to offset {next_offset} {restarts} times"
                        ))));
                    }
                } else if done {
                    return Err(network(format!(
                        "the follower took the last chunk at {offset} but did not install it"
                    )));
                }
                offset = next_offset;
            }
            Ok(Reply::Failed(why)) => return Err(unreachable(&io::Error::other(why))),
            Ok(other) => return Err(network(format!("unexpected reply {other:?}"))),
            Err(e) => return Err(unreachable(&e)),
        }
    }
}

fn unreachable(e: &io::Error) -> StreamingError<TypeConfig> {
    StreamingError::Unreachable(Unreachable::new(e))
}

fn network(why: String) -> StreamingError<TypeConfig> {
    StreamingError::Network(NetworkError::new(&io::Error::other(why)))
}

/// The receiving side: at most one snapshot being received at a time, in `snapshot.incoming`.
pub struct Inbox {
    path: std::path::PathBuf,
    receiving: Mutex<Option<Receiving>>,
}

/// A transfer in progress: whose, which snapshot, and how much of the file is written.
struct Receiving {
    leader: Vote,
    /// Which snapshot: the last log id it covers.
    last_included: Option<LogId>,
    file: tokio::fs::File,
    len: u64,
    started: std::time::Instant,
}

/// One InstallSnapshot message, as received.
pub struct Chunk {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub offset: u64,
    pub data: Vec<u8>,
    pub done: bool,
}

impl Inbox {
    /// Receives into `path` (the state machine's `SnapshotFile::incoming_path`).
    pub fn new(path: std::path::PathBuf) -> Inbox {
        Inbox {
            path,
            receiving: Mutex::new(None),
        }
    }

    /// Handles one chunk: the paper's receiver steps 1-5 (refuse an older term; create the file
    /// at offset 0; write at offset; reply and wait for more unless done), then, when done,
    /// installs through openraft (steps 6-8: it keeps the log entries that follow the snapshot,
    /// or discards the whole log).
    pub async fn receive(&self, raft: &Raft, metrics: &Metrics, chunk: Chunk) -> io::Result<Reply> {
        let current = raft.metrics().borrow_watched().vote;
        // Step 1: reply immediately if term < currentTerm (openraft compares whole votes).
        if current > chunk.vote {
            return Ok(Reply::InstallSnapshot(SnapshotResponse { vote: current }));
        }
        let mut receiving = self.receiving.lock().await;
        if chunk.offset == 0 {
            // A snapshot this node already holds (an earlier done whose reply was lost) is not
            // received again.
            let held = raft.metrics().borrow_watched().snapshot;
            if chunk.meta.last_log_id.is_some() && held >= chunk.meta.last_log_id {
                *receiving = None;
                return Ok(Reply::InstallSnapshot(SnapshotResponse { vote: current }));
            }
            // Step 2: create a new snapshot file (replacing any other transfer's).
            *receiving = Some(Receiving {
                leader: chunk.vote,
                last_included: chunk.meta.last_log_id,
                file: tokio::fs::File::create(&self.path).await?,
                len: 0,
                started: std::time::Instant::now(),
            });
        }
        let next_offset = match receiving.as_mut() {
            Some(r)
                if r.leader == chunk.vote
                    && r.last_included == chunk.meta.last_log_id
                    && r.len == chunk.offset =>
            {
                // Step 3: write data into the file at the given offset.
                r.file.write_all(&chunk.data).await?;
                r.len += chunk.data.len() as u64;
                r.len
            }
            // Not where our file ends, or another transfer: say where to go on from.
            Some(r) if r.leader == chunk.vote && r.last_included == chunk.meta.last_log_id => {
                return Ok(Reply::SnapshotChunk {
                    vote: current,
                    next_offset: r.len,
                });
            }
            _ => {
                return Ok(Reply::SnapshotChunk {
                    vote: current,
                    next_offset: 0,
                });
            }
        };
        // Step 4: reply and wait for more data chunks if done is false.
        if !chunk.done {
            return Ok(Reply::SnapshotChunk {
                vote: current,
                next_offset,
            });
        }
        let Some(mut whole) = receiving.take() else {
            unreachable!("written above");
        };
        whole.file.flush().await?;
        // FSYNC: the whole file is on disk before it can become the current snapshot; once it
        // is, openraft may purge the log it covers.
        whole.file.sync_all().await?;
        drop(whole.file);
        metrics.snapshot_step("receive", whole.started.elapsed(), whole.len);
        let path = self.path.clone();
        let data = tokio::task::spawn_blocking(move || SnapshotData::open(path))
            .await
            .map_err(io::Error::other)??;
        // Step 5 and on: openraft checks the vote again, installs (the state machine decodes the
        // file and makes it current) and replies with its vote. The lock is held meanwhile, so a
        // new transfer cannot truncate the file being installed.
        let snapshot = Snapshot {
            meta: chunk.meta,
            snapshot: data,
        };
        Ok(
            match raft.install_full_snapshot(chunk.vote, snapshot).await {
                Ok(answer) => Reply::InstallSnapshot(answer),
                Err(e) => Reply::Failed(e.to_string()),
            },
        )
    }
}
