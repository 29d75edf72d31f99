//! The snapshot file format, and an open snapshot file ([`SnapshotData`]): what openraft hands from
//! the state machine to the network and back.
//!
//! A file is [`MAGIC`] followed by sections. Each section is a header — its body's length (u64,
//! little-endian) and its kind (one byte: [`Kind::Full`] or [`Kind::Delta`]) — and a body: the
//! snapshot's meta (MessagePack), then a state image (MessagePack, written by the caller). The
//! first section is a full image of the state; each later one is a delta: the image of what
//! changed since the section before it, appended in place (`SnapshotFile::append`). The snapshot
//! a file holds is its full section with every delta applied in order, and its meta is the last
//! section's.
//!
//! A section counts only once its header holds its length: the body is fsynced before the length
//! is written (ORDERING in `SnapshotFile::append`), so a length read from disk always describes a
//! complete body, and a section cut short by a crash (length 0, or a body running past the end of
//! the file) ends the file there. [`SnapshotData::open`] measures that end once and never reads
//! past it, so a handle opened before a delta was appended keeps reading the older snapshot,
//! whole and consistent, however the file grows.
//!
//! Files of the format before this one ([`MAGIC_V2`]: the meta and one state image, no headers)
//! are read as a single full section; nothing is ever appended to them.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use openraft::RaftTypeConfig;
use openraft::type_config::alias::SnapshotMetaOf;

/// First bytes of every snapshot file of this format.
pub const MAGIC: &[u8; 8] = b"RKVSNAP3";
/// First bytes of the format before sections: one meta and one state image, to the end of the file.
pub const MAGIC_V2: &[u8; 8] = b"RKVSNAP2";
/// A section's header: body length (u64 LE) and kind.
pub(super) const HEADER: u64 = 9;
/// Buffer between the serializer or deserializer and the file.
pub(super) const IO_BUFFER: usize = 1 << 20;

/// What a section's state image holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The whole state.
    Full = 0,
    /// The keys changed since the section before, the de-duplication table and the node-id
    /// counter as of this section (the parts of the state that are small and change with every
    /// write are written whole).
    Delta = 1,
}

/// Where each complete section of a file lies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Start of each section's body, its length and kind, in file order.
    pub sections: Vec<(u64, u64, Kind)>,
    /// Whether the file has the section format (deltas can be appended to it).
    pub sectioned: bool,
}

impl Shape {
    /// Where the last complete section ends: all of the file that counts.
    pub fn end(&self) -> u64 {
        self.sections
            .last()
            .map_or(MAGIC.len() as u64, |&(start, len, _)| start + len)
    }

    /// Bytes of the full section's body.
    pub fn full_bytes(&self) -> u64 {
        self.sections.first().map_or(0, |s| s.1)
    }

    /// Deltas after the full section, and their bytes.
    pub fn deltas(&self) -> (usize, u64) {
        let deltas = self.sections.get(1..).unwrap_or_default();
        (deltas.len(), deltas.iter().map(|s| s.1).sum())
    }

    /// Reads where the sections of `file` (`len` bytes long) lie, stopping at the first one not
    /// complete. Blocking.
    pub fn read(file: &mut File, len: u64, path: &Path) -> io::Result<Shape> {
        let mut magic = [0; MAGIC.len()];
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut magic)?;
        if &magic == MAGIC_V2 {
            let start = MAGIC_V2.len() as u64;
            return Ok(Shape {
                sections: vec![(start, len - start, Kind::Full)],
                sectioned: false,
            });
        }
        if &magic != MAGIC {
            return Err(invalid(format!(
                "{} is not a snapshot file of this version",
                path.display()
            )));
        }
        let mut shape = Shape {
            sections: Vec::new(),
            sectioned: true,
        };
        let mut at = MAGIC.len() as u64;
        while at + HEADER <= len {
            let mut header = [0; HEADER as usize];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut header)?;
            let body = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
            if body == 0 || at + HEADER + body > len {
                // A section whose body was never made to count, or cut short: the end.
                break;
            }
            let kind = match (header[8], shape.sections.is_empty()) {
                (0, true) => Kind::Full,
                (1, false) => Kind::Delta,
                (k, first) => {
                    return Err(invalid(format!(
                        "{}: a section of kind {k} at byte {at} where a {} one belongs",
                        path.display(),
                        if first { "full" } else { "delta" }
                    )));
                }
            };
            shape.sections.push((at + HEADER, body, kind));
            at += HEADER + body;
        }
        if shape.sections.is_empty() {
            return Err(invalid(format!(
                "{} holds no complete snapshot",
                path.display()
            )));
        }
        Ok(shape)
    }
}

/// An open, complete snapshot file, read only up to the end it had when opened.
#[derive(Debug)]
pub struct SnapshotData {
    pub(super) path: PathBuf,
    pub(super) file: File,
    shape: Shape,
}

impl SnapshotData {
    /// Opens a snapshot file: its complete sections, not what may be appended to it later. Blocking.
    pub fn open(path: PathBuf) -> io::Result<SnapshotData> {
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        let shape = Shape::read(&mut file, len, &path)?;
        Ok(SnapshotData { path, file, shape })
    }

    /// The bytes that count: what a transfer sends.
    pub fn len(&self) -> u64 {
        self.shape.end()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the file was opened (it may have been replaced since; the handle still reads it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where its sections lie.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Up to `max` bytes from `offset` (fewer only at the end). Blocking.
    pub fn read_chunk(&mut self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let want = max.min(self.len().saturating_sub(offset) as usize);
        let mut chunk = vec![0; want];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut chunk)?;
        Ok(chunk)
    }

    /// The snapshot's meta: the last section's. Blocking.
    pub fn meta<C: RaftTypeConfig>(&mut self) -> io::Result<SnapshotMetaOf<C>> {
        let &(start, len, _) = self.shape.sections.last().expect("a complete section");
        self.file.seek(SeekFrom::Start(start))?;
        rmp_serde::decode::from_read(BufReader::new((&mut self.file).take(len))).map_err(invalid)
    }

    /// Reads the sections in order: for each, `each` gets its kind and a reader of its state
    /// image (bounded by the section). Returns the snapshot's meta. Blocking.
    pub fn read<C: RaftTypeConfig>(
        &mut self,
        mut each: impl FnMut(Kind, &mut dyn Read) -> io::Result<()>,
    ) -> io::Result<SnapshotMetaOf<C>> {
        let mut meta = None;
        for (start, len, kind) in self.shape.sections.clone() {
            self.file.seek(SeekFrom::Start(start))?;
            let mut reader = BufReader::with_capacity(IO_BUFFER, (&mut self.file).take(len));
            meta = Some(rmp_serde::decode::from_read(&mut reader).map_err(invalid)?);
            each(kind, &mut reader)?;
        }
        Ok(meta.expect("a complete section"))
    }
}

pub(super) fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}
