//! Who may change the cluster (add, promote, remove servers) over HTTP. With an admin token
//! (`--admin-token-file`), every such request needs `Authorization: Bearer TOKEN`, loopback
//! included, compared in constant time. Without one, they are accepted only from this machine
//! (a loopback peer): anyone who can reach an HTTP port could otherwise take a cluster of five
//! down to one in seconds (issue 19: a fuzzer did exactly that). Data requests and
//! `/admin/status` are not guarded; forwarding between nodes goes over the Raft transport, which
//! the cluster secret protects.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::{AppState, error_response};
use crate::config::AdminToken;
use crate::error::{Error, Result};

/// Middleware on the membership routes: refuses, with 401 or 403 and a reason, before anything
/// changes.
pub async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match admit(state.admin_token.as_ref(), peer, header) {
        Ok(()) => next.run(request).await,
        Err(e) => error_response(e),
    }
}

/// Whether a membership change from `peer` with this `Authorization` header may go ahead.
pub fn admit(
    token: Option<&AdminToken>,
    peer: Option<SocketAddr>,
    header: Option<&str>,
) -> Result<()> {
    let Some(token) = token else {
        let loopback = peer.is_some_and(|p| p.ip().to_canonical().is_loopback());
        return if loopback {
            Ok(())
        } else {
            let from = peer.map_or("an unknown address".into(), |p| p.ip().to_string());
            Err(Error::Forbidden(format!(
                "membership changes are accepted only from this machine (loopback), not from \
                 {from}, unless the node runs with --admin-token-file"
            )))
        };
    };
    let Some(header) = header else {
        return Err(Error::Unauthorized(
            "membership changes need the cluster's admin token: Authorization: Bearer TOKEN \
             (raftkv member --admin-token-file FILE sends it)"
                .into(),
        ));
    };
    let given = header.strip_prefix("Bearer ").unwrap_or("").trim();
    if bool::from(given.as_bytes().ct_eq(token.secret().as_bytes())) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "the admin token is wrong: nothing changed".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn without_a_token_only_loopback_may_change_the_cluster() {
        assert!(admit(None, at("127.0.0.1"), None).is_ok());
        assert!(admit(None, at("::1"), None).is_ok());
        assert!(admit(None, at("::ffff:127.0.0.1"), None).is_ok());
        for outside in ["10.0.0.5", "192.168.1.20", "::ffff:10.0.0.5"] {
            let e = admit(None, at(outside), Some("Bearer x")).unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)), "{outside}: {e}");
            assert!(e.to_string().contains("--admin-token-file"));
        }
        assert!(
            admit(None, None, None).is_err(),
            "an unknown peer is not trusted"
        );
    }

    #[test]
    fn with_a_token_everyone_needs_it_loopback_included() {
        let token = AdminToken::new("s3cret-token").unwrap();
        let token = Some(&token);
        let missing = admit(token, at("127.0.0.1"), None).unwrap_err();
        assert!(matches!(missing, Error::Unauthorized(_)), "{missing}");
        for wrong in [
            "Bearer nope",
            "Bearer s3cret-toke",
            "Basic s3cret-token",
            "",
        ] {
            let e = admit(token, at("127.0.0.1"), Some(wrong)).unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)), "{wrong:?}: {e}");
        }
        assert!(admit(token, at("127.0.0.1"), Some("Bearer s3cret-token")).is_ok());
        assert!(admit(token, at("10.0.0.5"), Some("Bearer s3cret-token")).is_ok());
    }
}
