//! Jepsen-style checking of what clients saw. [`history`] records operations with their invoke and
//! completion times and outcomes; [`list_append`] checks an append/read history against the
//! promises raftkv makes; [`nemesis`] produces such histories against a live cluster under faults,
//! while [`election`] watches the wire for two leaders in one term.

pub mod election;
pub mod history;
pub mod list_append;
pub mod nemesis;
pub mod register;

use std::time::Duration;

use crate::cluster::Cluster;

/// Every node's HTTP base URL, and the clients' timeout: a little above the nodes' request
/// timeout, so a node's own 503 (which says whether anything was appended) arrives first.
fn endpoints(cluster: &Cluster) -> (Vec<String>, Duration) {
    let http = (0..cluster.len())
        .map(|i| format!("http://{}", cluster.config(i).http_addr))
        .collect();
    (
        http,
        cluster.config(0).request_timeout + Duration::from_secs(2),
    )
}
