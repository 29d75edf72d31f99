//! The HTTP API of one node (axum), compatible with the assignment's `api_description.yml`:
//! `POST/GET /keys/{key}` and `GET /admin/status`, plus membership changes (`/admin/members`)
//! and `GET /metrics`. This is the only module that knows HTTP status
//! codes: [`error_response`] maps every [`Error`] to one.

pub mod admin;
pub mod gateway;
pub mod keys;
pub mod members;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::error::Error;
use crate::metrics::{Metrics, PeerLabels, RequestLabels, RoleLabels, RouteLabels};
use crate::raft::KvReader;
use crate::raft::status::{self, NodeFacts, Role, Status};
use crate::raft::typ::LogStore;

pub use gateway::Gateway;

/// Largest accepted request body. A PUT of a few thousand strings fits; anything bigger gets 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Longest accepted key, in bytes after percent-decoding; longer gets 414. Keys live in every
/// node's memory and in every snapshot; this keeps one request from inflating them.
pub const MAX_KEY_BYTES: usize = 4096;

/// What every handler can reach.
pub struct AppState {
    pub gateway: Gateway,
    pub kv: KvReader,
    pub http_addr: String,
    pub raft_addr: String,
    pub pre_vote: bool,
    /// A leader's lease: how recent a quorum contact must be to count as "has quorum".
    pub lease_ms: u64,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    /// This node's log, for its fsync count in `/metrics`.
    pub log: LogStore,
    /// Membership changes over HTTP need this token, if set (`admin`).
    pub admin_token: Option<crate::config::AdminToken>,
    /// The lab's clock the node runs on, if any: ages in the status are read on it.
    pub clock: Option<Arc<crate::clock::Clock>>,
    /// The votes this node granted (its `voted_for`).
    pub ballot: Arc<crate::raft::ballot::Ballot>,
}

impl AppState {
    pub async fn status(&self) -> Status {
        let facts = NodeFacts {
            http_addr: self.http_addr.clone(),
            raft_addr: self.raft_addr.clone(),
            pre_vote: self.pre_vote,
            keys: self.kv.read().len(),
            uptime_secs: self.started.elapsed().as_secs(),
            lease_ms: self.lease_ms,
            removed: self.gateway.removal.known(),
            granted: self.ballot.last(),
        };
        let status = status::status(&self.gateway.raft, facts);
        match &self.clock {
            Some(clock) => clock.scope(status).await,
            None => status.await,
        }
    }
}

/// The node's HTTP routes. At most `max_in_flight` requests are served at once: a request past
/// that is answered 503 at once (load shedding) rather than queued behind a stalled cluster,
/// which would grow memory without bound and answer nobody in time.
pub fn router(state: Arc<AppState>, max_in_flight: usize) -> Router {
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: BoxError| async move {
            error_response(Error::Unavailable(format!(
                "overloaded: {max_in_flight} requests already in flight on this node ({e})"
            )))
        }))
        .load_shed()
        // Global: axum applies a layer to each route separately, and one limit must span them.
        .layer(GlobalConcurrencyLimitLayer::new(max_in_flight));
    // Changing the cluster needs the admin token, or a loopback peer without one (`admin`).
    let membership = Router::new()
        .route("/admin/members", post(members::add))
        .route("/admin/members/{id}", delete(members::remove))
        .route("/admin/members/{id}/promote", post(members::promote))
        .route_layer(middleware::from_fn_with_state(state.clone(), admin::guard));
    Router::new()
        .route("/keys/{key}", get(keys::get).post(keys::post))
        .route("/admin/status", get(admin_status))
        .merge(membership)
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .route_layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(shed)
        .with_state(state)
}

/// Any path the API does not have gets a 404 that says so, instead of an empty body: a client
/// that removed a `.` key segment (`/keys/.` becomes `/keys/`) learns what happened.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error_response(Error::NotFound(format!(
        "no resource at {method} {}: keys are at /keys/{{key}} (a non-empty key, not `.` or `..`), \
         status at /admin/status, metrics at /metrics",
        uri.path()
    )))
}

async fn admin_status(State(state): State<Arc<AppState>>) -> Json<Status> {
    Json(state.status().await)
}

/// Counts every routed request by route template, method and status, with its latency.
async fn count(
    State(state): State<Arc<AppState>>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = route.map_or_else(|| "other".to_owned(), |r| r.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`: Prometheus/OpenMetrics text. Raft gauges come from the same status as
/// `/admin/status`, read now.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let status = state.status().await;
    let fsyncs = state.log.fsyncs().await;
    let text = state.metrics.scrape(|g| {
        g.wal_fsyncs
            .inc_by(fsyncs.saturating_sub(g.wal_fsyncs.get()));
        let n = |v: Option<u64>| v.map_or(-1, |v| v as i64);
        g.term.set(status.term as i64);
        for role in Role::RUNNING {
            g.role
                .get_or_create(&RoleLabels {
                    role: role.as_str().into(),
                })
                .set(i64::from(status.role == role));
        }
        g.leader.set(n(status.leader_id));
        g.last_log_index.set(n(status.last_log_index));
        g.commit_index.set(n(status.commit_index));
        g.last_applied.set(n(status.last_applied));
        g.snapshot_index.set(n(status.snapshot_index));
        let purged_next = status.purged_index.map_or(0, |p| p + 1);
        let entries = status
            .last_log_index
            .map_or(0, |l| (l + 1).saturating_sub(purged_next));
        g.log_entries.set(entries as i64);
        g.has_quorum.set(i64::from(status.has_quorum));
        g.replication_lag.clear();
        for (peer, progress) in status.followers.iter().flatten() {
            let matched = progress.matched_index.map_or(0, |m| m + 1);
            let last = status.last_log_index.map_or(0, |l| l + 1);
            g.replication_lag
                .get_or_create(&PeerLabels { peer: *peer })
                .set(last.saturating_sub(matched) as i64);
        }
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The one mapping from errors to HTTP responses. Bodies are plain text, as the original API asks.
pub fn error_response(err: Error) -> Response {
    let status = match &err {
        Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::KeyTooLong(_) => StatusCode::URI_TOO_LONG,
        Error::Refused(_) => StatusCode::CONFLICT,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unavailable(_) | Error::Unknown(_) | Error::Stopped(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Storage(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{err}\n"),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // A new leader is usually elected within a couple of election timeouts.
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}
