//! One node's Prometheus metrics (`GET /metrics`, OpenMetrics text, via prometheus-client). The
//! parts that count share one [`Metrics`]: the HTTP layer (requests by route and status, latency),
//! the transport (Raft RPCs per peer and kind: sent, failed, received), the change watcher
//! (elections, leader changes). Raft's state (term, role, indexes, replication lag) is not kept
//! here but copied from openraft's own metrics when scraped ([`RaftGauges::set`]), so it cannot
//! drift from the truth.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub peer: u64,
    pub rpc: String,
    /// `sent`, `failed` (no reply: cut, refused, timed out) or `received`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: u64,
}

/// A step of a snapshot's life: `build` (write the state to a file), `send` (to one follower, all
/// chunks), `receive` (all chunks, until the file is whole and fsynced), `install` (decode the
/// file into the state; also on every start that restores from a snapshot).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: String,
}

/// Raft's state as of the last scrape.
#[derive(Default)]
pub struct RaftGauges {
    pub term: Gauge,
    pub role: Family<RoleLabels, Gauge>,
    pub leader: Gauge,
    pub last_log_index: Gauge,
    pub commit_index: Gauge,
    pub last_applied: Gauge,
    pub snapshot_index: Gauge,
    /// Entries held in the log (last index minus purged index).
    pub log_entries: Gauge,
    pub has_quorum: Gauge,
    /// fsyncs of the Raft log file (counted by the log itself, copied here when scraped).
    pub wal_fsyncs: Counter,
    /// On a leader: how many entries each follower is behind its last log index.
    pub replication_lag: Family<PeerLabels, Gauge>,
}

pub struct Metrics {
    registry: Registry,
    /// Serialises scrapes: gauges are set, then encoded.
    scrape: Mutex<()>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub rpcs: Family<RpcLabels, Counter>,
    pub elections: Counter,
    pub leader_changes: Counter,
    /// Log entries this node proposed for client writes, and the writes they carried (their
    /// ratio is the mean batch size: `raft::batch`).
    pub entries_proposed: Counter,
    pub writes_proposed: Counter,
    /// Snapshot steps done, and the duration and size of the last one of each kind.
    pub snapshots: Family<PhaseLabels, Counter>,
    pub snapshot_last_ms: Family<PhaseLabels, Gauge>,
    pub snapshot_last_bytes: Family<PhaseLabels, Gauge>,
    pub raft: RaftGauges,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("raftkv");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            rpcs: Family::default(),
            elections: Counter::default(),
            leader_changes: Counter::default(),
            entries_proposed: Counter::default(),
            writes_proposed: Counter::default(),
            snapshots: Family::default(),
            snapshot_last_ms: Family::default(),
            snapshot_last_bytes: Family::default(),
            raft: RaftGauges::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            m.latency.clone(),
        );
        registry.register(
            "raft_rpcs",
            "Raft RPCs by peer, kind and result (sent, failed, received)",
            m.rpcs.clone(),
        );
        registry.register(
            "raft_elections",
            "Elections this node started",
            m.elections.clone(),
        );
        registry.register(
            "raft_leader_changes",
            "Times this node saw a new leader",
            m.leader_changes.clone(),
        );
        registry.register(
            "raft_proposed_entries",
            "Log entries this node proposed for client writes",
            m.entries_proposed.clone(),
        );
        registry.register(
            "raft_proposed_writes",
            "Client writes carried by those entries (several per entry under load)",
            m.writes_proposed.clone(),
        );
        registry.register(
            "snapshots",
            "Snapshot steps done: build, send (to a follower), receive, install",
            m.snapshots.clone(),
        );
        registry.register(
            "snapshot_last_duration_ms",
            "How long the last snapshot step of each kind took",
            m.snapshot_last_ms.clone(),
        );
        registry.register(
            "snapshot_last_bytes",
            "Size of the snapshot file of the last step of each kind",
            m.snapshot_last_bytes.clone(),
        );
        let g = &m.raft;
        registry.register("raft_term", "Current term", g.term.clone());
        registry.register(
            "raft_role",
            "1 for this node's current role",
            g.role.clone(),
        );
        registry.register(
            "raft_leader",
            "Id of the leader this node knows, -1 if none",
            g.leader.clone(),
        );
        registry.register(
            "raft_last_log_index",
            "Index of the last log entry",
            g.last_log_index.clone(),
        );
        registry.register(
            "raft_commit_index",
            "Highest index known committed",
            g.commit_index.clone(),
        );
        registry.register(
            "raft_last_applied",
            "Highest index applied to the state machine",
            g.last_applied.clone(),
        );
        registry.register(
            "raft_snapshot_index",
            "Last index covered by the snapshot",
            g.snapshot_index.clone(),
        );
        registry.register(
            "raft_log_entries",
            "Entries held in the log (not yet purged behind a snapshot)",
            g.log_entries.clone(),
        );
        registry.register(
            "raft_has_quorum",
            "1 if this node leads and heard from a quorum within its lease",
            g.has_quorum.clone(),
        );
        registry.register(
            "raft_wal_fsyncs",
            "fsyncs of the Raft log file (one per group-committed batch of entries)",
            g.wal_fsyncs.clone(),
        );
        registry.register(
            "raft_replication_lag",
            "On a leader: entries each follower is behind",
            g.replication_lag.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records one snapshot step: how long it took and the snapshot file's size.
    pub fn snapshot_step(&self, phase: &str, took: std::time::Duration, bytes: u64) {
        let labels = PhaseLabels {
            phase: phase.into(),
        };
        self.snapshots.get_or_create(&labels).inc();
        let ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        self.snapshot_last_ms.get_or_create(&labels).set(ms);
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.snapshot_last_bytes.get_or_create(&labels).set(bytes);
        tracing::info!(
            phase,
            ms,
            bytes,
            "snapshot {phase}: {bytes} bytes in {ms} ms"
        );
    }

    /// Counts one RPC to or from `peer`.
    pub fn rpc(&self, peer: u64, rpc: impl std::fmt::Debug, result: &str) {
        self.rpcs
            .get_or_create(&RpcLabels {
                peer,
                rpc: format!("{rpc:?}").to_lowercase(),
                result: result.into(),
            })
            .inc();
    }

    /// Sets the Raft gauges with `set` and encodes everything, as one step.
    pub fn scrape(&self, set: impl FnOnce(&RaftGauges)) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        set(&self.raft);
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("encoding into a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
