//! Shared test harness: an N-node cluster of real `Node`s in this process, on loopback ports
//! below the ephemeral range ([`free_ports`]), each with its own temp data dir; an HTTP client; condition waits that are
//! bounded in time and count. Nothing here sleeps for a fixed time to "let things settle".
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use raftkv::cluster::{Cluster, loopback_configs};
use raftkv::config::{NodeConfig, Timing};
use raftkv::harness::{NodeClient, Nodes};
use raftkv::raft::status::Status;
use tempfile::TempDir;
use tokio::time::Instant;

/// Election Safety, as the wire showed it (`raftkv::check::election`). A watch that saw fewer
/// terms than the test caused elections saw too little to prove anything.
pub fn assert_one_leader_per_term(leaders: &raftkv::check::election::Leaders, min_terms: usize) {
    println!(
        "leaders: {} terms, events missed {}",
        leaders.terms(),
        leaders.missed
    );
    assert!(
        leaders.terms() >= min_terms,
        "only {} terms seen",
        leaders.terms()
    );
    assert_eq!(leaders.violations(), Vec::<String>::new());
}

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

/// `n` ports that were free a moment ago, sorted, for nodes to listen on. They come from below
/// the kernel's ephemeral range: a port taken from that range (binding port 0) can be handed to
/// an outgoing connection of another running cluster before the node binds it, and a test then
/// fails with "address already in use" (seen once in CI, tests/nemesis.rs). Below the range only
/// listeners compete; tests in this process take distinct ports, and the start is spread by pid.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = (0..n).map(|_| free_port_block(1)[0]).collect();
    ports.sort();
    ports
}

/// `n` consecutive ports that were free a moment ago (the lab's layout: node i listens on node
/// 0's port + i). The whole block is reserved from the same counter as [`free_ports`], so two
/// tests running at once never get overlapping blocks (a test that took one port and assumed the
/// next ones free once collided with another test's block in CI, tests/lab.rs).
pub fn free_port_block(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const LOW: u32 = 10_000;
    assert!(
        ephemeral_low > LOW + 1_000,
        "ephemeral ports start at {ephemeral_low}"
    );
    let span = ephemeral_low - LOW;
    let n = n as u32;
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let i = TAKEN.fetch_add(n, Ordering::Relaxed);
        assert!(i + n <= span, "no {n} free ports below {ephemeral_low}");
        let first = (start + i) % span;
        if first + n > span {
            continue; // the block would wrap past the top of the range
        }
        let block: Vec<u16> = (0..n).map(|k| (LOW + first + k) as u16).collect();
        if block
            .iter()
            .all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return block;
        }
    }
}

/// POSTs a JSON body (15 s bound); returns (status, text). Usable from a spawned task.
pub async fn post_json(http: &reqwest::Client, url: String, body: &str) -> (u16, String) {
    let resp = http
        .post(url)
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

/// The value of the first line of a Prometheus scrape that starts with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub struct TestCluster {
    pub dir: TempDir,
    pub cluster: Cluster,
    /// The HTTP client every request of this harness goes through.
    pub http: reqwest::Client,
}

/// A Raft and an HTTP address on loopback for a server to be added.
pub fn fresh_addrs() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let ports = free_ports(2);
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    (addr(ports[0]), addr(ports[1]))
}

impl TestCluster {
    /// Node `i`'s /metrics text.
    pub async fn metrics(&self, i: usize) -> String {
        let response = reqwest::get(self.url(i, "/metrics"))
            .await
            .expect("GET /metrics");
        response.text().await.expect("the metrics text")
    }

    /// Adds a server and waits until it caught up and holds a snapshot.
    pub async fn add_and_catch_up(&mut self, leader: usize) -> usize {
        let (raft_addr, http_addr) = fresh_addrs();
        let new = self.cluster.add(raft_addr, http_addr).await.expect("add");
        self.caught_up(leader, new).await;
        new
    }

    /// Waits (60 s at most) until server `new` holds a snapshot and has applied what `leader`
    /// has committed.
    pub async fn caught_up(&self, leader: usize, new: usize) {
        wait_until(
            Duration::from_secs(60),
            "the new server caught up",
            || async {
                let (l, s) = (self.status(leader).await?, self.status(new).await?);
                (s.snapshot_index.is_some() && s.last_applied >= l.commit_index).then_some(())
            },
        )
        .await;
    }

    /// Starts `n` nodes on ephemeral loopback ports; `tweak` may adjust each node's config.
    pub async fn start(n: usize, tweak: impl Fn(&mut NodeConfig)) -> TestCluster {
        let dir = TempDir::new().unwrap();
        let mut configs = loopback_configs(&free_ports(n), &free_ports(n), dir.path(), timing());
        configs.iter_mut().for_each(&tweak);
        let cluster = Cluster::start(configs).await.expect("cluster starts");
        TestCluster {
            dir,
            cluster,
            http: reqwest::Client::new(),
        }
    }

    /// The shared harness's client of every node this cluster has now (servers added at runtime
    /// included): statuses, the leader, writes, reads.
    pub fn client(&self) -> NodeClient {
        Nodes::client(&self.cluster, &self.http)
    }

    pub fn config(&self, i: usize) -> &NodeConfig {
        self.cluster.config(i)
    }

    pub async fn restart(&mut self, i: usize) {
        Nodes::restart(&mut self.cluster, i)
            .await
            .expect("node restarts");
    }

    pub async fn kill(&mut self, i: usize) {
        Nodes::kill(&mut self.cluster, i).await;
    }

    pub fn live(&self) -> Vec<usize> {
        Nodes::live(&self.cluster)
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        self.client().url(i, path)
    }

    pub async fn status(&self, i: usize) -> Option<Status> {
        self.client().status(i).await
    }

    /// The leader with a quorum among `ids` whose term is above `above_term` (the harness's).
    pub async fn leader_among(&self, ids: &[usize], above_term: u64) -> Option<usize> {
        self.client().leader_among(ids, above_term).await
    }

    /// Waits until the live nodes agree on one leader that has a quorum: the node in role leader
    /// with the highest term (an isolated old leader may still call itself leader: pitfall 17).
    pub async fn leader(&self, timeout: Duration) -> (usize, u64) {
        wait_until(
            timeout,
            "the live nodes agree on a leader with a quorum",
            || async { self.client().agreed_leader(&self.live()).await },
        )
        .await
    }

    pub async fn post(&self, i: usize, key: &str, body: &str) -> (u16, String) {
        self.client()
            .post(i, key, body)
            .await
            .expect("HTTP request")
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
        self.client()
            .get(i, key, query)
            .await
            .expect("HTTP request")
    }

    pub async fn shutdown(mut self) {
        self.cluster.shutdown().await;
    }
}
