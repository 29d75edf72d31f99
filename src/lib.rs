//! raftkv: a fault-tolerant key/value service on Raft (openraft), with a terminal lab.
//!
//! Modules, lowest layer first (a module uses only modules above it in this list):
//! - [`config`], [`error`]: what a node is told at start; the one error type.
//! - [`kv`]: the replicated data and its deterministic `apply`; no Raft, no IO.
//! - [`store`]: durable Raft log, vote and snapshot files (generic over openraft's type config).
//! - [`raft`]: the openraft type config, the state machine over `kv`, leader-side outcomes.
//! - [`metrics`]: the node's Prometheus counters and gauges (filled by net, api and node).
//! - [`net`]: the TCP transport between nodes (Raft RPCs and forwarded client requests).
//! - [`api`]: the HTTP API; the only place where an [`error::Error`] becomes a status code.
//! - [`node`]: one replicated node, wired together; used by per-process mode and the lab alike.
//! - [`cluster`]: N nodes in one process on loopback (the lab's engine, also used by tests).
//! - [`bench`]: the load generator, an HTTP client of a running cluster.
//! - [`client`]: the command-line client, an HTTP client of any node; knows nothing inside.

pub mod api;
pub mod bench;
pub mod check;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error;
pub mod kv;
pub mod lab;
pub mod metrics;
pub mod net;
pub mod node;
pub mod observe;
pub mod raft;
pub mod scenario;
pub mod store;
