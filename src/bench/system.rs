//! The systems the load generator can drive, and how each spells the same operations over HTTP:
//! raftkv and the PySyncObj service speak the assignment's API (`/keys/{key}`, `/admin/status`);
//! etcd speaks its v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`, `/v3/maintenance/status`, keys
//! and values in base64, 64-bit numbers as strings). Everything else in the bench is shared, so a
//! side-by-side comparison differs only in these few lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::{Value, json};

use crate::raft::status::{Status, leader_of};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// raftkv, or anything else that serves the assignment's API (the PySyncObj service).
    Raftkv,
    /// etcd v3 through its JSON gateway (no APPEND).
    Etcd,
}

/// One endpoint's view of Raft, as far as the bench needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// It leads, and (where the system says so) a quorum follows it.
    pub leader: bool,
    pub term: u64,
    /// Highest log index applied to its state machine.
    pub applied: u64,
}

/// A write the bench sends.
pub enum Write<'a> {
    Put(&'a str),
    Append(&'a str),
}

/// One request as the bench puts it on the wire: built once per request, sent by a
/// [`super::http::Conn`].
#[derive(Clone, Debug)]
pub struct Call {
    pub method: http::Method,
    /// Path and query, e.g. `/keys/b7?consistency=local`.
    pub path: String,
    /// A JSON body, if any.
    pub body: Option<bytes::Bytes>,
}

impl Call {
    fn post(path: String, body: Value) -> Call {
        Call {
            method: http::Method::POST,
            path,
            body: Some(body.to_string().into()),
        }
    }

    fn get(path: String) -> Call {
        Call {
            method: http::Method::GET,
            path,
            body: None,
        }
    }
}

impl System {
    pub fn write(self, key: &str, write: Write<'_>) -> anyhow::Result<Call> {
        Ok(match (self, write) {
            (System::Raftkv, Write::Put(v)) => {
                Call::post(format!("/keys/{key}"), json!({"type": "PUT", "value": [v]}))
            }
            (System::Raftkv, Write::Append(v)) => Call::post(
                format!("/keys/{key}"),
                json!({"type": "APPEND", "value": v}),
            ),
            (System::Etcd, Write::Put(v)) => Call::post(
                "/v3/kv/put".into(),
                json!({"key": B64.encode(key), "value": B64.encode(v)}),
            ),
            (System::Etcd, Write::Append(_)) => anyhow::bail!("etcd has no APPEND"),
        })
    }

    /// A GET of `key`: linearizable, or `local` (a possibly stale read of the node's own state).
    pub fn read(self, key: &str, local: bool) -> Call {
        match self {
            System::Raftkv if local => Call::get(format!("/keys/{key}?consistency=local")),
            System::Raftkv => Call::get(format!("/keys/{key}")),
            // etcd's "serializable" range is its local read; the default is linearizable.
            System::Etcd => Call::post(
                "/v3/kv/range".into(),
                json!({"key": B64.encode(key), "serializable": local}),
            ),
        }
    }

    /// Asks `endpoint` for its Raft state; `None` if it does not answer.
    pub async fn probe(self, http: &reqwest::Client, endpoint: &str) -> Option<Probe> {
        let request = match self {
            System::Raftkv => http.get(format!("{endpoint}/admin/status")),
            System::Etcd => http
                .post(format!("{endpoint}/v3/maintenance/status"))
                .json(&json!({})),
        };
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(match self {
            System::Raftkv => {
                let s: Status = response.json().await.ok()?;
                Probe {
                    leader: leader_of([&s]).is_some(),
                    term: s.term,
                    applied: s.last_applied.unwrap_or(0),
                }
            }
            System::Etcd => {
                let s: Value = response.json().await.ok()?;
                let number = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
                Probe {
                    leader: s["leader"] == s["header"]["member_id"],
                    term: number(&s["raftTerm"]).or_else(|| number(&s["header"]["raft_term"]))?,
                    applied: number(&s["raftAppliedIndex"])
                        .or_else(|| number(&s["raftIndex"]))
                        .unwrap_or(0),
                }
            }
        })
    }
}
