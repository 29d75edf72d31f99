//! How a server added at runtime (`--join URL`) learns who it is. On its first start it asks a
//! member, over that member's HTTP API (`POST /admin/members`), to add its Raft address as a
//! learner; the leader reserves a fresh node id through the log and answers with it. Asking again
//! with the same address returns the same id, so a start that crashed before recording the id
//! simply asks again. Once the node has Raft state it never asks again ("on restart do nothing
//! special"): it keeps the id in its identity record.

use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use super::CLUSTER_NAME;
use super::identity::{self, Identity};
use crate::config::NodeConfig;
use crate::error::{Error, Result};

/// How long a joining node keeps asking before it gives up (the cluster may be electing).
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Added {
    id: u64,
}

/// The identity a node started with `--join via...` should have.
pub async fn identity(via: &[String], config: &NodeConfig, pristine: bool) -> Result<Identity> {
    if let Some(stored) = identity::load(&config.data_dir)? {
        if !stored.members.is_empty() {
            return Err(Error::Config(format!(
                "{} belongs to founding member {} of a cluster; start it without --join, with the founding addresses",
                config.data_dir.display(),
                stored.id
            )));
        }
        if stored.joined || !pristine {
            return Ok(stored);
        }
    }
    let id = ask(via, &config.raft_addr.to_string(), config.request_timeout).await?;
    tracing::info!(node = id, via = ?via, "added to the cluster as a learner");
    Ok(Identity {
        cluster: CLUSTER_NAME.into(),
        id,
        members: Vec::new(),
        joined: false,
    })
}

/// Asks the members at `via` in turn until one adds `raft_addr`, or [`JOIN_PATIENCE`] runs out.
async fn ask(via: &[String], raft_addr: &str, timeout: Duration) -> Result<u64> {
    if via.is_empty() {
        return Err(Error::Config(
            "--join needs the HTTP address of at least one member".into(),
        ));
    }
    let http = reqwest::Client::builder()
        .timeout(timeout + Duration::from_secs(1))
        .build()
        .map_err(|e| Error::Config(format!("cannot build an HTTP client: {e}")))?;
    let body = serde_json::json!({ "raft_addr": raft_addr });
    let deadline = Instant::now() + JOIN_PATIENCE;
    let mut last = String::new();
    while Instant::now() < deadline {
        for base in via {
            let base = base.trim_end_matches('/');
            let base = if base.contains("://") {
                base.to_owned()
            } else {
                format!("http://{base}")
            };
            let url = format!("{base}/admin/members");
            match http.post(&url).json(&body).send().await {
                Ok(resp) if resp.status().is_success() => {
                    return resp.json::<Added>().await.map(|a| a.id).map_err(|e| {
                        Error::Config(format!("{url} answered something unexpected: {e}"))
                    });
                }
                // 4xx: asked wrongly (a bad address); asking again will not help.
                Ok(resp) if resp.status().is_client_error() => {
                    let text = resp.text().await.unwrap_or_default();
                    return Err(Error::Config(format!(
                        "{url} refused to add this node: {}",
                        text.trim()
                    )));
                }
                Ok(resp) => {
                    last = format!("{url}: {}", resp.text().await.unwrap_or_default().trim())
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Config(format!(
        "no member added this node within {JOIN_PATIENCE:?}; last answer: {last}"
    )))
}
