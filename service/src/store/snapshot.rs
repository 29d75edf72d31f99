//! A node's snapshots as files, never as one buffer: `snapshot.bin` is the current one, replaced
//! atomically; `snapshot.incoming` is one being received from a leader, chunk by chunk.
//!
//! A snapshot file is the magic [`MAGIC`], the snapshot's meta (MessagePack), then the state
//! (MessagePack, written by the caller straight from the live state). The same bytes are written
//! when a snapshot is built, sent to a follower as they are, and renamed into place once received
//! whole, so no step holds the serialized state in memory: building streams into the file, a
//! transfer reads and writes one chunk at a time, and installing decodes from the file.
//!
//! The file a snapshot came from stays readable through its open handle ([`SnapshotData`]) even
//! after a newer snapshot replaces it (Unix keeps an unlinked file alive while it is open; Rust
//! opens files on Windows with delete sharing): a transfer in progress is never cut short by the
//! next snapshot.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::RaftTypeConfig;
use openraft::type_config::alias::SnapshotMetaOf;
use serde::{Deserialize, Serialize};

const CURRENT: &str = "snapshot.bin";
const INCOMING: &str = "snapshot.incoming";
/// First bytes of every snapshot file of this format. The format before it (one MessagePack map
/// holding the meta and the state as a byte string) starts with a map marker, never with this.
pub const MAGIC: &[u8; 8] = b"RKVSNAP2";
/// Buffer between the serializer or deserializer and the file.
const IO_BUFFER: usize = 1 << 20;

/// An open snapshot file: what openraft hands from the state machine to the network and back.
#[derive(Debug)]
pub struct SnapshotData {
    path: PathBuf,
    file: File,
    len: u64,
}

impl SnapshotData {
    /// Opens a complete snapshot file.
    pub fn open(path: PathBuf) -> io::Result<SnapshotData> {
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(SnapshotData { path, file, len })
    }

    /// The file's size in bytes: what a transfer sends.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the file was opened (it may have been replaced since; the handle still reads it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `max` bytes from `offset` (fewer only at the end). Blocking.
    pub fn read_chunk(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let want = max.min(self.len.saturating_sub(offset) as usize);
        let mut chunk = vec![0; want];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut chunk)?;
        Ok(chunk)
    }

    /// The meta at the head of the file, and a reader positioned at the state. Blocking.
    pub fn reader<C: RaftTypeConfig>(&mut self) -> io::Result<(SnapshotMetaOf<C>, impl Read + '_)> {
        self.file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(IO_BUFFER, &mut self.file);
        let mut magic = [0; MAGIC.len()];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid(format!(
                "{} is not a snapshot file of this version",
                self.path.display()
            )));
        }
        let meta = rmp_serde::decode::from_read(&mut reader).map_err(invalid)?;
        Ok((meta, reader))
    }
}

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
            // FSYNC (partial, data only): bounds the dirty pages; the final sync_all makes the
            // whole file durable before it becomes current.
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// The format before [`MAGIC`]: read once, rewritten in the new one.
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
    /// place, so that a slow build never replaces a newer snapshot installed meanwhile: the log
    /// that newer one covers may already be purged.
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

    /// The current snapshot file's size in bytes (0 without one). One `stat`, no read.
    pub fn current_len(&self) -> u64 {
        fs::metadata(self.dir.join(CURRENT)).map_or(0, |m| m.len())
    }

    /// Where a snapshot being received is written.
    pub fn incoming_path(&self) -> PathBuf {
        self.dir.join(INCOMING)
    }

    /// Writes a new snapshot: the meta, then whatever `body` writes (the state), into a temporary
    /// file that becomes the current snapshot once durable. Returns it open. Blocking.
    pub fn write(
        &self,
        meta: &SnapshotMetaOf<C>,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotData> {
        let mut data = self.write_temporary(meta, body)?;
        self.make_current(&mut data, index::<C>(meta))?;
        Ok(data)
    }

    /// A new snapshot file under a temporary name, complete and fsynced.
    fn write_temporary(
        &self,
        meta: &SnapshotMetaOf<C>,
        body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotData> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".snapshot-")
            .tempfile_in(&self.dir)?;
        {
            let synced = SyncEvery {
                file: tmp.as_file_mut(),
                unsynced: 0,
            };
            let mut out = BufWriter::with_capacity(IO_BUFFER, synced);
            out.write_all(MAGIC)?;
            rmp_serde::encode::write_named(&mut out, meta).map_err(io::Error::other)?;
            body(&mut out)?;
            out.flush()?;
        }
        // FSYNC: the contents are on disk before the rename makes them current; otherwise a
        // crash could leave snapshot.bin naming a partly written file.
        tmp.as_file().sync_all()?;
        let path = tmp.path().to_path_buf();
        let (file, _) = tmp.keep().map_err(|e| e.error)?;
        let len = file.metadata()?.len();
        Ok(SnapshotData { path, file, len })
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
            Some(mut data) => Some(data.reader::<C>()?.0),
            None => None,
        })
    }

    /// The current snapshot, open, if there is one. A snapshot of the previous format is rewritten
    /// in this one first (once). Blocking.
    pub fn open_current(&self) -> io::Result<Option<SnapshotData>> {
        let path = self.dir.join(CURRENT);
        let mut data = match SnapshotData::open(path.clone()) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut magic = [0; MAGIC.len()];
        let n = data.file.read(&mut magic)?;
        if n == MAGIC.len() && &magic == MAGIC {
            return Ok(Some(data));
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
mod tests {
    use super::*;

    // A type config of the test's own: `store` sits below `raft` and does not import it.
    openraft::declare_raft_types!(TypeConfig: D = String, R = String);
    type SnapshotMeta = SnapshotMetaOf<TypeConfig>;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 0, index)),
            ..Default::default()
        }
    }

    fn body(bytes: &'static [u8]) -> impl FnOnce(&mut dyn Write) -> io::Result<()> {
        move |out| out.write_all(bytes)
    }

    fn state_of(data: &mut SnapshotData) -> (u64, Vec<u8>) {
        let (meta, mut reader) = data.reader::<TypeConfig>().unwrap();
        let mut state = Vec::new();
        reader.read_to_end(&mut state).unwrap();
        (meta.last_log_id.unwrap().index, state)
    }

    #[test]
    fn a_written_snapshot_is_current_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        assert!(file.open_current().unwrap().is_none());
        let mut written = file.write(&meta(7), body(b"state")).unwrap();
        assert_eq!(state_of(&mut written), (7, b"state".to_vec()));
        let again = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        assert_eq!(state_of(&mut again.open_current().unwrap().unwrap()).0, 7);
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one_but_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        file.write(&meta(9), body(b"nine")).unwrap();
        let mut older = file.write(&meta(5), body(b"five")).unwrap();
        assert_eq!(state_of(&mut older), (5, b"five".to_vec()));
        assert_eq!(file.current_meta().unwrap().unwrap(), meta(9));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(CURRENT)],
            "no leftovers"
        );
    }

    #[test]
    fn a_replaced_snapshot_is_still_readable_through_its_handle() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        let mut first = file.write(&meta(3), body(b"three")).unwrap();
        file.write(&meta(4), body(b"four")).unwrap();
        assert_eq!(state_of(&mut first), (3, b"three".to_vec()));
        assert_eq!(first.read_chunk(0, 4).unwrap(), b"RKVS");
    }

    #[test]
    fn a_snapshot_of_the_previous_format_is_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = LegacyImage::<TypeConfig> {
            meta: meta(11),
            data: b"old state".to_vec(),
        };
        fs::write(
            dir.path().join(CURRENT),
            rmp_serde::to_vec_named(&legacy).unwrap(),
        )
        .unwrap();
        let file = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        let mut data = file.open_current().unwrap().unwrap();
        assert_eq!(state_of(&mut data), (11, b"old state".to_vec()));
        assert_eq!(&fs::read(dir.path().join(CURRENT)).unwrap()[..8], MAGIC);
    }

    #[test]
    fn a_half_received_snapshot_is_deleted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(INCOMING), b"RKVSNAP2 and then nothing").unwrap();
        let file = SnapshotFile::<TypeConfig>::new(dir.path()).unwrap();
        assert!(!file.incoming_path().exists());
        assert!(file.open_current().unwrap().is_none());
    }

    #[test]
    fn a_file_that_is_not_a_snapshot_is_refused_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        fs::write(&path, b"RKVSNAP1 garbage").unwrap();
        let mut data = SnapshotData::open(path).unwrap();
        let err = data.reader::<TypeConfig>().err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
