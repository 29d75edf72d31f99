//! Shared test harness: an N-node cluster of real `Node`s in this process, on loopback with
//! ephemeral ports, each with its own temp data dir; an HTTP client; condition waits that are
//! bounded in time and count. Nothing here sleeps for a fixed time to "let things settle".
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use raftkv::config::{self, NodeConfig, Timing};
use raftkv::node::Node;
use raftkv::raft::status::Status;
use tempfile::TempDir;
use tokio::time::Instant;

/// Test timing: the defaults; a 2-core CI machine running several clusters must not see false
/// elections.
pub fn timing() -> Timing {
    Timing::default()
}

/// Polls `probe` every 25 ms until it returns `Some`, for at most `timeout`; panics naming `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `n` free loopback ports, held open together so they are distinct, then released.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.sort();
    ports
}

pub struct TestCluster {
    pub dir: TempDir,
    pub configs: Vec<NodeConfig>,
    pub nodes: Vec<Option<Node>>,
    pub http: reqwest::Client,
}

impl TestCluster {
    /// Starts `n` nodes; `tweak` may adjust each node's config (timing, timeouts, snapshots).
    pub async fn start(n: usize, tweak: impl Fn(&mut NodeConfig)) -> TestCluster {
        let dir = TempDir::new().unwrap();
        let raft_ports = free_ports(n);
        let http_ports = free_ports(n);
        let raft_addrs: Vec<SocketAddr> = raft_ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let mut configs = Vec::new();
        for i in 0..n {
            let peers: Vec<SocketAddr> = raft_addrs
                .iter()
                .copied()
                .filter(|a| *a != raft_addrs[i])
                .collect();
            let (id, members) = config::assign_ids(raft_addrs[i], &peers).unwrap();
            assert_eq!(id, i as u64, "ports are sorted, so index = id");
            let mut config = NodeConfig {
                id,
                raft_addr: raft_addrs[i],
                http_addr: SocketAddr::from(([127, 0, 0, 1], http_ports[i])),
                members,
                data_dir: dir.path().join(format!("node{i}")),
                timing: timing(),
                request_timeout: Duration::from_secs(5),
                snapshot_every: raftkv::raft::SNAPSHOT_EVERY,
            };
            tweak(&mut config);
            configs.push(config);
        }
        let mut cluster = TestCluster {
            dir,
            configs,
            nodes: (0..n).map(|_| None).collect(),
            http: reqwest::Client::new(),
        };
        for i in 0..n {
            cluster.restart(i).await;
        }
        cluster
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        self.nodes[i] = Some(
            Node::start(self.configs[i].clone())
                .await
                .expect("node starts"),
        );
    }

    pub async fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.configs[i].http_addr)
    }

    pub async fn status(&self, i: usize) -> Option<Status> {
        let resp = self
            .http
            .get(self.url(i, "/admin/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Waits until the live nodes agree on one leader that has a quorum: the node in role leader
    /// with the highest term (an isolated old leader may still call itself leader: pitfall 17).
    pub async fn leader(&self, timeout: Duration) -> (usize, u64) {
        wait_until(
            timeout,
            "the live nodes agree on a leader with a quorum",
            || async {
                let mut statuses = Vec::new();
                for i in self.live() {
                    statuses.push(self.status(i).await?);
                }
                let leader = statuses
                    .iter()
                    .filter(|s| s.role == "leader")
                    .max_by_key(|s| s.term)?;
                let agreed = statuses
                    .iter()
                    .all(|s| s.leader_id == Some(leader.id) && s.term == leader.term);
                (agreed && leader.has_quorum).then_some((leader.id as usize, leader.term))
            },
        )
        .await
    }

    pub async fn post(&self, i: usize, key: &str, body: &str) -> (u16, String) {
        let resp = self
            .http
            .post(self.url(i, &format!("/keys/{key}")))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .expect("HTTP request");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    }

    pub async fn append(&self, i: usize, key: &str, value: &str) -> u16 {
        self.post(
            i,
            key,
            &serde_json::json!({"type": "APPEND", "value": value}).to_string(),
        )
        .await
        .0
    }

    pub async fn put(&self, i: usize, key: &str, values: &[&str]) -> u16 {
        self.post(
            i,
            key,
            &serde_json::json!({"type": "PUT", "value": values}).to_string(),
        )
        .await
        .0
    }

    /// GET with the given query string; returns (status, list if 200).
    pub async fn get(&self, i: usize, key: &str, query: &str) -> (u16, Option<Vec<String>>) {
        let resp = self
            .http
            .get(self.url(i, &format!("/keys/{key}{query}")))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .expect("HTTP request");
        let code = resp.status().as_u16();
        (
            code,
            if code == 200 {
                resp.json().await.ok()
            } else {
                None
            },
        )
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i).await;
        }
    }
}
