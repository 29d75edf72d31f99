//! The command-line client (`raftkv get|put|append|status|member`), like etcdctl or syncobj_admin: an
//! HTTP client of the service that needs no idea of who leads. Any live node forwards a write to
//! its leader, so the client walks its endpoints until one answers, moving on only when that is
//! safe: the node was unreachable before the request was sent, or answered `unavailable:` (nothing
//! was applied). After an `outcome unknown:` answer or a timeout once the request was out, it stops
//! and says so: resending an APPEND could apply it twice (the node already retried it safely).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::raft::status::{Status, leader_of};

/// Exit codes that scripts can rely on.
pub mod exit {
    pub const OK: i32 = 0;
    /// Bad arguments or an unexpected answer.
    pub const ERROR: i32 = 1;
    /// No endpoint could serve the request; nothing was applied.
    pub const UNAVAILABLE: i32 = 3;
    /// `get` of a key that does not exist.
    pub const NOT_FOUND: i32 = 4;
    /// A write whose fate is unknown: it may or may not have been applied.
    pub const UNKNOWN: i32 = 5;
    /// The request was refused as invalid (4xx).
    pub const REFUSED: i32 = 6;
}

/// The default endpoints: the five local nodes of `bin/create_serverN.sh` and the lab.
pub fn default_endpoints() -> Vec<String> {
    (0..5)
        .map(|i| format!("http://127.0.0.1:{}", 8080 + i))
        .collect()
}

/// A node's HTTP base URL as given (`host:port` or a URL), with `http://` added when no scheme
/// is given and without a trailing slash.
pub fn endpoint_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    if e.contains("://") {
        e.to_owned()
    } else {
        format!("http://{e}")
    }
}

/// What a command produced: the text to print, and the exit code.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub output: String,
}

impl Outcome {
    fn new(code: i32, output: impl Into<String>) -> Outcome {
        Outcome {
            code,
            output: output.into(),
        }
    }
}

pub struct Client {
    endpoints: Vec<String>,
    http: reqwest::Client,
    timeout: Duration,
    json: bool,
    /// Sent as a bearer token with membership changes (`--admin-token-file`).
    admin_token: Option<String>,
}

enum Attempt {
    /// Try the next endpoint: nothing was applied here.
    Next(String),
    Done(Outcome),
}

impl Client {
    pub fn new(endpoints: Vec<String>, timeout: Duration, json: bool) -> Client {
        let endpoints = endpoints.iter().map(|e| endpoint_url(e)).collect();
        Client {
            endpoints,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
            timeout,
            json,
            admin_token: None,
        }
    }

    /// Trusts the certificate authorities in the PEM file `ca` for https:// endpoints (besides
    /// the system's web roots): the nodes' own certificate, or the CA that signed it.
    pub fn trusting(mut self, ca: &std::path::Path) -> Result<Client, String> {
        let pem = std::fs::read(ca).map_err(|e| format!("CA file {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file {}: no certificate in it", ca.display()));
        }
        let builder = reqwest::Client::builder().timeout(self.timeout);
        let builder = certs
            .into_iter()
            .fold(builder, |b, cert| b.add_root_certificate(cert));
        self.http = builder.build().map_err(|e| e.to_string())?;
        Ok(self)
    }

    /// Membership changes will carry this admin token.
    pub fn with_admin_token(mut self, token: Option<String>) -> Client {
        self.admin_token = token;
        self
    }

    fn key_path(key: &str) -> String {
        let mut url = reqwest::Url::parse("http://x/keys/").expect("static URL");
        url.path_segments_mut().expect("http URL").pop().push(key);
        url.path().to_owned()
    }

    /// Walks the endpoints with `attempt` until one is conclusive.
    async fn walk<F, Fut>(&self, mut attempt: F) -> Outcome
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let mut reasons = Vec::new();
        for endpoint in &self.endpoints {
            match attempt(endpoint.clone()).await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Next(why) => reasons.push(format!("{endpoint}: {why}")),
            }
        }
        Outcome::new(
            exit::UNAVAILABLE,
            format!(
                "unavailable, nothing was applied:\n  {}",
                reasons.join("\n  ")
            ),
        )
    }

    pub async fn get(&self, key: &str, local: bool) -> Outcome {
        let path = Self::key_path(key);
        let query = if local { "?consistency=local" } else { "" };
        self.walk(|endpoint| {
            let url = format!("{endpoint}{path}{query}");
            async move {
                let resp = match self.http.get(&url).send().await {
                    Ok(resp) => resp,
                    // A read changes nothing: any failure may be retried elsewhere.
                    Err(e) => return Attempt::Next(said(&e)),
                };
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                match status {
                    200 => match serde_json::from_str::<Vec<String>>(&body) {
                        Ok(_) if self.json => Attempt::Done(Outcome::new(exit::OK, body)),
                        Ok(list) => Attempt::Done(Outcome::new(exit::OK, list.join("\n"))),
                        Err(e) => Attempt::Done(Outcome::new(
                            exit::ERROR,
                            format!("unexpected answer from {endpoint}: {e}"),
                        )),
                    },
                    404 => Attempt::Done(Outcome::new(
                        exit::NOT_FOUND,
                        format!("key {key:?} not found"),
                    )),
                    503 => Attempt::Next(body.trim().to_owned()),
                    _ => Attempt::Done(Outcome::new(exit::REFUSED, body.trim().to_owned())),
                }
            }
        })
        .await
    }

    /// PUT (`values`) or APPEND (`value`) through any live node.
    pub async fn write(&self, key: &str, body: Value) -> Outcome {
        let path = Self::key_path(key);
        self.walk(|endpoint| {
            let (url, body) = (format!("{endpoint}{path}"), body.clone());
            async move {
                let resp = match self.http.post(&url).json(&body).send().await {
                    Ok(resp) => resp,
                    Err(e) if e.is_connect() => return Attempt::Next(e.to_string()),
                    Err(e) => {
                        return Attempt::Done(Outcome::new(
                            exit::UNKNOWN,
                            format!("outcome unknown: {endpoint} did not answer in time ({e}); the write may have been applied"),
                        ));
                    }
                };
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default().trim().to_owned();
                match status {
                    204 => Attempt::Done(Outcome::new(
                        exit::OK,
                        if self.json { r#"{"ok":true}"# } else { "OK" },
                    )),
                    503 if text.starts_with("unavailable:") => Attempt::Next(text),
                    503 => Attempt::Done(Outcome::new(exit::UNKNOWN, text)),
                    _ => Attempt::Done(Outcome::new(exit::REFUSED, text)),
                }
            }
        })
        .await
    }

    /// Every endpoint's `/admin/status`, as a table (or JSON). Exit 0 if one node leads with a
    /// quorum, `UNAVAILABLE` otherwise.
    pub async fn status(&self) -> Outcome {
        let mut rows = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{endpoint}/admin/status");
            let (status, error) = match self.http.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => match resp.json::<Status>().await {
                    Ok(status) => (Some(status), None),
                    Err(e) => (None, Some(said(&e))),
                },
                Ok(resp) => (None, Some(format!("HTTP {}", resp.status()))),
                Err(e) => (None, Some(said(&e))),
            };
            rows.push(Row {
                endpoint: endpoint.clone(),
                status,
                error,
            });
        }
        let leader = leader_of(rows.iter().filter_map(|r| r.status.as_ref()));
        let code = if leader.is_some() {
            exit::OK
        } else {
            exit::UNAVAILABLE
        };
        if self.json {
            return Outcome::new(
                code,
                serde_json::to_string_pretty(&rows).unwrap_or_default(),
            );
        }
        let leader_last = leader.and_then(|l| l.last_log_index);
        let mut out = format!(
            "{:<24} {:>4} {:<9} {:>5} {:>6} {:>9} {:>7} {:>8} {:>4}\n",
            "ENDPOINT", "ID", "ROLE", "TERM", "LEADER", "LAST LOG", "COMMIT", "APPLIED", "LAG"
        );
        for row in &rows {
            let Some(s) = &row.status else {
                let why = row.error.as_deref().unwrap_or("no answer");
                out.push_str(&format!("{:<24} down ({why})\n", row.endpoint));
                continue;
            };
            let num = |v: Option<u64>| v.map_or("-".into(), |n| n.to_string());
            let lag = match (leader_last, s.last_applied) {
                (Some(l), Some(a)) => l.saturating_sub(a).to_string(),
                _ => "-".into(),
            };
            out.push_str(&format!(
                "{:<24} {:>4} {:<9} {:>5} {:>6} {:>9} {:>7} {:>8} {:>4}\n",
                row.endpoint,
                s.id,
                s.role,
                s.term,
                num(s.leader_id),
                num(s.last_log_index),
                num(s.commit_index),
                num(s.last_applied),
                lag
            ));
        }
        if leader.is_none() {
            out.push_str("no leader with a quorum\n");
        }
        Outcome::new(code, out.trim_end().to_owned())
    }
}

/// A membership change asked of the cluster.
#[derive(Clone, Debug)]
pub enum Membership {
    /// Add the server with this Raft address as a learner.
    Add(String),
    Promote(u64),
    Remove(u64),
}

impl Client {
    /// A membership change through any live node. Changes are idempotent (adding a known address
    /// returns its id, removing a non-member does nothing), so unlike a write, any failure may be
    /// retried on the next endpoint.
    pub async fn member(&self, change: Membership) -> Outcome {
        self.walk(|endpoint| {
            let change = change.clone();
            async move {
                let request = match &change {
                    Membership::Add(addr) => self
                        .http
                        .post(format!("{endpoint}/admin/members"))
                        .json(&serde_json::json!({ "raft_addr": addr })),
                    Membership::Promote(id) => self
                        .http
                        .post(format!("{endpoint}/admin/members/{id}/promote")),
                    Membership::Remove(id) => {
                        self.http.delete(format!("{endpoint}/admin/members/{id}"))
                    }
                };
                let request = match &self.admin_token {
                    Some(token) => request.bearer_auth(token),
                    None => request,
                };
                let resp = match request.send().await {
                    Ok(resp) => resp,
                    Err(e) => return Attempt::Next(said(&e)),
                };
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default().trim().to_owned();
                match status {
                    200 => {
                        let id = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["id"].as_u64());
                        let Some(id) = id else {
                            return Attempt::Done(Outcome::new(
                                exit::ERROR,
                                format!("unexpected answer from {endpoint}: {text}"),
                            ));
                        };
                        let human = match change {
                            Membership::Add(addr) => {
                                format!("node {id} ({addr}) is a member (a learner until promoted)")
                            }
                            Membership::Promote(_) => format!("node {id} is a voter"),
                            Membership::Remove(_) => format!("node {id} is not a member"),
                        };
                        let output = if self.json { text } else { human };
                        Attempt::Done(Outcome::new(exit::OK, output))
                    }
                    503 if text.starts_with("outcome unknown:") => {
                        Attempt::Done(Outcome::new(exit::UNKNOWN, text))
                    }
                    503 => Attempt::Next(text),
                    _ => Attempt::Done(Outcome::new(exit::REFUSED, text)),
                }
            }
        })
        .await
    }
}

#[derive(Serialize)]
struct Row {
    endpoint: String,
    /// `None`: the node did not answer.
    status: Option<Status>,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A request's failure with its causes (reqwest's own text names only the URL: the cause, such
/// as a certificate nobody trusts or a refused connection, is in its sources).
fn said(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}
