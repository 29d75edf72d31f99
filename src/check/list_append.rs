//! Checks a list-append history, in the spirit of Jepsen's Elle list-append workload. Each key's
//! value is a list; clients append unique values and read whole lists. raftkv promises:
//! 1. **no lost write**: every acknowledged append is in the key's final value;
//! 2. **no duplicate**: no value appears twice in any read or final value (retries are applied once);
//! 3. **one order**: all reads of a key, and its final value, are prefixes of one another;
//! 4. **no stale read**: a read invoked after an append was acknowledged contains that append;
//! 5. **no phantom**: an append that explicitly failed never appears, and nothing appears that was
//!    never appended.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use super::history::{Kind, Op, Outcome};

/// What went wrong, naming values of type `V` (as the history does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly<V = String> {
    LostWrite {
        key: String,
        value: V,
    },
    Duplicate {
        key: String,
        value: V,
        in_read: Option<usize>,
    },
    IncompatibleOrder {
        key: String,
        a: Vec<V>,
        b: Vec<V>,
    },
    StaleRead {
        key: String,
        value: V,
        read: usize,
    },
    Phantom {
        key: String,
        value: V,
    },
}

impl<V> Anomaly<V> {
    /// The same anomaly with every value passed through `f` (ids back to text, say).
    pub fn map<W>(self, f: impl Fn(V) -> W) -> Anomaly<W> {
        match self {
            Anomaly::LostWrite { key, value } => Anomaly::LostWrite {
                key,
                value: f(value),
            },
            Anomaly::Duplicate {
                key,
                value,
                in_read,
            } => Anomaly::Duplicate {
                key,
                value: f(value),
                in_read,
            },
            Anomaly::IncompatibleOrder { key, a, b } => Anomaly::IncompatibleOrder {
                key,
                a: a.into_iter().map(&f).collect(),
                b: b.into_iter().map(&f).collect(),
            },
            Anomaly::StaleRead { key, value, read } => Anomaly::StaleRead {
                key,
                value: f(value),
                read,
            },
            Anomaly::Phantom { key, value } => Anomaly::Phantom {
                key,
                value: f(value),
            },
        }
    }
}

impl<V: fmt::Display + fmt::Debug> fmt::Display for Anomaly<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostWrite { key, value } => write!(
                f,
                "lost write: {key} += {value} was acknowledged but is not in the final value"
            ),
            Anomaly::Duplicate {
                key,
                value,
                in_read,
            } => write!(
                f,
                "duplicate: {value} appears twice in {key} (read #{in_read:?}; None = final value)"
            ),
            Anomaly::IncompatibleOrder { key, a, b } => write!(
                f,
                "incompatible order on {key}: {a:?} and {b:?} are not prefixes of one another"
            ),
            Anomaly::StaleRead { key, value, read } => write!(
                f,
                "stale read: read #{read} of {key} began after {value} was acknowledged but lacks it"
            ),
            Anomaly::Phantom { key, value } => write!(
                f,
                "phantom: {value} appears in {key} but its append failed or never happened"
            ),
        }
    }
}

/// Summary counts plus every anomaly found.
#[derive(Debug)]
pub struct Report<V = String> {
    pub ops: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    pub anomalies: Vec<Anomaly<V>>,
}

impl<V> Report<V> {
    /// The same report with every value in its anomalies passed through `f`.
    pub fn map<W>(self, f: impl Fn(V) -> W) -> Report<W> {
        Report {
            ops: self.ops,
            ok: self.ok,
            failed: self.failed,
            unknown: self.unknown,
            anomalies: self.anomalies.into_iter().map(|a| a.map(&f)).collect(),
        }
    }
}

impl<V: fmt::Display + fmt::Debug> fmt::Display for Report<V> {
    /// One summary line, then one `ANOMALY` line per anomaly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ops {} / ok {} / failed {} / unknown {} / anomalies {}",
            self.ops,
            self.ok,
            self.failed,
            self.unknown,
            self.anomalies.len()
        )?;
        for a in &self.anomalies {
            write!(f, "\nANOMALY {a}")?;
        }
        Ok(())
    }
}

/// One list seen for a key: by read number (index in the history), or None for the final value.
type Observation<'h, V> = (Option<usize>, &'h Vec<V>);

fn is_prefix<V: Eq>(a: &[V], b: &[V]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Checks `history` given each key's final value (read after the cluster healed). Values may be
/// anything comparable: their text, or ids of [`super::history::Values`].
pub fn check<V: Clone + Eq + Hash + Ord>(
    history: &[Op<V>],
    finals: &BTreeMap<String, Vec<V>>,
) -> Report<V> {
    let mut report = Report {
        ops: history.len(),
        ok: 0,
        failed: 0,
        unknown: 0,
        anomalies: Vec::new(),
    };
    for op in history {
        match op.outcome {
            Outcome::Ok(_) => report.ok += 1,
            Outcome::Failed => report.failed += 1,
            Outcome::Unknown => report.unknown += 1,
        }
    }
    // Appends by (key, value): the op index.
    let mut appends: HashMap<(&str, &V), &Op<V>> = HashMap::new();
    for op in history {
        if let Kind::Append { key, value } = &op.kind {
            appends.insert((key, value), op);
        }
    }
    let empty = Vec::new();
    // Every list observed per key: (Some(read index) or None for the final value, list).
    let mut observed: BTreeMap<&str, Vec<Observation<V>>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if let (Kind::Read { key }, Outcome::Ok(list)) = (&op.kind, &op.outcome) {
            observed
                .entry(key)
                .or_default()
                .push((Some(i), list.as_ref().unwrap_or(&empty)));
        }
    }
    for (key, list) in finals {
        observed.entry(key).or_default().push((None, list));
    }

    for (key, lists) in &observed {
        for (read, list) in lists {
            let mut seen = HashSet::new();
            for value in list.iter() {
                if !seen.insert(value) {
                    report.anomalies.push(Anomaly::Duplicate {
                        key: key.to_string(),
                        value: value.clone(),
                        in_read: *read,
                    });
                }
            }
        }
        // One order: sort by length; each must be a prefix of the next longer.
        let mut by_len: Vec<&Vec<V>> = lists.iter().map(|(_, l)| *l).collect();
        by_len.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        by_len.dedup();
        for pair in by_len.windows(2) {
            if !is_prefix(pair[0], pair[1]) {
                report.anomalies.push(Anomaly::IncompatibleOrder {
                    key: key.to_string(),
                    a: pair[0].clone(),
                    b: pair[1].clone(),
                });
            }
        }
        // Phantoms: anything seen must have been appended and not have failed.
        let mut phantoms = HashSet::new();
        for (_, list) in lists {
            for value in list.iter() {
                let appended = appends.get(&(*key, value));
                if appended.is_none_or(|op| op.outcome == Outcome::Failed) && phantoms.insert(value)
                {
                    report.anomalies.push(Anomaly::Phantom {
                        key: key.to_string(),
                        value: value.clone(),
                    });
                }
            }
        }
    }

    for op in history {
        let Kind::Append { key, value } = &op.kind else {
            continue;
        };
        if !matches!(op.outcome, Outcome::Ok(_)) {
            continue;
        }
        let final_list = finals.get(key).unwrap_or(&empty);
        if !final_list.contains(value) {
            report.anomalies.push(Anomaly::LostWrite {
                key: key.clone(),
                value: value.clone(),
            });
        }
        // The successful reads of this key, in history order (not the whole history: with every
        // append against every op this loop took minutes on a 160,000-op soak).
        let reads = observed.get(key.as_str()).into_iter().flatten();
        for (i, list) in reads.filter_map(|(read, list)| Some(((*read)?, list))) {
            if history[i].invoked_ms > op.completed_ms && !list.contains(value) {
                report.anomalies.push(Anomaly::StaleRead {
                    key: key.clone(),
                    value: value.clone(),
                    read: i,
                });
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(client: usize, key: &str, value: &str, t: (u64, u64), outcome: Outcome) -> Op {
        Op {
            client,
            kind: Kind::Append {
                key: key.into(),
                value: value.into(),
            },
            invoked_ms: t.0,
            completed_ms: t.1,
            outcome,
        }
    }

    fn read(client: usize, key: &str, t: (u64, u64), list: &[&str]) -> Op {
        let list = list.iter().map(|s| s.to_string()).collect();
        Op {
            client,
            kind: Kind::Read { key: key.into() },
            invoked_ms: t.0,
            completed_ms: t.1,
            outcome: Outcome::Ok(Some(list)),
        }
    }

    fn finals(key: &str, list: &[&str]) -> BTreeMap<String, Vec<String>> {
        [(
            key.to_string(),
            list.iter().map(|s| s.to_string()).collect(),
        )]
        .into()
    }

    fn ok() -> Outcome {
        Outcome::Ok(None)
    }

    #[test]
    fn a_correct_history_has_no_anomaly() {
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            read(1, "k", (11, 12), &["a"]),
            append(1, "k", "b", (13, 20), Outcome::Unknown),
            append(2, "k", "c", (14, 21), Outcome::Failed),
            read(0, "k", (15, 16), &["a"]),
        ];
        let r = check(&h, &finals("k", &["a", "b"]));
        assert_eq!(r.anomalies, vec![]);
        assert_eq!((r.ops, r.ok, r.failed, r.unknown), (5, 3, 1, 1));
    }

    #[test]
    fn an_acknowledged_append_missing_at_the_end_is_a_lost_write() {
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            append(0, "k", "b", (11, 20), ok()),
        ];
        let r = check(&h, &finals("k", &["a"]));
        assert_eq!(
            r.anomalies,
            vec![Anomaly::LostWrite {
                key: "k".into(),
                value: "b".into()
            }]
        );
    }

    #[test]
    fn a_value_twice_is_a_duplicate() {
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            read(1, "k", (11, 12), &["a", "a"]),
        ];
        let r = check(&h, &finals("k", &["a"]));
        assert_eq!(
            r.anomalies,
            vec![Anomaly::Duplicate {
                key: "k".into(),
                value: "a".into(),
                in_read: Some(1)
            }]
        );
    }

    #[test]
    fn reads_that_disagree_on_order_are_incompatible() {
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            append(1, "k", "b", (0, 10), ok()),
            read(2, "k", (11, 12), &["a", "b"]),
            read(3, "k", (11, 12), &["b", "a"]),
        ];
        let r = check(&h, &finals("k", &["a", "b"]));
        assert!(
            matches!(r.anomalies.as_slice(), [Anomaly::IncompatibleOrder { .. }]),
            "{:?}",
            r.anomalies
        );
    }

    #[test]
    fn a_read_begun_after_an_acknowledged_append_that_lacks_it_is_stale() {
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            read(1, "k", (11, 12), &[]),
        ];
        let r = check(&h, &finals("k", &["a"]));
        assert_eq!(
            r.anomalies,
            vec![Anomaly::StaleRead {
                key: "k".into(),
                value: "a".into(),
                read: 1
            }]
        );
        // Concurrent with the append (invoked before it completed): not stale.
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            read(1, "k", (5, 12), &[]),
        ];
        assert_eq!(check(&h, &finals("k", &["a"])).anomalies, vec![]);
    }

    #[test]
    fn a_failed_or_never_made_append_that_shows_up_is_a_phantom() {
        let h = vec![append(0, "k", "a", (0, 10), Outcome::Failed)];
        let r = check(&h, &finals("k", &["a", "z"]));
        assert_eq!(
            r.anomalies,
            vec![
                Anomaly::Phantom {
                    key: "k".into(),
                    value: "a".into()
                },
                Anomaly::Phantom {
                    key: "k".into(),
                    value: "z".into()
                }
            ]
        );
    }

    #[test]
    fn checking_value_ids_finds_what_checking_their_text_finds() {
        // Every kind of anomaly at once, checked as text and as ids of `Values` (what the
        // nemesis records), then mapped back.
        let h = vec![
            append(0, "k", "a", (0, 10), ok()),
            append(1, "k", "b", (0, 10), ok()),
            append(2, "k", "c", (0, 10), Outcome::Failed),
            read(3, "k", (11, 12), &["a", "b"]),
            read(4, "k", (11, 12), &["b", "a", "a"]),
            read(5, "k", (13, 14), &["c"]),
            append(6, "j", "d", (0, 10), ok()),
        ];
        let text_finals = finals("k", &["a", "x"]);
        let by_text = check(&h, &text_finals);

        let mut values = super::super::history::Values::default();
        let ids: Vec<Op<u32>> = h.into_iter().map(|op| op.map(|v| values.id(v))).collect();
        let id_finals = text_finals
            .into_iter()
            .map(|(k, list)| (k, list.into_iter().map(|v| values.id(v)).collect()))
            .collect();
        let texts = values.texts();
        let by_id = check(&ids, &id_finals).map(|id| texts[id as usize].to_string());

        let sorted = |r: &Report| {
            let mut lines: Vec<String> = r.anomalies.iter().map(|a| format!("{a:?}")).collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&by_id), sorted(&by_text));
        let kinds: std::collections::BTreeSet<&str> = by_text
            .anomalies
            .iter()
            .map(|a| match a {
                Anomaly::LostWrite { .. } => "lost write",
                Anomaly::Duplicate { .. } => "duplicate",
                Anomaly::IncompatibleOrder { .. } => "incompatible order",
                Anomaly::StaleRead { .. } => "stale read",
                Anomaly::Phantom { .. } => "phantom",
            })
            .collect();
        assert_eq!(
            kinds.len(),
            5,
            "every kind of anomaly is in the history: {kinds:?}"
        );
    }
}
