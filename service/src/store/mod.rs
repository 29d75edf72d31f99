//! Durable Raft state, generic over the openraft type config: imports neither `raft` nor `kv`.
//!
//! The durability contract (openraft-guide §3):
//! - `save_vote` returns only after the vote is fsynced: a node must never vote twice in a term.
//! - `append` makes entries readable at once and calls openraft's `IOFlushed` only after the fsync
//!   of the batch (raft-log's flush worker does one fsync for everything queued: group commit).
//! - Vote and log writes go through one WAL in call order, so a vote can never be overtaken by a
//!   later log write.
//! - A full snapshot file is written to a temp file (or received into one), fsynced, renamed, and
//!   the directory fsynced before openraft is told it exists, so the log it covers can be purged
//!   safely; a half-received one is never renamed. A delta is appended to the current file with
//!   its body fsynced before the length that makes it count, so a crash mid-append leaves the
//!   previous snapshot whole (`snapshot`).
//! - raft-log holds an exclusive lock on its directory while open: two processes can never share
//!   one node's data.
//! - On open, raft-log cuts a record torn at the very end of the log (never fsynced, so never
//!   acknowledged) and fails on any other record it cannot read (checksum); `node` turns that
//!   failure into a refusal to start, and `node::watermark` refuses a log cut short inside data
//!   that was fsynced. [`LogStore::durable_index`] is what that watermark may record.

pub mod codec;
pub mod log;
pub mod snapshot;
pub mod space;

pub use log::LogStore;
pub use snapshot::{SnapshotData, SnapshotFile};

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `dir/name` with `bytes` so that after a crash the file holds either the old or the
/// new contents, never a mix. Blocking.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // FSYNC: contents on disk before the rename makes them current; otherwise a crash could leave
    // the new name pointing at an empty file.
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    // FSYNC: the rename lives in the directory; sync it so the new name survives a crash.
    fsync_dir(dir)
}

/// [`write_atomically`] on a blocking thread, for async callers: the two fsyncs take
/// milliseconds that must not hold a runtime worker.
pub async fn write_atomically_async(
    dir: &Path,
    name: &'static str,
    bytes: Vec<u8>,
) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&dir, name, &bytes))
        .await
        .map_err(io::Error::other)?
}

/// Makes the entries of `dir` (a rename into it) durable: an fsync of the directory itself.
///
/// Unix only, like the whole store: raft-log's chunked-wal uses Unix-only file calls, so raftkv
/// does not build as a Windows program and runs in WSL there (README: Windows; `bin/*.bat`).
/// Should the store ever build on Windows, this must not silently become a no-op: Windows cannot
/// open a directory with `File::open` ("access denied") and has no directory fsync; the durable
/// rename there is `MoveFileExW` with `MOVEFILE_WRITE_THROUGH`. Hence the compile error below.
#[cfg(unix)]
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
compile_error!(
    "raftkv's store is Unix-only (README: Windows): on Windows, run raftkv in WSL; a native port \
     needs a durable rename (MoveFileExW with MOVEFILE_WRITE_THROUGH) instead of store::fsync_dir"
);
