//! Replays the steps of the assignment's report questions against a real cluster and writes what
//! the system answered, so Report.md can quote it and anyone can regenerate it:
//! `raftkv scenario NAME --out DIR`, at the default timing.
//! - `task2`, `task3`: five `raftkv node` processes on loopback, `kill -9` for "shut down"
//!   ([`tasks`]).
//! - `two-hosts-a`, `two-hosts-b`: the two-computer partition as the assignment runs it: servers
//!   started by `bin/partition/create_server_partitionN.sh IP1 IP2` on two network namespaces,
//!   the cable between them pulled, with the leader first on the first computer (a) and then on
//!   the second (b) ([`partition::two_hosts`]; needs root).
//! - `partition-a`, `partition-b`: the same partition inside one process (the lab's view), every
//!   link between {0,1,2} and {3,4} cut both ways ([`partition::in_process`]).
//!
//! Where a question asks what changes, the evidence has a timeline: every node polled every
//! 50 ms, one line per change of its role, term, vote or leader, timed from the step.

mod partition;
mod tasks;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;
use tokio::time::{Instant, sleep};

use crate::harness::{NodeClient, Nodes, Processes};
use crate::raft::status::{Role, Status};

const WAIT: Duration = Duration::from_secs(30);

/// The scenarios, by name.
pub const NAMES: [&str; 6] = [
    "task2",
    "task3",
    "two-hosts-a",
    "two-hosts-b",
    "partition-a",
    "partition-b",
];

/// The fields of a status that the report discusses, in the order they are shown. The last is
/// `has_quorum` on a leader and `heard_from_leader` elsewhere: each is what that role can know.
const FIELDS: [&str; 7] = [
    "role",
    "term",
    "voted_for",
    "leader_id",
    "last_log_index",
    "commit_index",
    "last_applied",
];

fn field(status: &Value, name: &str) -> String {
    let v = &status[name];
    if v.is_null() {
        "-".into()
    } else {
        v.to_string().trim_matches('"').to_string()
    }
}

/// A status as one line of `name=value`, the fields the Report discusses.
fn trim(status: &Status) -> String {
    let value = serde_json::to_value(status).unwrap_or_default();
    let contact = if status.role == Role::Leader {
        "has_quorum"
    } else {
        "heard_from_leader"
    };
    FIELDS
        .iter()
        .chain([&contact])
        .map(|f| format!("{f}={}", field(&value, f)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a timeline watches: a change in any of these is a line.
fn brief(status: Option<&Status>) -> String {
    let Some(status) = status else {
        return "(not answering: down)".into();
    };
    let value = serde_json::to_value(status).unwrap_or_default();
    ["role", "term", "voted_for", "leader_id"]
        .iter()
        .map(|f| format!("{f}={}", field(&value, f)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line per change of a node's [`brief`] state, timed from the start of a step.
struct Timeline {
    /// "node" (by node id) or "server" (by the assignment's server number).
    who: &'static str,
    start: Instant,
    last: Vec<Option<String>>,
    text: String,
}

impl Timeline {
    fn new(nodes: usize) -> Timeline {
        Timeline {
            who: "node",
            start: Instant::now(),
            last: vec![None; nodes],
            text: String::new(),
        }
    }

    fn observe(&mut self, id: usize, status: Option<&Status>) {
        let now = brief(status);
        if self.last[id].as_ref() != Some(&now) {
            let at = self.start.elapsed().as_secs_f64();
            let _ = writeln!(self.text, "+{at:.2} s  {} {id}: {now}", self.who);
            self.last[id] = Some(now);
        }
    }

    fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// Markdown evidence being written.
struct Evidence {
    text: String,
}

impl Evidence {
    fn step(&mut self, title: &str) {
        let _ = write!(self.text, "\n## {title}\n\n");
    }
    fn note(&mut self, line: &str) {
        let _ = writeln!(self.text, "{line}\n");
    }
    fn block(&mut self, label: &str, body: &str) {
        if !label.is_empty() {
            let _ = write!(self.text, "{label}\n\n");
        }
        let _ = write!(self.text, "```\n{}\n```\n\n", body.trim_end());
    }
}

/// A request and its answer as a curl user would see them.
fn exchange(method: &str, path: &str, body: Option<&Value>, to: &str, answer: &str) -> String {
    let shown = body.map_or(String::new(), |b| format!(" {b}"));
    format!("{method} {path}{shown} → {to}\n{}", answer.trim_end())
}

/// Talks HTTP to nodes by id, through the shared harness, and renders what it saw.
struct Client {
    nodes: NodeClient,
}

impl Client {
    async fn status(&self, id: usize) -> Option<Status> {
        self.nodes.status(id).await
    }

    /// One line per node: its trimmed status, or "down".
    async fn statuses(&self, ids: &[usize]) -> String {
        let mut out = String::new();
        for id in ids {
            let line = match self.status(*id).await {
                Some(s) => trim(&s),
                None => "(not answering: down)".into(),
            };
            let _ = writeln!(out, "node {id}: {line}");
        }
        out
    }

    /// Sends a request and renders it with its answer.
    async fn call(&self, id: usize, method: &str, path: &str, body: Option<Value>) -> String {
        let url = self.nodes.url(id, path);
        let request = match &body {
            Some(b) => self.nodes.http.post(&url).json(b),
            None => self.nodes.http.get(&url),
        };
        let to = format!("node {id}");
        let answer = match request.timeout(Duration::from_secs(15)).send().await {
            Ok(resp) => {
                let code = resp.status();
                let text = resp.text().await.unwrap_or_default();
                format!("{code}\n{text}")
            }
            Err(e) => format!("no answer: {e}"),
        };
        exchange(method, path, body.as_ref(), &to, &answer)
    }

    /// Waits for a leader with a quorum among `ids` (highest term); returns its id.
    async fn leader(&self, ids: &[usize], above_term: u64) -> Result<usize> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(leader) = self.nodes.leader_among(ids, above_term).await {
                return Ok(leader);
            }
            sleep(Duration::from_millis(50)).await;
        }
        bail!("no leader with a quorum among {ids:?} within {WAIT:?}")
    }

    /// Polls `ids` every 50 ms into `timeline` until every one of them answers, follows one
    /// leader in one term, and has applied what that leader has (or `WAIT` passes).
    async fn watch_until_settled(&self, ids: &[usize], timeline: &mut Timeline) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let mut statuses = Vec::new();
            for id in ids {
                let status = self.status(*id).await;
                timeline.observe(*id, status.as_ref());
                statuses.push(status);
            }
            if settled(&statuses) {
                return Ok(());
            }
            sleep(Duration::from_millis(50)).await;
        }
        bail!("{ids:?} did not settle on one leader within {WAIT:?}")
    }

    /// Polls `ids` into `timeline` for `length`, whatever happens.
    async fn watch_for(&self, ids: &[usize], timeline: &mut Timeline, length: Duration) {
        while timeline.start.elapsed() < length {
            for id in ids {
                let status = self.status(*id).await;
                timeline.observe(*id, status.as_ref());
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every node answers, one of them leads with a quorum, all follow it in its term and have
/// applied everything it has.
fn settled(statuses: &[Option<Status>]) -> bool {
    let Some(all) = statuses.iter().cloned().collect::<Option<Vec<Status>>>() else {
        return false;
    };
    let Some(leader) = crate::raft::status::leader_of(&all) else {
        return false;
    };
    all.iter().all(|s| {
        s.term == leader.term
            && s.leader_id == Some(leader.id)
            && s.last_applied == leader.last_log_index
    })
}

pub struct Options {
    pub out: PathBuf,
    pub raft_port: u16,
    pub http_port: u16,
    /// The folder of the partition scripts, for `two-hosts-*`.
    pub scripts: PathBuf,
}

pub async fn run(name: &str, options: &Options) -> Result<PathBuf> {
    std::fs::create_dir_all(&options.out)?;
    let work = tempfile::tempdir()?;
    let raft = crate::cluster::port_block(options.raft_port, 5, "--raft-port")?;
    let http = crate::cluster::port_block(options.http_port, 5, "--http-port")?;
    let mut ev = Evidence {
        text: format!(
            "# Evidence: `raftkv scenario {name}`\n\nGenerated by a real run at the default timing \
             (heartbeat 50 ms, election timeout 250-400 ms after a 400 ms leader lease); \
             statuses trimmed to the fields the report discusses.\n"
        ),
    };
    match name {
        "task2" | "task3" => {
            let mut procs = Processes::new(&std::env::current_exe()?, work.path(), raft, http);
            for id in 0..5 {
                procs.restart(id).await.map_err(anyhow::Error::msg)?;
            }
            let client = Client {
                nodes: procs.client(&reqwest::Client::new()),
            };
            if name == "task2" {
                tasks::task2(&client, &mut ev).await?
            } else {
                tasks::task3(&client, &mut procs, &mut ev).await?
            }
        }
        "two-hosts-a" | "two-hosts-b" => {
            let second = name == "two-hosts-b";
            let (bin, scripts) = (std::env::current_exe()?, options.scripts.clone());
            ev = tokio::task::spawn_blocking(move || {
                partition::two_hosts(second, &bin, &scripts, &mut ev).map(|()| ev)
            })
            .await??;
        }
        "partition-a" | "partition-b" => {
            let second = name == "partition-b";
            partition::in_process(second, &raft, &http, work.path(), &mut ev).await?
        }
        other => bail!("unknown scenario {other:?}: one of {}", NAMES.join(", ")),
    }
    let path = options.out.join(format!("{name}.md"));
    std::fs::write(&path, ev.text)?;
    Ok(path)
}

const ALL: [usize; 5] = [0, 1, 2, 3, 4];
