//! Free space on the disk that holds a node's data. A write that reached the log on a full disk
//! would fail inside Raft, where openraft treats any storage error as fatal and stops the node
//! until it is restarted. So the leader stops taking new writes while the data directory's disk
//! has less than a reserve free: clients get 503 with the reason at once, Raft keeps running
//! (heartbeats, reads, elections write nothing or a few bytes), and writes are taken again as soon
//! as space is freed. The reserve also has to hold a snapshot (the whole state) and a WAL chunk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often free space is read (one statvfs).
const EVERY: Duration = Duration::from_millis(200);

pub struct Space {
    dir: PathBuf,
    reserve: u64,
    /// Bytes free at the last look; `u64::MAX` until the first, or if the system cannot say.
    free: AtomicU64,
}

impl Space {
    pub fn new(dir: PathBuf, reserve: u64) -> Space {
        let space = Space {
            dir,
            reserve,
            free: AtomicU64::new(u64::MAX),
        };
        space.refresh();
        space
    }

    fn refresh(&self) {
        // A disk whose free space cannot be read is not refused: the fsync path still reports
        // real failures.
        let free = fs2::available_space(&self.dir).unwrap_or(u64::MAX);
        self.free.store(free, Ordering::Relaxed);
    }

    /// Why new writes are refused, if they are.
    pub fn low(&self) -> Option<String> {
        let free = self.free.load(Ordering::Relaxed);
        (free < self.reserve).then(|| {
            format!(
                "the disk of {} has {} MiB free, below the {} MiB this node keeps in reserve \
                 (--disk-reserve); writes are taken again once space is freed",
                self.dir.display(),
                free >> 20,
                self.reserve >> 20
            )
        })
    }

    /// Re-reads free space every 200 ms, for as long as the node runs.
    pub async fn watch(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(EVERY).await;
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.refresh()).await;
        }
    }
}
