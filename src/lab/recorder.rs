//! The flight recorder's writing side: the engine hands it what it learns ([`Recorder`], never
//! waiting), and a thread of its own writes the trace (format: `lab::trace`) in bounded segments.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::command::LabCommand;
use super::fold::{Input, Memory, Scene};
use super::trace::{FORMAT, KEYFRAME_MS, Record, Statuses, VERSION, apply_kv, diff_kv, segments};

/// The cap is split into this many segments; at most one more exists while a new one fills.
const SEGMENTS: u64 = 8;
/// The writer hands its buffer to the OS at least this often: a `kill -9` of the lab then loses
/// at most this much (the OS keeps what it was handed; only a machine crash could lose more, and
/// a trace is not worth an fsync).
const FLUSH: Duration = Duration::from_millis(500);
/// Records waiting for the writer; past this the engine drops records rather than wait.
const QUEUE: usize = 65_536;

/// The engine's side of the recorder: turns what the engine learns into records and hands them
/// to the writer thread without ever waiting for it.
pub struct Recorder {
    /// None only while dropping, so the writer sees the end and finishes.
    tx: Option<SyncSender<Record>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Records dropped since the last one the writer took.
    lost: u64,
    scene: Option<Scene>,
    kv: BTreeMap<String, Vec<String>>,
    last_keyframe: Option<u64>,
    /// Set by the writer when it had to stop (disk full, …); the engine says so once.
    failed: Arc<Mutex<Option<String>>>,
    told: bool,
}

impl Recorder {
    /// Starts recording into `dir`, keeping at most about `cap_bytes` of trace. Segments of an
    /// earlier session in `dir` are moved to `dir/trace-previous/` (replacing what was there).
    pub fn start(dir: &Path, cap_bytes: u64) -> io::Result<Recorder> {
        fs::create_dir_all(dir)?;
        let old = segments(dir)?;
        if !old.is_empty() {
            let previous = dir.join("trace-previous");
            let _ = fs::remove_dir_all(&previous);
            fs::create_dir_all(&previous)?;
            for path in old {
                fs::rename(&path, previous.join(path.file_name().unwrap_or_default()))?;
            }
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let writer = Writer {
            dir: dir.to_path_buf(),
            segment_bytes: (cap_bytes / SEGMENTS).max(64 * 1024),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            file: None,
            segment: 0,
            written: 0,
            statuses: Statuses::default(),
        };
        let slot = failed.clone();
        let writer = std::thread::Builder::new()
            .name("lab-trace".into())
            .spawn(move || {
                if let Err(e) = writer.run(rx) {
                    tracing::warn!("the lab's recorder stopped: {e}");
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
            })?;
        Ok(Recorder {
            tx: Some(tx),
            writer: Some(writer),
            lost: 0,
            scene: None,
            kv: BTreeMap::new(),
            last_keyframe: None,
            failed,
            told: false,
        })
    }

    fn send(&mut self, record: Record) {
        let t = record.t();
        let Some(tx) = &self.tx else { return };
        if self.lost > 0 {
            match tx.try_send(Record::Lost {
                t,
                records: self.lost,
            }) {
                Ok(()) => self.lost = 0,
                Err(_) => {
                    self.lost += 1;
                    return;
                }
            }
        }
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.lost += 1,
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Records an input the engine folds.
    pub fn input(&mut self, t: u64, input: &Input) {
        self.send(match input.clone() {
            Input::Message(event) => Record::Message { t, event },
            Input::Statuses(statuses) => Record::Statuses { t, statuses },
            Input::Note(text) => Record::Note { t, text },
            input @ (Input::Request { .. } | Input::Response { .. }) => Record::Client { t, input },
        });
    }

    pub fn command(&mut self, t: u64, command: &LabCommand) {
        self.send(Record::Command {
            t,
            command: command.clone(),
        });
    }

    /// Records the scene and the contents shown if they changed, and a keyframe when one is due.
    /// Called before the statuses of a refresh are folded, so a keyframe precedes the state it
    /// starts from.
    pub fn frame(&mut self, t: u64, memory: &Memory, scene: &Scene, kv: &[(String, Vec<String>)]) {
        let due = self
            .last_keyframe
            .is_none_or(|last| t.saturating_sub(last) >= KEYFRAME_MS);
        if due {
            self.last_keyframe = Some(t);
            self.scene = Some(scene.clone());
            self.kv = kv.iter().cloned().collect();
            self.send(Record::Keyframe {
                t,
                memory: Box::new(memory.clone()),
                scene: scene.clone(),
                kv: kv.to_vec(),
            });
            return;
        }
        if self.scene.as_ref() != Some(scene) {
            self.scene = Some(scene.clone());
            self.send(Record::Scene {
                t,
                scene: scene.clone(),
            });
        }
        let changes = diff_kv(&self.kv, kv);
        if !changes.is_empty() {
            apply_kv(&mut self.kv, &changes);
            self.send(Record::Kv { t, changes });
        }
    }

    /// Why the writer stopped, the first time it is asked after it did.
    pub fn failure(&mut self) -> Option<String> {
        if self.told {
            return None;
        }
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.told = failed.is_some();
        failed
    }
}

impl Drop for Recorder {
    /// Ends the trace: the writer writes what is queued and flushes, and the lab exits only
    /// then (a `kill -9` skips this; the periodic flush bounds what it loses).
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    started_unix_ms: u64,
    file: Option<BufWriter<File>>,
    segment: u64,
    written: u64,
    /// Each node's status as last written (JSON objects), to write only what changed.
    statuses: Statuses,
}

impl Writer {
    fn run(mut self, rx: Receiver<Record>) -> io::Result<()> {
        let mut flushed = Instant::now();
        loop {
            match rx.recv_timeout(FLUSH) {
                Ok(record) => self.write(&record)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if flushed.elapsed() >= FLUSH {
                if let Some(file) = &mut self.file {
                    file.flush()?;
                }
                flushed = Instant::now();
            }
        }
        if let Some(file) = &mut self.file {
            file.flush()?;
        }
        Ok(())
    }

    fn write(&mut self, record: &Record) -> io::Result<()> {
        // A segment starts only at a keyframe, so every segment replays on its own.
        if matches!(record, Record::Keyframe { .. })
            && (self.file.is_none() || self.written >= self.segment_bytes)
        {
            self.rotate()?;
        }
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let changed;
        let record = match record {
            Record::Keyframe { memory, .. } => {
                self.statuses = Statuses::of(memory.statuses());
                record
            }
            Record::Statuses { t, statuses } => {
                changed = Record::StatusesChanged {
                    t: *t,
                    changed: self.statuses.change(statuses),
                };
                &changed
            }
            other => other,
        };
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        self.written += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
            self.segment += 1;
        }
        let path = self.dir.join(format!("trace.{:06}.jsonl", self.segment));
        let mut file = BufWriter::new(File::create(&path)?);
        let header = Record::Header {
            format: FORMAT.into(),
            version: VERSION,
            started_unix_ms: self.started_unix_ms,
            segment: self.segment,
        };
        let mut line = serde_json::to_vec(&header).map_err(io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
        self.written = line.len() as u64;
        self.file = Some(file);
        // The cap: SEGMENTS full segments and the one filling.
        if self.segment >= SEGMENTS {
            let old = self.segment - SEGMENTS;
            let _ = fs::remove_file(self.dir.join(format!("trace.{old:06}.jsonl")));
        }
        Ok(())
    }
}
