//! `GET /keys/{key}` and `POST /keys/{key}`. Writes answer 204 only after the entry is committed
//! by a quorum and applied; reads are linearizable unless `?consistency=local` is asked for.
//! Every response to a read carries `Raft-Applied-Index`: a lower bound of the log index the
//! answer reflects (the applied index is read just before the map, and more may be applied in
//! between; for a linearizable read it is at least the read index the leader confirmed).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openraft::async_runtime::WatchReceiver;
use serde::Deserialize;
use serde_json::Value;

use super::{AppState, error_response};
use crate::error::{Error, Result};
use crate::kv::Command;

#[derive(Deserialize)]
pub struct ReadParams {
    consistency: Option<String>,
}

/// The key from the path, percent-decoded. axum's own rejections (invalid UTF-8 after decoding)
/// become our `Error`, so every refusal is mapped in one place.
fn key(path: std::result::Result<Path<String>, PathRejection>) -> Result<String> {
    let Path(key) = path.map_err(|e| Error::InvalidInput(format!("bad key: {}", e.body_text())))?;
    // A URL client (curl, browsers, reqwest) removes `.` and `..` path segments, `%2E` included,
    // before sending: a key written by a raw client under such a name could never be read back.
    if key == "." || key == ".." {
        return Err(Error::InvalidInput(format!(
            "the key {key:?} is a URL dot segment, which HTTP clients remove from the path; \
             choose another key"
        )));
    }
    if key.len() > super::MAX_KEY_BYTES {
        return Err(Error::KeyTooLong(format!(
            "the key is {} bytes; at most {} are allowed",
            key.len(),
            super::MAX_KEY_BYTES
        )));
    }
    Ok(key)
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    path: std::result::Result<Path<String>, PathRejection>,
    params: std::result::Result<Query<ReadParams>, QueryRejection>,
) -> Response {
    let (key, params) = match (key(path), params) {
        (Ok(key), Ok(Query(params))) => (key, params),
        (Err(e), _) => return error_response(e),
        (_, Err(e)) => {
            return error_response(Error::InvalidInput(format!(
                "bad query string: {}",
                e.body_text()
            )));
        }
    };
    if let Some(removed) = state.gateway.removed() {
        return error_response(removed);
    }
    let index = match params.consistency.as_deref() {
        None | Some("linearizable") => match state.gateway.linearize().await {
            Ok(index) => Some(index),
            Err(e) => return error_response(e),
        },
        // Possibly stale: whatever this node has applied, without asking anyone.
        Some("local") => None,
        Some(other) => {
            return error_response(Error::InvalidInput(format!(
                "consistency must be \"linearizable\" (default) or \"local\", not {other:?}"
            )));
        }
    };
    let applied = state
        .gateway
        .raft
        .metrics()
        .borrow_watched()
        .last_applied
        .map(|l| l.index);
    let value = state.kv.read().get(&key).cloned();
    let applied = applied
        .max(index)
        .map(|i| i.to_string())
        .unwrap_or_default();
    match value {
        Some(list) => (
            StatusCode::OK,
            [("raft-applied-index", applied)],
            axum::Json(list),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [
                ("raft-applied-index", applied),
                (
                    header::CONTENT_TYPE.as_str(),
                    "text/plain; charset=utf-8".into(),
                ),
            ],
            format!("key {key:?} not found\n"),
        )
            .into_response(),
    }
}

pub async fn post(
    State(state): State<Arc<AppState>>,
    path: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let command = match key(path).and_then(|key| parse_write(key, &headers, body)) {
        Ok(command) => command,
        Err(e) => return error_response(e),
    };
    match state.gateway.write(command).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error_response(e),
    }
}

/// Validates a write request; every refusal says what was wrong.
fn parse_write(
    key: String,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Command> {
    let Value::Object(fields) = json_body(headers, body)? else {
        return Err(Error::InvalidInput(
            r#"the body must be a JSON object like {"type":"PUT","value":["a"]}"#.into(),
        ));
    };
    let value = fields.get("value");
    match fields.get("type").and_then(Value::as_str) {
        Some("PUT") => {
            let strings = value.and_then(Value::as_array).and_then(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            });
            let values = strings.ok_or_else(|| {
                Error::InvalidInput(r#"PUT needs "value": a list of strings"#.into())
            })?;
            Ok(Command::Put { key, values })
        }
        Some("APPEND") => {
            let value = value
                .and_then(Value::as_str)
                .ok_or_else(|| Error::InvalidInput(r#"APPEND needs "value": a string"#.into()))?;
            Ok(Command::Append {
                key,
                value: value.to_owned(),
            })
        }
        Some(other) => Err(Error::InvalidInput(format!(
            r#""type" must be "PUT" or "APPEND", not {other:?}"#
        ))),
        None => Err(Error::InvalidInput(
            r#"missing "type": "PUT" or "APPEND""#.into(),
        )),
    }
}

/// The body of a request that must be JSON: checks the content type (when one is given) and the
/// size limit, then parses it.
pub(super) fn json_body(
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Value> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let ct = content_type.to_str().unwrap_or("").to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(Error::UnsupportedMediaType(format!(
                "the body must be JSON (Content-Type: application/json), not {mime:?}"
            )));
        }
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            Error::TooLarge(format!("the body exceeds {} bytes", super::MAX_BODY_BYTES))
        }
        _ => Error::InvalidInput(format!("cannot read the body: {e}")),
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::InvalidInput(format!("the body is not valid JSON: {e}")))
}
