//! N nodes in one process on loopback, each a real [`Node`] with its own Raft port, HTTP port and
//! data directory. The lab drives nodes only through this type; tests use it too. It owns the
//! nodes: one place decides which node runs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, NodeConfig, Timing};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::raft::status::Status;

/// The lab's fixed ports: node i listens for Raft on 127.0.0.1:(6000+i), HTTP on 8080+i.
pub const RAFT_BASE_PORT: u16 = 6000;
pub const HTTP_BASE_PORT: u16 = 8080;

/// Configs for `n` nodes on loopback with the given ports (ascending Raft ports give node i id i).
pub fn loopback_configs(
    raft_ports: &[u16],
    http_ports: &[u16],
    data_dir: &Path,
    timing: Timing,
) -> Vec<NodeConfig> {
    let raft_addrs: Vec<SocketAddr> = raft_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    raft_addrs
        .iter()
        .zip(http_ports)
        .map(|(addr, http)| {
            let peers: Vec<SocketAddr> = raft_addrs.iter().copied().filter(|a| a != addr).collect();
            let (id, members) = config::assign_ids(*addr, &peers).expect("distinct loopback ports");
            NodeConfig {
                id,
                raft_addr: *addr,
                http_addr: SocketAddr::from(([127, 0, 0, 1], *http)),
                members,
                data_dir: data_dir.join(format!("node{id}")),
                timing,
                request_timeout: Duration::from_secs(5),
                snapshot_every: crate::raft::SNAPSHOT_EVERY,
            }
        })
        .collect()
}

/// The lab's layout: `n` nodes on the fixed ports.
pub fn lab_configs(n: usize, data_dir: &Path, timing: Timing) -> Vec<NodeConfig> {
    let raft: Vec<u16> = (0..n as u16).map(|i| RAFT_BASE_PORT + i).collect();
    let http: Vec<u16> = (0..n as u16).map(|i| HTTP_BASE_PORT + i).collect();
    loopback_configs(&raft, &http, data_dir, timing)
}

pub struct Cluster {
    configs: Vec<NodeConfig>,
    /// `Some` while the node runs. Index = node id.
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    /// Starts every node. Fails (stopping those already started) if any node cannot start.
    pub async fn start(configs: Vec<NodeConfig>) -> Result<Cluster> {
        let mut cluster = Cluster {
            nodes: configs.iter().map(|_| None).collect(),
            configs,
        };
        for id in 0..cluster.configs.len() {
            if let Err(e) = cluster.restart(id).await {
                cluster.shutdown().await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    pub fn config(&self, id: usize) -> &NodeConfig {
        &self.configs[id]
    }

    pub fn is_up(&self, id: usize) -> bool {
        self.nodes.get(id).is_some_and(Option::is_some)
    }

    /// Crash-stops node `id`: its ports close and its Raft stops. Its data stays on disk.
    pub async fn kill(&mut self, id: usize) {
        if let Some(node) = self.nodes.get_mut(id).and_then(Option::take) {
            node.shutdown().await;
        }
    }

    /// Starts node `id` again from its data directory (no-op if it runs).
    pub async fn restart(&mut self, id: usize) -> Result<()> {
        let slot = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| Error::InvalidInput(format!("no node {id}")))?;
        if slot.is_none() {
            *slot = Some(Node::start(self.configs[id].clone()).await?);
        }
        Ok(())
    }

    /// Status of every node (None for a node that is down).
    pub async fn statuses(&self) -> Vec<Option<Status>> {
        let mut all = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            all.push(match node {
                Some(node) => Some(node.status().await),
                None => None,
            });
        }
        all
    }

    pub async fn shutdown(&mut self) {
        for id in 0..self.nodes.len() {
            self.kill(id).await;
        }
    }
}
