//! How a server added at runtime (`--join URL`) learns who it is. On its first start it asks a
//! member, through the command-line client's `member add` (`POST /admin/members`), to add its
//! Raft address as a learner; the leader reserves a fresh node id through the log and answers
//! with it. Asking again with the same address returns the same id, so a start that crashed
//! before recording the id simply asks again. Once the node has Raft state it never asks again
//! ("on restart do nothing special"): it keeps the id in its identity record.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use super::CLUSTER_NAME;
use super::identity::{self, Identity};
use crate::client::{Client, Membership, exit};
use crate::config::NodeConfig;
use crate::error::{Error, Result};

/// How long a joining node keeps asking before it gives up (the cluster may be electing).
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// The identity a node started with `--join via...` should have.
pub async fn identity(
    via: &[String],
    ca: Option<&Path>,
    config: &NodeConfig,
    pristine: bool,
) -> Result<Identity> {
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
    let id = ask(via, ca, config).await?;
    tracing::info!(node = id, via = ?via, "added to the cluster as a learner");
    Ok(Identity {
        cluster: CLUSTER_NAME.into(),
        id,
        members: Vec::new(),
        joined: false,
    })
}

/// Asks the members at `via` (in turn, as the client does) until one adds `raft_addr`, or
/// [`JOIN_PATIENCE`] runs out.
async fn ask(via: &[String], ca: Option<&Path>, config: &NodeConfig) -> Result<u64> {
    let raft_addr = config.raft_addr.to_string();
    if via.is_empty() {
        return Err(Error::Config(
            "--join needs the HTTP address of at least one member".into(),
        ));
    }
    let timeout = config.request_timeout + Duration::from_secs(1);
    // A cluster with an admin token wants it from a joining server too.
    let token = config.admin_token.as_ref().map(|t| t.secret().to_owned());
    let mut client = Client::new(via.to_vec(), timeout, true).with_admin_token(token);
    if let Some(ca) = ca {
        // Members that serve HTTPS with a certificate of this authority (`--join-ca-file`).
        client = client.trusting(ca).map_err(Error::Config)?;
    }
    let deadline = Instant::now() + JOIN_PATIENCE;
    loop {
        let outcome = client.member(Membership::Add(raft_addr.clone())).await;
        match outcome.code {
            exit::OK => {
                let id = serde_json::from_str::<serde_json::Value>(&outcome.output)
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                return id.ok_or_else(|| {
                    Error::Config(format!("unexpected answer to join: {}", outcome.output))
                });
            }
            // Asked wrongly (a bad address): asking again will not help.
            exit::REFUSED | exit::ERROR => {
                return Err(Error::Config(format!(
                    "the cluster refused to add this node: {}",
                    outcome.output
                )));
            }
            // Unavailable or unknown: the cluster may be electing; adding is idempotent.
            _ if Instant::now() + Duration::from_millis(500) < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            _ => {
                return Err(Error::Config(format!(
                    "no member added this node within {JOIN_PATIENCE:?}; last answer: {}",
                    outcome.output
                )));
            }
        }
    }
}
