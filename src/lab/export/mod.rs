//! Pictures of a recorded run, as SVG (`raftkv lab --replay TRACE --export DIR`):
//! - `lamport.svg`, a Lamport diagram: one vertical line per node, time flowing down; each
//!   message an arrow from its sending to its delivery, its answer a dashed arrow back, labelled
//!   with kind and fields; dropped messages end in a red ✕; nodes down are greyed, network cuts
//!   and leader changes drawn as bands across. Rows follow the order of events (not a linear
//!   clock) so that messages a millisecond apart stay readable; the left margin gives the time.
//! - `timeseries.svg`: each client request the lab sent, its latency against the time it was
//!   sent, green when committed, red when its outcome is unknown; kills and cuts shaded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use svg::Document;
use svg::node::element::{Group, Line, Rectangle, Text};

use super::fold::Scene;
use super::trace::Record;
use crate::raft::status::Role;

mod lamport;
mod timeseries;

/// Intervals over the window: a node down, the network cut, a leader (with its term).
#[derive(Default)]
pub(super) struct Bands {
    /// The lab paused: messages held, delivered by hand.
    paused: Vec<(f64, f64)>,
    down: Vec<(u64, f64, f64)>,
    cut: Vec<(f64, f64, String)>,
    leaders: Vec<(f64, u64, u64)>,
}

/// Writes both pictures into `dir` for the window [from, to] (ms); their paths.
pub fn export(records: &[Record], dir: &Path, from: u64, to: u64) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (from, to) = (from as f64, to as f64);
    let nodes = records.iter().find_map(|r| match r {
        Record::Keyframe { scene, .. } => Some(scene.up.len()),
        _ => None,
    });
    let nodes = nodes.unwrap_or(0).max(1);
    let bands = bands(records, from, to);
    let lamport = dir.join("lamport.svg");
    let series = dir.join("timeseries.svg");
    let write = |path: &Path, doc: &Document| {
        svg::save(path, doc).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        &lamport,
        &lamport::diagram(records, nodes, &bands, from, to),
    )?;
    write(&series, &timeseries::plot(records, nodes, &bands, from, to))?;
    Ok(vec![lamport, series])
}

fn bands(records: &[Record], from: f64, to: f64) -> Bands {
    let mut bands = Bands::default();
    let mut down_since: BTreeMap<u64, f64> = BTreeMap::new();
    let mut cut_since: Option<(f64, BTreeSet<(u64, u64)>)> = None;
    let mut paused_since: Option<f64> = None;
    let mut leader = None;
    let mut scene_at = |scene: &Scene, t: f64, bands: &mut Bands| {
        for (id, up) in scene.up.iter().enumerate() {
            let id = id as u64;
            match (up, down_since.get(&id).copied()) {
                (false, None) => {
                    down_since.insert(id, t);
                }
                (true, Some(since)) => {
                    bands.down.push((id, since, t));
                    down_since.remove(&id);
                }
                _ => {}
            }
        }
        match (scene.paused, paused_since) {
            (true, None) => paused_since = Some(t),
            (false, Some(since)) => {
                bands.paused.push((since, t));
                paused_since = None;
            }
            _ => {}
        }
        let changed = cut_since.as_ref().map(|(_, c)| c) != Some(&scene.cut);
        if changed {
            if let Some((since, cut)) = cut_since.take().filter(|(_, c)| !c.is_empty()) {
                bands.cut.push((since, t, describe_cut(&cut)));
            }
            cut_since = Some((t, scene.cut.clone()));
        }
    };
    for record in records {
        let t = record.t() as f64;
        match record {
            Record::Keyframe { scene, .. } | Record::Scene { scene, .. } => {
                scene_at(scene, t, &mut bands)
            }
            Record::Statuses { statuses, .. } => {
                // The moment a node takes the leader role (before a quorum answered it).
                let leaders = statuses.iter().flatten().filter(|s| s.role == Role::Leader);
                let now = leaders.max_by_key(|s| s.term).map(|s| (s.id, s.term));
                if now != leader
                    && let Some((id, term)) = now
                {
                    bands.leaders.push((t, id, term));
                }
                leader = now;
            }
            _ => {}
        }
    }
    let end = records.last().map_or(to, |r| r.t() as f64);
    for (id, since) in down_since {
        bands.down.push((id, since, end));
    }
    if let Some((since, cut)) = cut_since.filter(|(_, c)| !c.is_empty()) {
        bands.cut.push((since, end, describe_cut(&cut)));
    }
    if let Some(since) = paused_since {
        bands.paused.push((since, end));
    }
    let overlaps = |a: f64, b: f64| b >= from && a <= to;
    bands.down.retain(|(_, a, b)| overlaps(*a, *b));
    bands.cut.retain(|(a, b, _)| overlaps(*a, *b));
    bands.paused.retain(|(a, b)| overlaps(*a, *b));
    bands.leaders.retain(|(t, ..)| overlaps(*t, *t));
    bands
}

fn describe_cut(cut: &BTreeSet<(u64, u64)>) -> String {
    let links: Vec<String> = cut.iter().map(|(a, b)| format!("{a}→{b}")).collect();
    format!("links cut: {}", links.join(" "))
}

fn text(x: f64, y: f64, size: u32, content: impl Into<String>) -> Text {
    Text::new(content)
        .set("x", x)
        .set("y", y)
        .set("font-size", size)
        .set("font-family", "DejaVu Sans Mono, monospace")
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str) -> Line {
    Line::new()
        .set("x1", x1)
        .set("y1", y1)
        .set("x2", x2)
        .set("y2", y2)
        .set("stroke", stroke)
}

/// A shaded band with its label (a node down, a cut, the pause): `(x, y, width, height)`.
fn shade(class: &str, (x, y, w, h): (f64, f64, f64, f64), fill: &str, label: Text) -> Group {
    Group::new()
        .set("class", class)
        .add(
            Rectangle::new()
                .set("x", x)
                .set("y", y)
                .set("width", w.max(1.0))
                .set("height", h.max(1.0))
                .set("fill", fill)
                .set("opacity", 0.6),
        )
        .add(label)
}

/// A white page of the given size.
fn page(width: f64, height: f64) -> Document {
    Document::new()
        .set("width", width)
        .set("height", height)
        .set("viewBox", (0, 0, width, height))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "white"),
        )
}
