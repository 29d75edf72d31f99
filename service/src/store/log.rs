//! The Raft log and vote, on raft-log (a chunked write-ahead log written for Raft by openraft's
//! author). Implements openraft's `RaftLogStorage` and `RaftLogReader`; every clone shares one
//! `RaftLog` behind an async RwLock (reads concurrent, writes exclusive).

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{LogIdOptionExt, OptionalSend, RaftTypeConfig};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{Config, RaftLog};
use tokio::sync::{RwLock, oneshot};

use super::codec::{Pack, PackVote};

/// raft-log keeps recent payloads in memory; bound that cache so an idle node stays small while a
/// lagging follower can still be fed from memory (the default is 1 GiB).
const LOG_CACHE_BYTES: usize = 32 << 20;
const LOG_CACHE_ITEMS: usize = 20_000;

/// Records per WAL chunk file. Purging the log behind a snapshot deletes only whole closed chunks,
/// and opening the log reads every chunk that is left; with raft-log's default (about a million
/// records per chunk) a node that had taken 500,000 writes re-read all of them on every restart
/// (restart-to-serving grew to 1.8 s in bench/compare.sh). With 16,384 a restart reads at most a
/// few chunks beyond the 5,000 entries between snapshots.
const WAL_CHUNK_RECORDS: usize = 16_384;

/// Bytes per WAL chunk file, at most. raft-log's default is 1 GiB, and a purge frees only whole
/// closed chunks: with big values the log could not shrink below a gigabyte however often it was
/// compacted (`node::compact`). 64 MiB chunks let it shrink in 64 MiB steps.
const WAL_CHUNK_BYTES: usize = 64 << 20;

/// How long the flush worker waits for more appends before it fsyncs (group commit). raft-log's
/// default of 1 ms is paid by every write on the leader and again on each follower: one client
/// at a time got 480 writes/s; 200 µs gave 820-840/s. 0 then cost 20 % at 64 clients in extra
/// fsyncs, while every write was its own entry. Since the leader batches writes into one entry
/// per round (`raft::batch`) there is nothing left to wait for: alternating runs at 1 / 16 / 64
/// connections gave 797, 833 → 940, 1,034; 6,181, 6,062 → 6,873, 6,763; 14,586, 15,591, 14,005
/// → 16,656, 17,251, 15,204 writes/s (256: 21,625, 21,652 → 20,482, 26,700).
const WAL_GROUP_COMMIT_WAIT: std::time::Duration = std::time::Duration::ZERO;

/// At most this many payload bytes in one read for replication, so in one AppendEntries (always
/// at least one entry). openraft bounds a request only by count (`max_payload_entries`, 300):
/// with batched 1 MiB entries a lagging follower was sent ~300 MiB at once, over the frame limit
/// and far past the RPC deadline, and the leader retried the same request forever (a follower
/// never caught up). 4 MiB keeps one request to tens of milliseconds on a local disk and loopback
/// while still carrying hundreds of small entries.
pub const MAX_APPEND_BYTES: u64 = 4 << 20;

/// Read buffer for opening chunks; raft-log's default is 64 MiB, allocated on every start.
const WAL_READ_BUFFER_BYTES: usize = 1 << 20;

/// The raft-log type parameters for openraft type config `C`.
pub struct WalTypes<C>(PhantomData<C>);

impl<C> Debug for WalTypes<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalTypes")
    }
}
impl<C> Default for WalTypes<C> {
    fn default() -> Self {
        WalTypes(PhantomData)
    }
}
impl<C> Clone for WalTypes<C> {
    fn clone(&self) -> Self {
        WalTypes(PhantomData)
    }
}
impl<C> PartialEq for WalTypes<C> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<C> Eq for WalTypes<C> {}

impl<C: RaftTypeConfig> raft_log::Types for WalTypes<C>
where
    EntryOf<C>: Clone,
{
    type LogId = Pack<LogIdOf<C>>;
    type LogPayload = Pack<EntryOf<C>>;
    type Vote = PackVote<C>;
    type Callback = Flushed<C>;
    type UserData = Pack<()>;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index()
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.encoded_len()
    }
}

/// Who is waiting for a flush: openraft (after `append`, with the last index appended and where
/// to record it once durable) or `save_vote` itself. Each counts as a write in flight while it
/// lives (see [`LogStore::writes_in_flight`]).
pub enum Flushed<C: RaftTypeConfig> {
    Append(IOFlushed<C>, Option<u64>, Arc<AtomicU64>, InFlight),
    Vote(oneshot::Sender<io::Result<()>>, InFlight),
}

impl<C: RaftTypeConfig> raft_log::Callback for Flushed<C> {
    fn send(self, res: io::Result<()>) {
        match self {
            Flushed::Append(flushed, last, durable, _in_flight) => {
                if let (Ok(()), Some(last)) = (&res, last) {
                    durable.fetch_max(last + 1, Ordering::Relaxed);
                }
                flushed.io_completed(res)
            }
            Flushed::Vote(tx, _in_flight) => {
                let _ = tx.send(res);
            }
        }
    }
}

/// One write handed to the flush worker and not yet fsynced: counted up when made, down when
/// dropped, which is after its waiter was told (or when the worker dropped it unanswered).
pub struct InFlight(Arc<AtomicU64>);

impl InFlight {
    fn new(count: &Arc<AtomicU64>) -> InFlight {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The log store of one node.
pub struct LogStore<C: RaftTypeConfig>
where
    EntryOf<C>: Clone,
{
    wal: Arc<RwLock<RaftLog<WalTypes<C>>>>,
    first_write: Arc<Mutex<Option<FirstWriteHook>>>,
    /// One past the highest log index known fsynced (0: none since the log was opened).
    durable: Arc<AtomicU64>,
    /// Votes and appends handed to the flush worker and not yet fsynced.
    in_flight: Arc<AtomicU64>,
}

/// Runs before the first vote or entry of a pristine log is written (see
/// [`LogStore::before_first_write`]).
pub type FirstWriteHook = Box<dyn Fn() -> io::Result<()> + Send + Sync>;

impl<C: RaftTypeConfig> Clone for LogStore<C>
where
    EntryOf<C>: Clone,
{
    fn clone(&self) -> Self {
        LogStore {
            wal: self.wal.clone(),
            first_write: self.first_write.clone(),
            durable: self.durable.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

impl<C: RaftTypeConfig> LogStore<C>
where
    EntryOf<C>: Clone,
{
    /// Opens (creating if needed) the log in `dir`. Fails with `WouldBlock` while another handle,
    /// in this or another process, still holds the directory lock.
    pub fn open(dir: &Path) -> io::Result<Self> {
        // raft-log creates its lock file but not the directory itself.
        std::fs::create_dir_all(dir)?;
        let mut config = Config::new(dir.display());
        config.log_cache_capacity = Some(LOG_CACHE_BYTES);
        config.log_cache_max_items = Some(LOG_CACHE_ITEMS);
        config.wal.chunk_max_records = Some(WAL_CHUNK_RECORDS);
        config.wal.chunk_max_size = Some(WAL_CHUNK_BYTES);
        config.wal.read_buffer_size = Some(WAL_READ_BUFFER_BYTES);
        config.wal.flush_batch_wait = Some(WAL_GROUP_COMMIT_WAIT);
        let wal = RaftLog::open(Arc::new(config))?;
        Ok(LogStore {
            wal: Arc::new(RwLock::new(wal)),
            first_write: Default::default(),
            durable: Default::default(),
            in_flight: Default::default(),
        })
    }

    /// Bytes the log takes on disk (every chunk file, purged entries included until their chunk
    /// is removed).
    pub async fn disk_bytes(&self) -> u64 {
        self.wal.read().await.on_disk_size()
    }

    /// The highest log index this log has fsynced since it was opened (entries appended since
    /// and not yet flushed are not counted; an entry removed later by a truncation may be).
    pub fn durable_index(&self) -> Option<u64> {
        self.durable.load(Ordering::Relaxed).checked_sub(1)
    }

    /// Votes and batches of entries written and not yet fsynced. While one is, the node owes a
    /// reaction that nothing outside it can see yet: a candidate sends its vote requests only
    /// after its own vote is on disk, a leader counts itself towards a commit only after its
    /// entries are. A stepped cluster waits for 0 before it calls a step done.
    pub fn writes_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// fsyncs of the log file since it was opened. The flush worker does one per batch of
    /// appends queued while the previous one ran (group commit), so under load this is well
    /// below the number of entries.
    pub async fn fsyncs(&self) -> u64 {
        self.wal.read().await.stat().flush_metrics.sync_batch_count
    }

    /// Registers `hook` to run, and succeed, before this log's first vote or entry is written.
    /// The node records "this id has Raft state" there, so a later start with the log gone is
    /// refused, with no window in which a vote is on disk but the record is not.
    pub fn before_first_write(&self, hook: FirstWriteHook) {
        *self.first_write.lock().expect("hook lock") = Some(hook);
    }

    /// Runs the first-write hook if one is pending; it stays pending until it succeeds. Blocking
    /// I/O under a std mutex, but at most once per node lifetime.
    fn first_write(&self) -> io::Result<()> {
        let mut pending = self.first_write.lock().expect("hook lock");
        if let Some(hook) = pending.as_ref() {
            hook()?;
            *pending = None;
        }
        Ok(())
    }

    /// True when neither a vote nor any log entry was ever stored: a pristine node.
    pub async fn is_pristine(&self) -> bool {
        let wal = self.wal.read().await;
        let state = wal.log_state();
        state.vote().is_none() && state.last().is_none() && state.purged().is_none()
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    EntryOf<C>: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<EntryOf<C>>> {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => u64::MAX,
        };
        let wal = self.wal.read().await;
        wal.read(start, end)
            .map(|res| res.map(|(_, payload)| payload.0))
            .collect()
    }

    /// Entries from `start` until `end` or until [`MAX_APPEND_BYTES`] is reached, whichever comes
    /// first; never empty for a non-empty range (openraft's contract).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> io::Result<Vec<EntryOf<C>>> {
        let wal = self.wal.read().await;
        let mut entries = Vec::new();
        let mut bytes = 0;
        for res in wal.read(start, end) {
            let (_, payload) = res?;
            bytes += payload.encoded_len();
            if bytes > MAX_APPEND_BYTES && !entries.is_empty() {
                break;
            }
            entries.push(payload.0);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> io::Result<Option<VoteOf<C>>> {
        Ok(self
            .wal
            .read()
            .await
            .log_state()
            .vote()
            .map(|v| v.0.clone()))
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    EntryOf<C>: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<C>> {
        let wal = self.wal.read().await;
        let state = wal.log_state();
        // raft-log moves `last` up to `purged` when a purge empties the log, so `last` is never
        // behind `purged`, as openraft requires.
        Ok(LogState {
            last_purged_log_id: state.purged().map(|id| id.0.clone()),
            last_log_id: state.last().map(|id| id.0.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> io::Result<()> {
        // Counted from the start: the first vote of a node's life also writes the identity
        // record (blocking, fsynced), which held a founding campaign back just as long.
        let in_flight = InFlight::new(&self.in_flight);
        // ORDERING: the identity record goes first, so a vote never exists without it.
        self.first_write()?;
        let (tx, rx) = oneshot::channel();
        {
            let mut wal = self.wal.write().await;
            wal.save_vote(PackVote(vote.clone()))?;
            wal.flush(true, Some(Flushed::Vote(tx, in_flight)))?;
        }
        // FSYNC: the vote decides elections; it must be on disk before we return (and so before
        // the vote response leaves this node). The lock is released first so readers are not
        // blocked for the duration of the fsync.
        rx.await
            .map_err(|_| io::Error::other("raft-log flush worker stopped"))?
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> io::Result<()> {
        let Some(committed) = committed else {
            return Ok(());
        };
        // No fsync: the committed id only shortens replay after a restart; if it is lost the node
        // re-learns it from the leader. It reaches disk with the next flushed append.
        self.wal.write().await.commit(Pack(committed))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogIdOf<C>>> {
        Ok(self
            .wal
            .read()
            .await
            .log_state()
            .committed()
            .map(|id| id.0.clone()))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> io::Result<()>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
    {
        // Counted from the start, as in `save_vote` (the identity record may be written here).
        let in_flight = InFlight::new(&self.in_flight);
        // ORDERING: as in `save_vote`, the identity record precedes the first entry.
        self.first_write()?;
        let mut last = None;
        let entries = entries.into_iter().map(|e| {
            last = Some(e.log_id().index());
            (Pack(e.log_id()), Pack(e))
        });
        let mut wal = self.wal.write().await;
        wal.append(entries)?;
        // FSYNC: the entries are readable now (openraft requires that on return); openraft learns
        // they are durable only when the flush worker has fsynced them and calls `callback`. Only
        // then may this node count them towards a commit or acknowledge them to a leader. Appends
        // queued while a flush runs share the next fsync (group commit).
        let durable = self.durable.clone();
        wal.flush(
            true,
            Some(Flushed::Append(callback, last, durable, in_flight)),
        )?;
        Ok(())
    }

    async fn truncate_after(&mut self, last_kept: Option<LogIdOf<C>>) -> io::Result<()> {
        let first_removed = last_kept.next_index();
        let mut wal = self.wal.write().await;
        let last = wal.log_state().last().map(|id| id.0.clone());
        if first_removed >= last.next_index() {
            return Ok(());
        }
        // No fsync: if the truncation record is lost in a crash, the conflicting entries come
        // back and the leader makes us truncate them again; they were never committed.
        wal.truncate(first_removed)?;
        Ok(())
    }

    async fn purge(&mut self, upto: LogIdOf<C>) -> io::Result<()> {
        let mut wal = self.wal.write().await;
        let purged = wal.log_state().purged().map(|id| id.0.clone());
        if upto.index() < purged.next_index() {
            return Ok(());
        }
        wal.purge(Pack(upto))?;
        // openraft only purges what a durable snapshot covers, so losing this record is harmless.
        // raft-log unlinks purged chunk files after a synced flush; ask for one, without waiting.
        wal.flush(true, None)?;
        Ok(())
    }
}
