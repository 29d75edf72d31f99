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
use svg::node::element::{
    Circle, Definitions, Group, Line, Marker, Path as SvgPath, Rectangle as Rect, Text, Title,
};

use super::fold::{Input, Scene};
use super::message::{MessageView, reply_summary};
use super::safety::Outcome;
use super::trace::Record;
use crate::observe::{Fate, Rpc};
use crate::raft::status::Role;

/// Past this many messages in the window, heartbeats are left out of the diagram (and it says so).
const BUSY: usize = 600;
const ROW: f64 = 14.0;
const COLUMN: f64 = 240.0;
const LEFT: f64 = 80.0;
const TOP: f64 = 60.0;

/// One message as drawn: times in ms since the lab started.
struct Arrow {
    view: MessageView,
    sent: f64,
    delivered: f64,
    /// The answer's (sending, arrival), when there was one.
    answer: Option<(f64, f64)>,
}

/// Intervals over the window: a node down, the network cut, a leader (with its term).
#[derive(Default)]
struct Bands {
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
    write(&lamport, &lamport_diagram(records, nodes, &bands, from, to))?;
    write(&series, &timeseries(records, nodes, &bands, from, to))?;
    Ok(vec![lamport, series])
}

fn arrows(records: &[Record], from: f64, to: f64) -> (Vec<Arrow>, usize) {
    let mut arrows = Vec::new();
    let mut seen = 0;
    for record in records {
        let Record::Message { t, event } = record else {
            continue;
        };
        let at = *t as f64;
        let (sent, delivered, answer) = match event.legs {
            Some(l) => {
                let sent = at - l.reported_us as f64 / 1000.0;
                let answered = l.answered_us.map(|a| (sent + a as f64 / 1000.0, at));
                (sent, sent + l.delivered_us as f64 / 1000.0, answered)
            }
            None => (at, at, None),
        };
        if sent < from || sent > to {
            continue;
        }
        seen += 1;
        arrows.push(Arrow {
            view: MessageView::new(seen as u64, *t, event.clone()),
            sent,
            delivered,
            answer: matches!(event.fate, Fate::Answered { .. })
                .then_some(answer)
                .flatten(),
        });
    }
    let total = arrows.len();
    if total > BUSY {
        arrows.retain(|a| a.view.kind != Rpc::Heartbeat);
    }
    (arrows, total)
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

/// Rows: every moment drawn, in order; a time maps to the row of the first moment at or after it.
struct Rows(Vec<f64>);

impl Rows {
    fn y(&self, t: f64) -> f64 {
        let row = self.0.partition_point(|m| *m < t - 0.01);
        TOP + row as f64 * ROW
    }
}

fn text(x: f64, y: f64, size: u32, content: impl Into<String>) -> Text {
    Text::new(content)
        .set("x", x)
        .set("y", y)
        .set("font-size", size)
        .set("font-family", "DejaVu Sans Mono, monospace")
}

/// A label at the start (`x`, `y`) of an arrow towards `towards`: on the arrow's side of its node.
fn label_at(x: f64, towards: f64, y: f64, content: String) -> Text {
    let (dx, anchor) = if towards >= x {
        (6.0, "start")
    } else {
        (-6.0, "end")
    };
    text(x + dx, y - 2.0, 8, content).set("text-anchor", anchor)
}

fn lamport_diagram(
    records: &[Record],
    nodes: usize,
    bands: &Bands,
    from: f64,
    to: f64,
) -> Document {
    let (arrows, total) = arrows(records, from, to);
    let mut moments: Vec<f64> = Vec::new();
    for a in &arrows {
        moments.extend([a.sent, a.delivered]);
        if let Some((s, r)) = a.answer {
            moments.extend([s, r]);
        }
    }
    moments.extend(bands.leaders.iter().map(|(t, ..)| *t));
    moments.sort_by(f64::total_cmp);
    moments.dedup_by(|a, b| (*a - *b).abs() < 0.01);
    let rows = Rows(moments.clone());
    let height = TOP + (moments.len() + 2) as f64 * ROW + 20.0;
    let width = LEFT + nodes as f64 * COLUMN + 40.0;
    let x = |node: u64| LEFT + 40.0 + node as f64 * COLUMN;
    let heartbeats = if total > arrows.len() {
        format!(
            "; {} heartbeats left out (narrow --from/--to to see them)",
            total - arrows.len()
        )
    } else {
        String::new()
    };
    let mut doc = Document::new()
        .set("width", width)
        .set("height", height)
        .set("viewBox", (0, 0, width, height))
        .add(
            Rect::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "white"),
        )
        .add(
            Definitions::new().add(
                Marker::new()
                    .set("id", "head")
                    .set("markerWidth", 8)
                    .set("markerHeight", 8)
                    .set("refX", 7)
                    .set("refY", 3)
                    .set("orient", "auto")
                    .add(
                        SvgPath::new()
                            .set("d", "M0,0 L7,3 L0,6 z")
                            .set("fill", "context-stroke"),
                    ),
            ),
        )
        .add(text(
            10.0,
            20.0,
            14,
            format!(
                "raftkv lab: messages {:.3}s–{:.3}s ({} drawn{heartbeats})",
                from / 1000.0,
                to.min(moments.last().copied().unwrap_or(to)) / 1000.0,
                arrows.len()
            ),
        ));
    let last_y = height - 20.0;
    // Bands first, under everything: nodes down, network cuts, leader changes.
    for (node, a, b) in &bands.down {
        let (ya, yb) = (rows.y(*a).max(TOP), rows.y(*b).min(last_y));
        doc = doc.add(
            Group::new()
                .set("class", "down")
                .add(
                    Rect::new()
                        .set("x", x(*node) - 30.0)
                        .set("y", ya)
                        .set("width", 60)
                        .set("height", (yb - ya).max(2.0))
                        .set("fill", "#dddddd"),
                )
                .add(text(x(*node) - 28.0, ya + 10.0, 9, format!("n{node} down"))),
        );
    }
    for (a, b, what) in &bands.cut {
        let (ya, yb) = (rows.y(*a).max(TOP), rows.y(*b).min(last_y));
        doc = doc.add(
            Group::new()
                .set("class", "cut")
                .add(
                    Rect::new()
                        .set("x", LEFT)
                        .set("y", ya)
                        .set("width", width - LEFT)
                        .set("height", (yb - ya).max(2.0))
                        .set("fill", "#ffe9cc")
                        .set("opacity", 0.6),
                )
                .add(text(LEFT + 2.0, ya + 10.0, 9, what.clone())),
        );
    }
    for (a, b) in &bands.paused {
        let (ya, yb) = (rows.y(*a).max(TOP), rows.y(*b).min(last_y));
        doc = doc.add(
            Group::new()
                .set("class", "paused")
                .add(
                    Rect::new()
                        .set("x", LEFT - 8.0)
                        .set("y", ya)
                        .set("width", 4)
                        .set("height", (yb - ya).max(2.0))
                        .set("fill", "#6a8fd8"),
                )
                .add(
                    text(LEFT - 12.0, ya + 8.0, 8, "paused")
                        .set("text-anchor", "end")
                        .set("fill", "#6a8fd8"),
                ),
        );
    }
    for (t, id, term) in &bands.leaders {
        let y = rows.y(*t);
        doc = doc.add(
            Group::new()
                .set("class", "leader")
                .add(
                    Line::new()
                        .set("x1", LEFT)
                        .set("x2", width)
                        .set("y1", y)
                        .set("y2", y)
                        .set("stroke", "#2a9d2a")
                        .set("stroke-dasharray", "6 3"),
                )
                .add(
                    // At the right edge, clear of the message labels by the nodes.
                    text(
                        width - 6.0,
                        y - 3.0,
                        10,
                        format!("n{id} leader of term {term}"),
                    )
                    .set("text-anchor", "end")
                    .set("fill", "#2a9d2a"),
                ),
        );
    }
    for node in 0..nodes as u64 {
        doc = doc
            .add(
                Line::new()
                    .set("x1", x(node))
                    .set("x2", x(node))
                    .set("y1", TOP - 10.0)
                    .set("y2", last_y)
                    .set("stroke", "black"),
            )
            .add(text(x(node) - 8.0, TOP - 16.0, 14, format!("n{node}")));
    }
    // Time labels down the left margin, when the clock moved since the last label.
    let mut labelled = f64::MIN;
    for m in &moments {
        if *m - labelled >= 50.0 {
            doc = doc.add(
                text(4.0, rows.y(*m) + 3.0, 9, format!("{:.3}s", m / 1000.0))
                    .set("fill", "#666666"),
            );
            labelled = *m;
        }
    }
    for a in &arrows {
        let (from_x, to_x) = (x(a.view.from), x(a.view.to));
        let (y1, y2) = (
            rows.y(a.sent),
            rows.y(a.delivered).max(rows.y(a.sent) + ROW * 0.5),
        );
        let colour = match (a.view.kind, &a.view.fate) {
            (_, Fate::Dropped) => "#cc2222",
            (_, Fate::Failed) => "#999999",
            (Rpc::Vote | Rpc::PreVote, _) => "#c77d00",
            (Rpc::Heartbeat, _) => "#9aa7c7",
            _ => "#1f4fa8",
        };
        let fate = match a.view.fate {
            Fate::Dropped => "dropped",
            Fate::Failed => "failed",
            Fate::Answered { .. } => "delivered",
        };
        let label = format!("{:?} t{} {}", a.view.kind, a.view.term, a.view.what());
        let mut group = Group::new()
            .set("class", "message")
            .set("data-kind", format!("{:?}", a.view.kind))
            .set("data-from", a.view.from)
            .set("data-to", a.view.to)
            .set("data-fate", fate)
            .add(Title::new(a.view.summary()));
        let (end_x, end_y) = match a.view.fate {
            // A dropped message never arrives: it ends half-way, crossed out.
            Fate::Dropped => ((from_x + to_x) / 2.0, (y1 + y2) / 2.0),
            _ => (to_x, y2),
        };
        let mut request = Line::new()
            .set("class", "request")
            .set("x1", from_x)
            .set("y1", y1)
            .set("x2", end_x)
            .set("y2", end_y)
            .set("stroke", colour)
            .set("stroke-width", 1.2);
        if a.view.fate != Fate::Dropped {
            request = request.set("marker-end", "url(#head)");
        }
        group = group.add(request);
        if a.view.fate == Fate::Dropped {
            group = group.add(text(end_x - 4.0, end_y + 4.0, 12, "✕").set("fill", colour));
        }
        // Labels sit at the start of their arrow, where no other arrow starts on that row.
        group = group.add(label_at(from_x, end_x, y1, label).set("fill", colour));
        if let (Some((s, r)), Some(reply)) = (a.answer, a.view.reply.as_ref()) {
            let (ys, yr) = (
                rows.y(s).max(y2),
                rows.y(r).max(rows.y(s).max(y2) + ROW * 0.5),
            );
            group = group
                .add(
                    Line::new()
                        .set("class", "reply")
                        .set("x1", to_x)
                        .set("y1", ys)
                        .set("x2", from_x)
                        .set("y2", yr)
                        .set("stroke", colour)
                        .set("stroke-dasharray", "4 2")
                        .set("marker-end", "url(#head)"),
                )
                .add(label_at(to_x, from_x, ys, reply_summary(reply)).set("fill", "#555555"));
        }
        doc = doc.add(group);
    }
    doc
}

/// The smallest 1, 2 or 5 times a power of ten at or above `v`: an axis' top that reads well.
fn nice(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(v)
}

fn timeseries(records: &[Record], nodes: usize, bands: &Bands, from: f64, to: f64) -> Document {
    // Client requests: sent at, latency, outcome.
    let mut sent: BTreeMap<u64, f64> = BTreeMap::new();
    let mut points: Vec<(f64, f64, bool)> = Vec::new();
    for record in records {
        if let Record::Client { t, input } = record {
            match input {
                Input::Request { id, .. } => {
                    sent.insert(*id, *t as f64);
                }
                Input::Response { id, outcome, .. } => {
                    if let Some(s) = sent.get(id).filter(|s| **s >= from && **s <= to) {
                        points.push((*s, *t as f64 - s, matches!(outcome, Outcome::Ok { .. })));
                    }
                }
                _ => {}
            }
        }
    }
    let end = to
        .min(records.last().map_or(to, |r| r.t() as f64))
        .max(from + 1.0);
    let (w, h, left, top) = (1000.0, 400.0, 70.0, 50.0);
    let max_latency = nice(points.iter().map(|p| p.1).fold(10.0, f64::max) * 1.05);
    let px = |t: f64| left + (t - from) / (end - from) * w;
    let py = |ms: f64| top + h - ms / max_latency * h;
    let mut doc = Document::new()
        .set("width", w + left + 30.0)
        .set("height", h + top + 80.0)
        .set("viewBox", (0, 0, w + left + 30.0, h + top + 80.0))
        .add(Rect::new().set("width", "100%").set("height", "100%").set("fill", "white"))
        .add(text(10.0, 22.0, 14, format!(
            "raftkv lab: client requests {:.1}s–{:.1}s, {} answered: green committed, red unknown",
            from / 1000.0, end / 1000.0, points.len()
        )))
        .add(text(left, h + top + 70.0, 11,
            "shaded: grey a node down (one lane per node), orange links cut, blue paused"));
    let lane = h / nodes as f64;
    for (node, a, b) in &bands.down {
        let (xa, xb) = (px(a.max(from)), px(b.min(end)));
        doc = doc.add(
            Group::new()
                .set("class", "down")
                .add(
                    Rect::new()
                        .set("x", xa)
                        .set("y", top + *node as f64 * lane)
                        .set("width", (xb - xa).max(1.0))
                        .set("height", lane)
                        .set("fill", "#dddddd"),
                )
                .add(text(
                    xa + 2.0,
                    top + *node as f64 * lane + 12.0,
                    10,
                    format!("n{node} down"),
                )),
        );
    }
    for (a, b, what) in &bands.cut {
        let (xa, xb) = (px(a.max(from)), px(b.min(end)));
        doc = doc.add(
            Group::new()
                .set("class", "cut")
                .add(
                    Rect::new()
                        .set("x", xa)
                        .set("y", top)
                        .set("width", (xb - xa).max(1.0))
                        .set("height", h)
                        .set("fill", "#ffd08a")
                        .set("opacity", 0.35),
                )
                .add(text(xa + 2.0, top + h - 4.0, 10, what.clone())),
        );
    }
    for (a, b) in &bands.paused {
        let (xa, xb) = (px(a.max(from)), px(b.min(end)));
        doc = doc.add(
            Group::new()
                .set("class", "paused")
                .add(
                    Rect::new()
                        .set("x", xa)
                        .set("y", top)
                        .set("width", (xb - xa).max(1.0))
                        .set("height", h)
                        .set("fill", "#dbe5fa")
                        .set("opacity", 0.6),
                )
                .add(text(
                    xa + 2.0,
                    top + 12.0,
                    10,
                    "paused (messages stepped by hand)",
                )),
        );
    }
    // Axes: time along the bottom, latency up the left.
    doc = doc
        .add(
            Line::new()
                .set("x1", left)
                .set("x2", left + w)
                .set("y1", top + h)
                .set("y2", top + h)
                .set("stroke", "black"),
        )
        .add(
            Line::new()
                .set("x1", left)
                .set("x2", left)
                .set("y1", top)
                .set("y2", top + h)
                .set("stroke", "black"),
        )
        .add(text(
            left + w / 2.0 - 60.0,
            top + h + 40.0,
            12,
            "time since the lab started (s)",
        ))
        .add(text(4.0, top - 10.0, 12, "latency (ms)"));
    for i in 0..=10 {
        let t = from + (end - from) * i as f64 / 10.0;
        let ms = max_latency * i as f64 / 10.0;
        doc = doc
            .add(text(
                px(t) - 12.0,
                top + h + 18.0,
                10,
                format!("{:.1}", t / 1000.0),
            ))
            .add(text(left - 50.0, py(ms) + 4.0, 10, format!("{ms:.0}")));
    }
    for (t, latency, ok) in points {
        doc = doc.add(
            Circle::new()
                .set("class", if ok { "ok" } else { "unknown" })
                .set("cx", px(t))
                .set("cy", py(latency))
                .set("r", 3)
                .set("fill", if ok { "#2a9d2a" } else { "#cc2222" }),
        );
    }
    doc
}
