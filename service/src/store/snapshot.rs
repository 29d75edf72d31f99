//! The current snapshot of one node as a single file, `snapshot.bin`, replaced atomically.
//! Written by the state machine after building or installing a snapshot, read back on restart so
//! openraft can restore the state machine and replay only the log after it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use openraft::RaftTypeConfig;
use openraft::type_config::alias::SnapshotMetaOf;
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "snapshot.bin";

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Image<C: RaftTypeConfig> {
    meta: SnapshotMetaOf<C>,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

/// Where a node keeps its snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(SnapshotFile {
            dir: dir.to_path_buf(),
        })
    }

    /// Replaces the stored snapshot. Blocking: call from a blocking thread.
    pub fn save<C: RaftTypeConfig>(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()> {
        let image = Image::<C> {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        let bytes = rmp_serde::to_vec_named(&image).map_err(io::Error::other)?;
        // Durable before openraft learns of it: it may then purge the log this snapshot covers.
        super::write_atomically(&self.dir, FILE_NAME, &bytes)
    }

    /// The stored snapshot, if any. Blocking: call from a blocking thread.
    pub fn load<C: RaftTypeConfig>(&self) -> io::Result<Option<(SnapshotMetaOf<C>, Vec<u8>)>> {
        let bytes = match fs::read(self.dir.join(FILE_NAME)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let image: Image<C> = rmp_serde::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some((image.meta, image.data)))
    }
}
