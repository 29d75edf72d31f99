//! raftkv's replicated node as a library: everything a running node needs and nothing else (the
//! lab, the load generator and the checkers are in the root package, `raftkv`, which re-exports
//! these modules under the same names).
//!
//! Modules, lowest layer first. A module uses only modules listed before it (`.ci/layers.py`
//! checks every `crate::` path against this list):
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

pub mod config;
pub mod error;
pub mod clock;
pub mod observe;
pub mod metrics;
pub mod kv;
pub mod store;
pub mod raft;
pub mod net;
pub mod api;
pub mod client;
pub mod node;
pub mod cluster;
