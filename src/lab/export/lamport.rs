//! The Lamport diagram: one vertical line per node, time flowing down, every message an arrow
//! from its sending to its delivery and its answer dashed back.

use svg::Document;
use svg::node::element::{Definitions, Group, Marker, Path as SvgPath, Text, Title};

use super::{Bands, line, page, shade, text};
use crate::lab::message::{MessageView, reply_summary};
use crate::lab::trace::Record;
use crate::observe::{Fate, Rpc};

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

/// Rows: every moment drawn, in order; a time maps to the row of the first moment at or after it.
struct Rows(Vec<f64>);

impl Rows {
    fn y(&self, t: f64) -> f64 {
        let row = self.0.partition_point(|m| *m < t - 0.01);
        TOP + row as f64 * ROW
    }
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

pub(super) fn diagram(
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
    let mut doc = page(width, height)
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
    // Bands first, under everything: nodes down, network cuts, the pause, leader changes.
    let span = |a: f64, b: f64| (rows.y(a).max(TOP), rows.y(b).min(last_y));
    for (node, a, b) in &bands.down {
        let (ya, yb) = span(*a, *b);
        let label = text(x(*node) - 28.0, ya + 10.0, 9, format!("n{node} down"));
        let area = (x(*node) - 30.0, ya, 60.0, yb - ya);
        doc = doc.add(shade("down", area, "#cccccc", label));
    }
    for (a, b, what) in &bands.cut {
        let (ya, yb) = span(*a, *b);
        let label = text(LEFT + 2.0, ya + 10.0, 9, what.clone());
        doc = doc.add(shade(
            "cut",
            (LEFT, ya, width - LEFT, yb - ya),
            "#ffe0b8",
            label,
        ));
    }
    for (a, b) in &bands.paused {
        let (ya, yb) = span(*a, *b);
        let label = text(LEFT - 12.0, ya + 8.0, 8, "paused")
            .set("text-anchor", "end")
            .set("fill", "#6a8fd8");
        doc = doc.add(shade(
            "paused",
            (LEFT - 8.0, ya, 4.0, yb - ya),
            "#6a8fd8",
            label,
        ));
    }
    for (t, id, term) in &bands.leaders {
        let y = rows.y(*t);
        doc = doc.add(
            Group::new()
                .set("class", "leader")
                .add(line(LEFT, y, width, y, "#2a9d2a").set("stroke-dasharray", "6 3"))
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
            .add(line(x(node), TOP - 10.0, x(node), last_y, "black"))
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
        let mut request = line(from_x, y1, end_x, end_y, colour)
            .set("class", "request")
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
                    line(to_x, ys, from_x, yr, colour)
                        .set("class", "reply")
                        .set("stroke-dasharray", "4 2")
                        .set("marker-end", "url(#head)"),
                )
                .add(label_at(to_x, from_x, ys, reply_summary(reply)).set("fill", "#555555"));
        }
        doc = doc.add(group);
    }
    doc
}
