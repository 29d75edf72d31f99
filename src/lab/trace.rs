//! The lab's flight recorder's trace: its format, and the reader that loads it back for
//! `raftkv lab --replay` (the writer is `lab::recorder`).
//!
//! **Format** (version [`VERSION`]): JSON lines, one [`Record`] per line, an object with one key
//! naming the record's type (`{"message": {"t": 1234, "event": {…}}}`; externally tagged, because
//! serde cannot read integer map keys, such as a leader's followers, inside a `"type"`-tagged
//! enum). A
//! trace is a run of *segments*, files named `trace.NNNNNN.jsonl` in the lab's data directory; each
//! segment opens with a `header` line and a `keyframe` (the lab's whole memory, scene and key/value
//! contents), so any segment replays on its own and segments concatenated in order (`cat
//! trace.*.jsonl > run.jsonl`) are one trace. After the keyframe come, in the order the engine
//! saw them, `message` (a transport event), `statuses_changed` (at a refresh, the moment the lab
//! published a state: for each node whose status changed, the status fields that changed, or
//! null when it stopped answering; the keyframe's memory holds the statuses it starts from),
//! `note' (a timeline line), `command` (a lab command),
//! `scene` (what the lab did to the cluster, when it changed), `kv` (changed keys), `lost`
//! (records the writer could not keep up with) and further keyframes every [`KEYFRAME_MS`].
//! `t` is milliseconds since the lab started.
//!
//! **Bounded**: when a segment passes its share of the cap, the next keyframe starts a new one
//! and the oldest segments beyond the cap are deleted.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::command::LabCommand;
use super::fold::{Input, Memory, Scene};
use crate::observe::Event;
use crate::raft::status::Status;

pub const FORMAT: &str = "raftkv-trace";
pub const VERSION: u32 = 1;
/// A keyframe at least this often, so a replay never folds more than this to reach a moment.
pub const KEYFRAME_MS: u64 = 10_000;
/// The default cap on a lab's trace (`--trace-mib`).
pub const DEFAULT_CAP_MIB: u64 = 64;

/// One line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Header {
        format: String,
        version: u32,
        /// Wall-clock time the lab started (Unix milliseconds).
        started_unix_ms: u64,
        segment: u64,
    },
    Keyframe {
        t: u64,
        memory: Box<Memory>,
        scene: Scene,
        kv: Vec<(String, Vec<String>)>,
    },
    Message {
        t: u64,
        event: Event,
    },
    /// Every node's status at a refresh. Only in memory: on disk it is `StatusesChanged`.
    Statuses {
        t: u64,
        statuses: Vec<Option<Status>>,
    },
    /// The status fields that changed since the previous refresh, by node (null: no answer).
    StatusesChanged {
        t: u64,
        changed: Vec<(usize, serde_json::Value)>,
    },
    Note {
        t: u64,
        text: String,
    },
    /// A client request sent or answered (`Input::Request`, `Input::Response`).
    Client {
        t: u64,
        input: Input,
    },
    Command {
        t: u64,
        command: LabCommand,
    },
    Scene {
        t: u64,
        scene: Scene,
    },
    /// Keys whose contents changed: the new list, or only what was appended to the old one.
    Kv {
        t: u64,
        changes: Vec<KvChange>,
    },
    Lost {
        t: u64,
        records: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvChange {
    Set { key: String, value: Vec<String> },
    Append { key: String, values: Vec<String> },
    Delete { key: String },
}

impl Record {
    /// Milliseconds since the lab started (0 for a header).
    pub fn t(&self) -> u64 {
        match self {
            Record::Header { .. } => 0,
            Record::Keyframe { t, .. }
            | Record::Message { t, .. }
            | Record::Statuses { t, .. }
            | Record::StatusesChanged { t, .. }
            | Record::Note { t, .. }
            | Record::Client { t, .. }
            | Record::Command { t, .. }
            | Record::Scene { t, .. }
            | Record::Kv { t, .. }
            | Record::Lost { t, .. } => *t,
        }
    }

    /// The memory's input this record stands for, if any.
    pub fn input(&self) -> Option<Input> {
        match self {
            Record::Message { event, .. } => Some(Input::Message(event.clone())),
            Record::Statuses { statuses, .. } => Some(Input::Statuses(statuses.clone())),
            Record::Note { text, .. } => Some(Input::Note(text.clone())),
            Record::Client { input, .. } => Some(input.clone()),
            Record::Lost { records, .. } => Some(Input::Note(format!(
                "(the recorder fell behind here: {records} records not kept)"
            ))),
            _ => None,
        }
    }
}

/// Applies recorded changes to key/value contents.
pub fn apply_kv(kv: &mut BTreeMap<String, Vec<String>>, changes: &[KvChange]) {
    for change in changes {
        match change {
            KvChange::Set { key, value } => {
                kv.insert(key.clone(), value.clone());
            }
            KvChange::Append { key, values } => kv
                .entry(key.clone())
                .or_default()
                .extend(values.iter().cloned()),
            KvChange::Delete { key } => {
                kv.remove(key);
            }
        }
    }
}

/// What changed from `before` to `now` (both sorted by key).
pub fn diff_kv(
    before: &BTreeMap<String, Vec<String>>,
    now: &[(String, Vec<String>)],
) -> Vec<KvChange> {
    let mut changes = Vec::new();
    for (key, value) in now {
        match before.get(key) {
            Some(old) if old == value => {}
            Some(old) if value.starts_with(old) => changes.push(KvChange::Append {
                key: key.clone(),
                values: value[old.len()..].to_vec(),
            }),
            _ => changes.push(KvChange::Set {
                key: key.clone(),
                value: value.clone(),
            }),
        }
    }
    let present: std::collections::BTreeSet<&String> = now.iter().map(|(k, _)| k).collect();
    for key in before.keys().filter(|k| !present.contains(k)) {
        changes.push(KvChange::Delete { key: key.clone() });
    }
    changes
}

/// Nodes' statuses as JSON objects: a writer's last written, a reader's last read.
#[derive(Default)]
pub(super) struct Statuses(Vec<serde_json::Value>);

impl Statuses {
    pub(super) fn of(statuses: &[Option<Status>]) -> Statuses {
        let json = |s: &Option<Status>| serde_json::to_value(s).unwrap_or_default();
        Statuses(statuses.iter().map(json).collect())
    }

    /// What changed to reach `now`, remembering `now`: by node, the changed fields (the whole
    /// status when the node starts answering), or null when it stops.
    pub(super) fn change(&mut self, now: &[Option<Status>]) -> Vec<(usize, serde_json::Value)> {
        let now = Statuses::of(now);
        let mut changed = Vec::new();
        for (id, new) in now.0.iter().enumerate() {
            let old = self.0.get(id).unwrap_or(&serde_json::Value::Null);
            match (old.as_object(), new.as_object()) {
                _ if old == new => {}
                (Some(old), Some(new)) => {
                    let fields: serde_json::Map<_, _> = new
                        .iter()
                        .filter(|(k, v)| old.get(*k) != Some(*v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    changed.push((id, serde_json::Value::Object(fields)));
                }
                _ => changed.push((id, new.clone())),
            }
        }
        self.0 = now.0;
        changed
    }

    /// Applies a change as [`Statuses::change`] wrote it; the statuses now.
    fn apply(
        &mut self,
        changed: &[(usize, serde_json::Value)],
    ) -> Result<Vec<Option<Status>>, String> {
        for (id, change) in changed {
            if *id >= self.0.len() {
                self.0.resize(*id + 1, serde_json::Value::Null);
            }
            let slot = &mut self.0[*id];
            match (slot.as_object_mut(), change.as_object()) {
                (Some(old), Some(fields)) => {
                    fields.iter().for_each(|(k, v)| {
                        old.insert(k.clone(), v.clone());
                    });
                }
                _ => *slot = change.clone(),
            }
        }
        self.0
            .iter()
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| e.to_string()))
            .collect()
    }
}

/// The trace segments in `dir`, in order.
pub fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trace.") && n.ends_with(".jsonl"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// A trace read back: its records from the first keyframe on, and what was wrong with the files
/// (a cut-short last line after a `kill -9`, damage): the records stop before the first damage.
#[derive(Debug)]
pub struct Loaded {
    pub records: Vec<Record>,
    pub warnings: Vec<String>,
}

/// Reads a trace: one file, or every segment of a directory in order.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let files = if path.is_dir() {
        let found = segments(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if found.is_empty() {
            return Err(format!(
                "{}: no trace.*.jsonl in this directory",
                path.display()
            ));
        }
        found
    } else {
        vec![path.to_path_buf()]
    };
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut statuses = Statuses::default();
    'files: for file in &files {
        let name = file.display();
        let reader = BufReader::new(File::open(file).map_err(|e| format!("{name}: {e}"))?);
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("{name}: {e}"))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if n == 0 {
                check_header(&line).map_err(|e| format!("{name}: {e}"))?;
            }
            let record = serde_json::from_slice::<Record>(&line).map_err(|e| e.to_string());
            let record = match record {
                Ok(Record::StatusesChanged { t, changed }) => statuses
                    .apply(&changed)
                    .map(|statuses| Record::Statuses { t, statuses }),
                Ok(Record::Keyframe {
                    t,
                    memory,
                    scene,
                    kv,
                }) => {
                    statuses = Statuses::of(memory.statuses());
                    Ok(Record::Keyframe {
                        t,
                        memory,
                        scene,
                        kv,
                    })
                }
                other => other,
            };
            match record {
                Ok(Record::Header { .. }) => {}
                // Nothing before the first keyframe can be placed.
                Ok(record) if !records.is_empty() || matches!(record, Record::Keyframe { .. }) => {
                    records.push(record)
                }
                Ok(_) => {}
                Err(e) => {
                    warnings.push(format!(
                        "{name} line {}: cut short or damaged ({e}); replaying up to there",
                        n + 1
                    ));
                    break 'files;
                }
            }
        }
    }
    if records.is_empty() {
        return Err(format!(
            "{}: the trace holds no keyframe, so there is nothing to replay",
            path.display()
        ));
    }
    Ok(Loaded { records, warnings })
}

/// A file's first line must be a header of this format and version.
fn check_header(line: &[u8]) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Line {
        header: Head,
    }
    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: Option<u32>,
    }
    let not_a_trace = || "not a raftkv trace (its first line is not a trace header)".to_string();
    let head = serde_json::from_slice::<Line>(line)
        .map_err(|_| not_a_trace())?
        .header;
    if head.format != FORMAT {
        return Err(not_a_trace());
    }
    match head.version {
        Some(VERSION) => Ok(()),
        Some(v) => Err(format!(
            "trace format version {v}; this raftkv reads version {VERSION} only"
        )),
        None => Err("trace header without a version".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_changes_carry_only_what_was_appended_and_apply_back_to_the_same_contents() {
        let before: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["1".to_string()]),
            ("gone".to_string(), vec![]),
            ("p".to_string(), vec!["x".to_string()]),
        ]
        .into();
        let now = vec![
            ("a".to_string(), vec!["1".to_string(), "2".to_string()]),
            ("new".to_string(), vec!["n".to_string()]),
            ("p".to_string(), vec!["y".to_string()]),
        ];
        let changes = diff_kv(&before, &now);
        assert!(changes.contains(&KvChange::Append {
            key: "a".into(),
            values: vec!["2".into()]
        }));
        assert!(changes.contains(&KvChange::Delete { key: "gone".into() }));
        let mut after = before.clone();
        apply_kv(&mut after, &changes);
        assert_eq!(after.into_iter().collect::<Vec<_>>(), now);
    }

    #[test]
    fn a_file_that_is_not_a_trace_or_of_another_version_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.jsonl");
        fs::write(&other, "{\"hello\":1}\n").unwrap();
        assert!(load(&other).unwrap_err().contains("not a raftkv trace"));
        let newer = dir.path().join("newer.jsonl");
        fs::write(
            &newer,
            "{\"header\":{\"format\":\"raftkv-trace\",\"version\":9,\"started_unix_ms\":0,\"segment\":0}}\n",
        )
        .unwrap();
        assert!(load(&newer).unwrap_err().contains("version 9"));
        assert!(load(dir.path()).unwrap_err().contains("no trace"));
    }
}
