//! raftkv: a fault-tolerant key/value service on Raft (openraft), with a terminal lab.
//!
//! Two crates. The **service** (`service/`, crate `raftkv-service`): the modules from `config` to
//! `cluster`, all a running node needs, re-exported here under the same names. The **lab and the
//! tooling** (this crate, `src/`): `check`, `scenario`, `lab`, `bench`, and the `raftkv` binary
//! with every subcommand. The service depends on none of the tooling's crates.
//!
//! Modules, lowest layer first. A module uses only modules listed before it (`.ci/layers.py`
//! checks every `crate::` path against this list, and that README's Design table is the same):
//! - [`config`]: what a node is told at start (addresses → ids, timing, cluster secret).
//! - [`error`]: the one error type, by what the caller can do.
//! - [`clock`]: the time Raft runs on: real time, or a lab's clock that slows, freezes and advances.
//! - [`observe`]: what the transport saw, as plain data for observers; never blocks consensus.
//! - [`metrics`]: the node's Prometheus counters and gauges (filled by raft, net, api and node).
//! - [`kv`]: the replicated data and its deterministic `apply`; no Raft, no IO.
//! - [`store`]: durable Raft log, vote and snapshot files (generic over openraft's type config).
//! - [`raft`]: the openraft type config, the state machine over `kv`, write batching, leader-side outcomes.
//! - [`net`]: the TCP transport between nodes (Raft RPCs and forwarded client requests).
//! - [`api`]: the HTTP API; the only place where an [`error::Error`] becomes a status code.
//! - [`client`]: the command-line client, an HTTP client of any node; knows nothing inside.
//! - [`node`]: one replicated node, wired together; used by per-process mode and the lab alike.
//! - [`cluster`]: N nodes in one process on loopback (the lab's engine, also used by tests).
//! - [`harness`]: clusters for tests and scripts: HTTP verbs against any cluster, and `raftkv node` processes.
//! - [`check`]: Jepsen-style histories, their checkers, and the nemesis that makes them.
//! - [`scenario`]: replays the report's questions against real clusters and writes the evidence.
//! - [`lab`]: the dashboard and control API over a `cluster`; never touches openraft.
//! - [`bench`]: the load generator, an HTTP client of a running cluster (ours or etcd).

// The service's modules, in layer order (rustfmt would sort them alphabetically).
#[rustfmt::skip]
pub use raftkv_service::{
    config, error, clock, observe, metrics, kv, store, raft, net, api, client, node, cluster,
};
pub mod harness;
pub mod check;
pub mod scenario;
pub mod lab;
pub mod bench;
