//! The one error type of the library, named by what the caller can do about it. `api` maps it to an
//! HTTP status in exactly one place (`api::error_response`); everything below returns it.
//! Conversions from openraft and io errors live next to the code that meets them.

use std::io;

/// What went wrong, from the client's point of view.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; retrying it unchanged cannot help.
    #[error("{0}")]
    InvalidInput(String),
    /// No resource at this path (an unknown route, or an empty key: `/keys/`).
    #[error("{0}")]
    NotFound(String),
    /// The request body is not JSON (wrong Content-Type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body is larger than the documented limit.
    #[error("{0}")]
    TooLarge(String),
    /// The key is longer than the documented limit.
    #[error("{0}")]
    KeyTooLong(String),
    /// The request conflicts with the cluster's state (e.g. removing the last voter, promoting a
    /// server that is not a member); retrying it unchanged cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// No leader with a live quorum could take the request; nothing was applied. Retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request was proposed but its fate is unknown (no answer before the deadline). A retry
    /// with a new request may apply it twice; the node already retried with the same request id.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// This node stopped (fatal Raft error, or it is shutting down).
    #[error("node stopped: {0}")]
    Stopped(String),
    /// The node refuses to start with this configuration or data directory.
    #[error("{0}")]
    Config(String),
    /// A membership change without the admin token the node requires.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A membership change with a wrong token, or from another machine to a node without one.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Local storage failed.
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
