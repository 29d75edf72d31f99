//! A node's snapshots as files, never as one buffer: `snapshot.bin` is the current one;
//! `snapshot.incoming` is one being received from a leader, chunk by chunk. The format, and an
//! open file, are in [`data`].
//!
//! A snapshot is written in one of two ways. A full one — the meta, then the whole state, written
//! by the caller straight from the live state — goes into a temporary file that replaces
//! `snapshot.bin` atomically once durable. A delta — only what changed since the current snapshot
//! — is appended to `snapshot.bin` in place ([`SnapshotFile::append`]): a snapshot then costs disk
//! writes in proportion to what changed, not to the state (issue 18: rewriting a gigabyte for every
//! snapshot's worth of log tripled write p99 on a shared disk). The deltas are bounded, by count
//! and by the full section's size, after which the next snapshot is full again.
//!
//! The same bytes are sent to a follower as they are and renamed into place once received whole,
//! so no step holds the serialized state in memory: building streams into the file, a transfer
//! reads and writes one chunk at a time, and installing decodes from the file.
//!
//! The file a snapshot came from stays readable through its open handle ([`SnapshotData`]) even
//! after a newer snapshot replaces it (Unix keeps an unlinked file alive while it is open; Rust
//! opens files on Windows with delete sharing), and a handle never reads past the end the file had
//! when it was opened: a transfer in progress is never cut short or changed by the next snapshot.

mod data;

pub use data::{Kind, MAGIC, MAGIC_V2, Shape, SnapshotData};

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::RaftTypeConfig;
use openraft::type_config::alias::SnapshotMetaOf;
use serde::{Deserialize, Serialize};

use data::{HEADER, IO_BUFFER, invalid};

const CURRENT: &str = "snapshot.bin";
const INCOMING: &str = "snapshot.incoming";
/// Most deltas after a full section: each is decoded on every restart and install, and each
/// carries the whole de-duplication table (up to ~3.4 MB), so past this a full snapshot is cheaper
/// to read back than the chain.
pub const MAX_DELTAS: usize = 32;

/// Flushes a file being written to disk every [`SYNC_EVERY`] bytes. Written whole and fsynced
/// once at the end, a gigabyte of dirty pages went to the disk in one burst, and the WAL's
/// fsyncs on the same disk waited behind it; in steps, the burst is never more than this.
struct SyncEvery<'a> {
    file: &'a mut File,
    unsynced: usize,
}

const SYNC_EVERY: usize = 16 << 20;

impl Write for SyncEvery<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            // FSYNC (partial, data only): bounds the dirty pages; the final sync makes the whole
            // section durable before its length makes it count.
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes one section at the file's current position: a header with length 0, the meta, whatever
/// `body` writes, an fsync of all that, then the length, and another fsync; leaves the position at
/// the section's end. Blocking.
///
/// ORDERING: the body must be on disk before the length that makes it count; written together
/// and synced once, the disk could keep the length and lose the body, and a crash would leave a
/// section that reads as complete and is not.
fn write_section<M: Serialize + ?Sized>(
    file: &mut File,
    kind: Kind,
    meta: &M,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let at = file.stream_position()?;
    {
        let synced = SyncEvery { file, unsynced: 0 };
        let mut out = BufWriter::with_capacity(IO_BUFFER, synced);
        out.write_all(&0u64.to_le_bytes())?;
        out.write_all(&[kind as u8])?;
        rmp_serde::encode::write_named(&mut out, meta).map_err(io::Error::other)?;
        body(&mut out)?;
        out.flush()?;
    }
    let end = file.stream_position()?;
    // FSYNC: the body durable before its length (ORDERING above).
    file.sync_data()?;
    file.seek(SeekFrom::Start(at))?;
    file.write_all(&(end - at - HEADER).to_le_bytes())?;
    // FSYNC: the length durable: the section counts from here on.
    file.sync_data()?;
    file.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// The format before [`MAGIC_V2`]: read once, rewritten in the current one.
#[derive(Deserialize, Serialize)]
#[serde(bound = "")]
struct LegacyImage<C: RaftTypeConfig> {
    meta: SnapshotMetaOf<C>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// Where a node keeps its snapshots.
#[derive(Debug)]
pub struct SnapshotFile<C: RaftTypeConfig> {
    dir: PathBuf,
    /// The last index of the current snapshot, once known. Held while a snapshot is put in
    /// place or a delta appended, so that a slow build never replaces a newer snapshot installed
    /// meanwhile (the log that newer one covers may already be purged), and a delta is appended
    /// only to the snapshot it was taken against.
    current: Arc<Mutex<Option<Option<u64>>>>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Clone for SnapshotFile<C> {
    fn clone(&self) -> Self {
        SnapshotFile {
            dir: self.dir.clone(),
            current: self.current.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> SnapshotFile<C> {
    /// Opens the directory; a snapshot half-received before a crash is deleted (it was never
    /// installed: only a complete one is renamed into place).
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        match fs::remove_file(dir.join(INCOMING)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(SnapshotFile {
            dir: dir.to_path_buf(),
            current: Arc::default(),
            _config: PhantomData,
        })
    }

    /// The size of the current snapshot's full section, its deltas left out: about what
    /// rewriting the state costs (0 without a snapshot, or if it cannot be read). A few small
    /// reads (the section headers). Blocking.
    pub fn full_len(&self) -> u64 {
        SnapshotData::open(self.dir.join(CURRENT)).map_or(0, |data| data.shape().full_bytes())
    }

    /// Where a snapshot being received is written.
    pub fn incoming_path(&self) -> PathBuf {
        self.dir.join(INCOMING)
    }

    /// Writes a full snapshot: the meta, then whatever `body` writes (the whole state), into a
    /// temporary file that becomes the current snapshot once durable. Returns it open. Blocking.
    pub fn write(
        &self,
        meta: &SnapshotMetaOf<C>,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotData> {
        let mut data = self.write_temporary(meta, body)?;
        self.make_current(&mut data, index::<C>(meta))?;
        Ok(data)
    }

    /// Appends a delta — the meta, then whatever `body` writes (what changed since the snapshot
    /// at index `base`) — to the current snapshot, if that is the snapshot at `base`, is of the
    /// section format, and stays within its bounds with about `estimate` bytes more ([`MAX_DELTAS`],
    /// deltas no larger in all than the full section). Returns the grown snapshot open, or `None`
    /// when a full snapshot must be written instead. Blocking.
    pub fn append(
        &self,
        base: Option<u64>,
        estimate: u64,
        meta: &SnapshotMetaOf<C>,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Option<SnapshotData>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.dir.join(CURRENT);
        let mut data = match SnapshotData::open(path.clone()) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let shape = data.shape().clone();
        let (deltas, delta_bytes) = shape.deltas();
        if base.is_none()
            || index::<C>(&data.meta::<C>()?) != base
            || !shape.sectioned
            || deltas >= MAX_DELTAS
            || delta_bytes + estimate > shape.full_bytes()
        {
            return Ok(None);
        }
        let mut file = OpenOptions::new().write(true).open(&path)?;
        // Whatever lies past the last complete section (a delta cut short by a crash or a failed
        // write) counts for nothing and no open handle reads it: written over.
        file.set_len(shape.end())?;
        file.seek(SeekFrom::Start(shape.end()))?;
        // FSYNC (inside): durable, body before length, before openraft learns of it and purges
        // the log it covers.
        if let Err(e) = write_section(&mut file, Kind::Delta, meta, body) {
            // A delta that could not be written (a full disk) counts for nothing either way;
            // cutting it off gives its space back and leaves the file byte for byte as it was.
            let _ = file.set_len(shape.end());
            return Err(e);
        }
        drop(data);
        data = SnapshotData::open(path)?;
        *current = Some(index::<C>(meta));
        Ok(Some(data))
    }

    /// A new full snapshot file under a temporary name, complete and fsynced.
    fn write_temporary(
        &self,
        meta: &SnapshotMetaOf<C>,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotData> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".snapshot-")
            .tempfile_in(&self.dir)?;
        tmp.as_file_mut().write_all(MAGIC)?;
        // FSYNC (inside): body, then length; sync_all below adds the file's metadata.
        write_section(tmp.as_file_mut(), Kind::Full, meta, body)?;
        // FSYNC: the contents are on disk before the rename makes them current; otherwise a
        // crash could leave snapshot.bin naming a partly written file.
        tmp.as_file().sync_all()?;
        let path = tmp.path().to_path_buf();
        tmp.keep().map_err(|e| e.error)?;
        SnapshotData::open(path)
    }

    /// Makes a complete, fsynced snapshot file (built here or received) the current snapshot, unless
    /// a newer one already is; either way the old file's name is gone afterwards. Blocking.
    pub fn make_current(&self, data: &mut SnapshotData, last: Option<u64>) -> io::Result<()> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none() {
            *current = Some(self.read_current_index()?);
        }
        let target = self.dir.join(CURRENT);
        if data.path == target {
            *current = Some(last);
            return Ok(());
        }
        if current.is_some_and(|now| now > last) {
            // A newer snapshot was put in place meanwhile: this one is only read through its handle.
            fs::remove_file(&data.path)?;
            return Ok(());
        }
        fs::rename(&data.path, &target)?;
        // FSYNC: the rename lives in the directory; it must survive a crash before openraft
        // purges the log this snapshot covers.
        super::fsync_dir(&self.dir)?;
        data.path = target;
        *current = Some(last);
        Ok(())
    }

    fn read_current_index(&self) -> io::Result<Option<u64>> {
        Ok(self.current_meta()?.and_then(|meta| index::<C>(&meta)))
    }

    /// The current snapshot's meta, if any, without reading the state. Blocking.
    pub fn current_meta(&self) -> io::Result<Option<SnapshotMetaOf<C>>> {
        Ok(match self.open_current()? {
            Some(mut data) => Some(data.meta::<C>()?),
            None => None,
        })
    }

    /// The current snapshot, open, if there is one. A snapshot of the format before [`MAGIC_V2`] is
    /// rewritten in this one first (once); one of [`MAGIC_V2`] is read as it is. Blocking.
    pub fn open_current(&self) -> io::Result<Option<SnapshotData>> {
        let path = self.dir.join(CURRENT);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut magic = [0; MAGIC.len()];
        let n = file.read(&mut magic)?;
        if n == MAGIC.len() && (&magic == MAGIC || &magic == MAGIC_V2) {
            return SnapshotData::open(path).map(Some);
        }
        let legacy: LegacyImage<C> = rmp_serde::from_slice(&fs::read(&path)?).map_err(invalid)?;
        // The same snapshot in the new format, in place (not through `make_current`, which may
        // be what asked: it reads the current snapshot's index under its lock).
        let mut data = self.write_temporary(&legacy.meta, |out| out.write_all(&legacy.data))?;
        fs::rename(&data.path, &path)?;
        // FSYNC: the rewritten file must be the one found after a crash, not a temporary name.
        super::fsync_dir(&self.dir)?;
        data.path = path;
        Ok(Some(data))
    }
}

fn index<C: RaftTypeConfig>(meta: &SnapshotMetaOf<C>) -> Option<u64> {
    meta.last_log_id.as_ref().map(|id| id.index)
}

#[cfg(test)]
mod tests;
