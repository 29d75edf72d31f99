//! Clusters for tests and scripts, shared by tests/common, tests/process.rs and `scenario`:
//! - [`Nodes`]: the verbs every cluster has, whoever runs its nodes: how many, which are up, kill
//!   one (crash: its data stays), restart it from its data, and a [`NodeClient`] of them all.
//!   Two backends: `cluster::Cluster` (all nodes in this process) and [`Processes`] (one
//!   `raftkv node` process per node on loopback, killed with SIGKILL, as the assignment's
//!   scripts run them).
//! - [`NodeClient`]: what a client asks any cluster over the nodes' HTTP ports: a status, the
//!   leader with a quorum among some nodes (always through `raft::status::leader_of`), writes and
//!   reads. Nothing here panics: callers decide how to wait.
//! - [`netns`]: the assignment's two computers on one machine (two network namespaces and a
//!   cable), servers started by `bin/partition/*.sh`; shared by tests/netns.rs and `scenario`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::Cluster;
use crate::raft::status::{Status, leader_of};

pub mod netns;

/// A running cluster's nodes, in-process or one process each, behind the same verbs.
pub trait Nodes {
    /// Nodes ever started (ids `0..len`).
    fn len(&self) -> usize;
    fn is_up(&self, i: usize) -> bool;
    fn http_addr(&self, i: usize) -> std::net::SocketAddr;
    /// Crashes node `i`: it stops at once, its data directory stays.
    fn kill(&mut self, i: usize) -> impl Future<Output = ()> + Send;
    /// Starts node `i` again from its data directory.
    fn restart(&mut self, i: usize) -> impl Future<Output = Result<(), String>> + Send;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nodes that are up.
    fn live(&self) -> Vec<usize> {
        (0..self.len()).filter(|i| self.is_up(*i)).collect()
    }

    /// A client of every node's HTTP port, as the cluster is now.
    fn client(&self, http: &reqwest::Client) -> NodeClient {
        NodeClient {
            http: http.clone(),
            bases: (0..self.len())
                .map(|i| format!("http://{}", self.http_addr(i)))
                .collect(),
        }
    }
}

impl Nodes for Cluster {
    fn len(&self) -> usize {
        Cluster::len(self)
    }
    fn is_up(&self, i: usize) -> bool {
        Cluster::is_up(self, i)
    }
    fn http_addr(&self, i: usize) -> std::net::SocketAddr {
        self.config(i).http_addr
    }
    async fn kill(&mut self, i: usize) {
        Cluster::kill(self, i).await
    }
    async fn restart(&mut self, i: usize) -> Result<(), String> {
        Cluster::restart(self, i).await.map_err(|e| e.to_string())
    }
}

impl Nodes for Processes {
    fn len(&self) -> usize {
        self.raft.len()
    }
    fn is_up(&self, i: usize) -> bool {
        self.children[i].is_some()
    }
    fn http_addr(&self, i: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.http[i]))
    }
    async fn kill(&mut self, i: usize) {
        self.kill9(i)
    }
    async fn restart(&mut self, i: usize) -> Result<(), String> {
        self.start(i)
            .map_err(|e| format!("cannot start raftkv node {i}: {e}"))
    }
}

/// How long one status request may take: a node that does not answer in this time counts as down.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one write or read may take (the node's own deadline is shorter).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// HTTP verbs against nodes `0..n`, by index. Node `i` must have node id `i` (true of the lab's
/// and the tests' clusters: ids follow the sorted Raft addresses, and the ports are sorted).
#[derive(Clone)]
pub struct NodeClient {
    pub http: reqwest::Client,
    /// Base URL of each node, `http://host:port`.
    pub bases: Vec<String>,
}

impl NodeClient {
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", self.bases[i])
    }

    /// Node `i`'s `/admin/status`; None if it does not answer (down, or not yet serving).
    pub async fn status(&self, i: usize) -> Option<Status> {
        let resp = self
            .http
            .get(self.url(i, "/admin/status"))
            .timeout(STATUS_TIMEOUT)
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// The statuses of the nodes in `ids` that answer.
    pub async fn statuses(&self, ids: &[usize]) -> Vec<Status> {
        let mut statuses = Vec::new();
        for i in ids {
            statuses.extend(self.status(*i).await);
        }
        statuses
    }

    /// The leader with a quorum among `ids`, as [`leader_of`] picks it, if its term is above
    /// `above_term`.
    pub async fn leader_among(&self, ids: &[usize], above_term: u64) -> Option<usize> {
        let statuses = self.statuses(ids).await;
        leader_of(&statuses)
            .filter(|s| s.term > above_term)
            .map(|s| s.id as usize)
    }

    /// The leader with a quorum among `ids` and its term, once every one of them answers and
    /// follows it in that term (an isolated old leader may still call itself leader).
    pub async fn agreed_leader(&self, ids: &[usize]) -> Option<(usize, u64)> {
        let statuses = self.statuses(ids).await;
        if statuses.len() < ids.len() {
            return None;
        }
        let leader = leader_of(&statuses)?;
        let agreed = statuses
            .iter()
            .all(|s| s.leader_id == Some(leader.id) && s.term == leader.term);
        agreed.then_some((leader.id as usize, leader.term))
    }

    /// POSTs a JSON `body` to `/keys/{key}` on node `i`: (status, text), or the transport error.
    pub async fn post(&self, i: usize, key: &str, body: &str) -> reqwest::Result<(u16, String)> {
        let resp = self
            .http
            .post(self.url(i, &format!("/keys/{key}")))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        ))
    }

    /// GETs `/keys/{key}{query}` on node `i`: (status, the list if 200).
    pub async fn get(
        &self,
        i: usize,
        key: &str,
        query: &str,
    ) -> reqwest::Result<(u16, Option<Vec<String>>)> {
        let resp = self
            .http
            .get(self.url(i, &format!("/keys/{key}{query}")))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        let code = resp.status().as_u16();
        let list = if code == 200 {
            resp.json().await.ok()
        } else {
            None
        };
        Ok((code, list))
    }
}

/// `raftkv node` processes on loopback: node `i` serves Raft on `raft[i]` and HTTP on `http[i]`,
/// keeps its data in `dir/server{i}` and its log in `dir/server{i}.log`. Dropping this kills them.
pub struct Processes {
    exe: PathBuf,
    dir: PathBuf,
    pub raft: Vec<u16>,
    pub http: Vec<u16>,
    /// Extra `raftkv node` options for every node.
    pub extra: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Processes {
    /// Describes the nodes; starts none.
    pub fn new(exe: &Path, dir: &Path, raft: Vec<u16>, http: Vec<u16>) -> Processes {
        let n = raft.len();
        Processes {
            exe: exe.to_owned(),
            dir: dir.to_owned(),
            raft,
            http,
            extra: Vec::new(),
            children: (0..n).map(|_| None).collect(),
        }
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("server{i}"))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("server{i}.log"))
    }

    /// Node `i`'s command line, as `bin/create_serverN.sh` writes it, with no output attached.
    pub fn command(&self, i: usize) -> Command {
        let peers: Vec<u16> = self
            .raft
            .iter()
            .copied()
            .filter(|p| *p != self.raft[i])
            .collect();
        self.command_with_peers(i, &peers)
    }

    /// Node `i`'s command line with another list of peers' Raft ports.
    pub fn command_with_peers(&self, i: usize, peers: &[u16]) -> Command {
        let addr = |p: &u16| format!("127.0.0.1:{p}");
        let peers = peers.iter().map(addr);
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .arg(self.http[i].to_string())
            .arg(addr(&self.raft[i]))
            .args(peers)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// Starts node `i`, appending its log lines to [`Processes::log`] (a pipe nobody reads would
    /// block the node once full).
    pub fn start(&mut self, i: usize) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))?;
        let mut cmd = self.command(i);
        cmd.stderr(log);
        self.children[i] = Some(cmd.spawn()?);
        Ok(())
    }

    pub fn child(&self, i: usize) -> Option<&Child> {
        self.children[i].as_ref()
    }

    /// Takes node `i`'s process handle (the caller stops it its own way).
    pub fn take(&mut self, i: usize) -> Option<Child> {
        self.children[i].take()
    }

    /// SIGKILL: no chance to flush anything that was not already fsynced.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        (0..self.children.len()).for_each(|i| self.kill9(i));
    }
}
