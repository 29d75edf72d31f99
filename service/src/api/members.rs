//! Membership at runtime over HTTP: `POST /admin/members` adds a server as a learner,
//! `POST /admin/members/{id}/promote` makes a learner a voter, `DELETE /admin/members/{id}`
//! removes a server. Any node accepts them and forwards to the leader (`gateway::Gateway`); each
//! answers `{"id": N}` once the change is committed.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::keys::json_body;
use super::{AppState, error_response};
use crate::error::{Error, Result};
use crate::raft::members::MemberChange;

/// `POST /admin/members` with `{"raft_addr": "ip:port"}`.
pub async fn add(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    match parse_add(&headers, body) {
        Ok(change) => answer(&state, change).await,
        Err(e) => error_response(e),
    }
}

fn parse_add(
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<MemberChange> {
    let usage =
        r#"the body must be {"raft_addr": "ip:port"}: where the new server listens for Raft"#;
    let Value::Object(fields) = json_body(headers, body)? else {
        return Err(Error::InvalidInput(usage.into()));
    };
    let raft_addr = match fields.get("raft_addr").and_then(Value::as_str) {
        Some(addr) if fields.len() == 1 => addr.to_owned(),
        _ => return Err(Error::InvalidInput(usage.into())),
    };
    ip_and_port(&raft_addr)?;
    Ok(MemberChange::Add { raft_addr })
}

/// The address of a server to add, as the spec's pattern has it: an IP address and a port
/// without leading zeros. No host names: resolving whatever a request names would send DNS
/// queries on a stranger's behalf, and a name may resolve differently on every node.
fn ip_and_port(addr: &str) -> Result<std::net::SocketAddr> {
    let bad = || {
        Error::InvalidInput(format!(
            "raft_addr {addr:?} is not ip:port (e.g. 127.0.0.1:6005 or [::1]:6005; host names are \
             not resolved here)"
        ))
    };
    let parsed: std::net::SocketAddr = addr.parse().map_err(|_| bad())?;
    let port = addr.rsplit(':').next().unwrap_or("");
    if port.len() > 1 && port.starts_with('0') {
        return Err(bad());
    }
    Ok(parsed)
}

/// `POST /admin/members/{id}/promote`.
pub async fn promote(state: State<Arc<AppState>>, path: IdPath) -> Response {
    by_id(state, path, |id| MemberChange::Promote { id }).await
}

/// `DELETE /admin/members/{id}`.
pub async fn remove(state: State<Arc<AppState>>, path: IdPath) -> Response {
    by_id(state, path, |id| MemberChange::Remove { id }).await
}

type IdPath = std::result::Result<Path<u64>, PathRejection>;

async fn by_id(
    State(state): State<Arc<AppState>>,
    path: IdPath,
    change: fn(u64) -> MemberChange,
) -> Response {
    match path {
        Ok(Path(id)) => answer(&state, change(id)).await,
        Err(e) => error_response(Error::InvalidInput(format!(
            "bad node id: {}",
            e.body_text()
        ))),
    }
}

async fn answer(state: &AppState, change: MemberChange) -> Response {
    match state.gateway.change_members(change).await {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => error_response(e),
    }
}
