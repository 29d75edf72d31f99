//! The timeseries: each client request the lab sent, its latency against the time it was sent,
//! coloured by outcome, over the kills, cuts and pauses of the run.

use std::collections::BTreeMap;

use svg::Document;
use svg::node::element::Circle;

use super::{Bands, line, page, shade, text};
use crate::lab::fold::Input;
use crate::lab::safety::Outcome;
use crate::lab::trace::Record;

/// The width of one character of a 10 px monospace label, for deciding whether it fits.
const LABEL_CHAR_W: f64 = 6.1;

/// The smallest 1, 2 or 5 times a power of ten at or above `v`: an axis' top that reads well.
fn nice(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v)
        .unwrap_or(v)
}

pub(super) fn plot(
    records: &[Record],
    nodes: usize,
    bands: &Bands,
    from: f64,
    to: f64,
) -> Document {
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
    let mut doc = page(w + left + 30.0, h + top + 80.0)
        .add(text(
            10.0,
            22.0,
            14,
            format!(
                "raftkv lab: client requests {:.1}s–{:.1}s, {} answered: green committed, red unknown",
                from / 1000.0,
                end / 1000.0,
                points.len()
            ),
        ))
        .add(text(
            left,
            h + top + 70.0,
            11,
            "shaded: grey a node down (one lane per node), orange links cut, blue paused",
        ));
    let lane = h / nodes as f64;
    let span = |a: f64, b: f64| (px(a.max(from)), px(b.min(end)));
    // A band's label is drawn only where it does not run into the previous label of its row:
    // bands close together (a run with many pauses) would otherwise print over each other.
    let mut free = std::collections::HashMap::<&str, f64>::new();
    let mut label = |row: &'static str, x: f64, y: f64, what: String| {
        let room = free.entry(row).or_insert(f64::MIN);
        let fits = x >= *room;
        if fits {
            *room = x + 2.0 + what.chars().count() as f64 * LABEL_CHAR_W + 8.0;
        }
        text(x + 2.0, y, 10, if fits { what } else { String::new() })
    };
    const ROWS: [&str; 8] = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];
    for (node, a, b) in &bands.down {
        let ((xa, xb), y) = (span(*a, *b), top + *node as f64 * lane);
        let row = ROWS.get(*node as usize).copied().unwrap_or("n8+");
        let label = label(row, xa, y + 12.0, format!("n{node} down"));
        doc = doc.add(shade("down", (xa, y, xb - xa, lane), "#cccccc", label));
    }
    for (a, b, what) in &bands.cut {
        let (xa, xb) = span(*a, *b);
        let label = label("cut", xa, top + h - 4.0, what.clone());
        doc = doc.add(shade("cut", (xa, top, xb - xa, h), "#ffd08a", label));
    }
    for (a, b) in &bands.paused {
        let (xa, xb) = span(*a, *b);
        let what = "paused (messages stepped by hand)".to_string();
        let label = label("paused", xa, top + 12.0, what);
        doc = doc.add(shade("paused", (xa, top, xb - xa, h), "#dbe5fa", label));
    }
    // Axes: time along the bottom, latency up the left.
    doc = doc
        .add(line(left, top + h, left + w, top + h, "black"))
        .add(line(left, top, left, top + h, "black"))
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
        let time = format!("{:.1}", t / 1000.0);
        doc = doc
            .add(text(px(t) - 12.0, top + h + 18.0, 10, time))
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
