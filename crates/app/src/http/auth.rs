//! Bearer-token authentication and role checks.
//!
//! Tokens come from config as SHA-256 hashes with a role each. `viewer` may GET, `operator` may
//! also create and steer runs, set service states and push observations, `admin` may also import
//! inventory, force service states and see and requeue webhook deliveries (`/v1/webhooks`, GET
//! included). Without any configured token the server is loopback-only and every caller is an
//! admin named `local`. The caller's name becomes the initiator recorded in the event log.

use super::problem::Problem;
use crate::config::{Role, TokenConfig, find_token};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// Initiator name used when no tokens are configured.
pub const LOCAL_INITIATOR: &str = "local";

/// Who made a request: the initiator recorded for its effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Token name (or `local`).
    pub name: String,
    /// The token's role.
    pub role: Role,
}

/// The configured tokens.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    tokens: Vec<TokenConfig>,
}

impl Auth {
    /// Auth over these tokens (none: loopback-only, everyone admin).
    pub fn new(tokens: Vec<TokenConfig>) -> Self {
        Self { tokens }
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller a presented token stands for.
    fn token(&self, presented: &str) -> Option<Caller> {
        find_token(&self.tokens, presented).map(|t| Caller { name: t.name.clone(), role: t.role })
    }
}

/// What the OpenAPI document says of the routes anyone may GET.
pub const PUBLIC_NOTE: &str = "Public: the status page and its assets hold no data (the page \
    fetches everything with the viewer's token), so a browser can load them without a header.";

/// Whether a path is served without a token: `/healthz`, the status page and its assets.
pub fn is_public(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path == "/" || path.starts_with("/ui/")
}

/// The role a request needs.
pub fn required_role(method: &Method, path: &str) -> Role {
    if path == "/v1/webhooks" || path.starts_with("/v1/webhooks/") {
        Role::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else if path == "/v1/inventory" || path.ends_with("/service-state/force") {
        Role::Admin
    } else {
        Role::Operator
    }
}

/// Middleware: authenticates, checks the role, and stores the [`Caller`] in the request.
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let caller = if auth.enabled() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(presented) = presented else {
            return Problem::unauthorized("missing `Authorization: Bearer TOKEN` header")
                .into_response();
        };
        match auth.token(presented) {
            Some(caller) => caller,
            None => return Problem::unauthorized("the bearer token is not valid").into_response(),
        }
    } else {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        if let Some(peer) = peer
            && !peer.ip().is_loopback()
        {
            return Problem::forbidden(format!(
                "no tokens are configured, so only loopback clients are served (not {peer})"
            ))
            .into_response();
        }
        Caller { name: LOCAL_INITIATOR.to_string(), role: Role::Admin }
    };
    let needed = required_role(request.method(), &path);
    if caller.role < needed {
        return Problem::forbidden(format!(
            "token {:?} has role {}, but {} {} needs {}",
            caller.name,
            caller.role.as_str(),
            request.method(),
            path,
            needed.as_str()
        ))
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hash_token;

    #[test]
    fn roles_per_route() {
        assert_eq!(required_role(&Method::GET, "/v1/inventory"), Role::Viewer);
        assert_eq!(required_role(&Method::POST, "/v1/inventory"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/v1/runs"), Role::Operator);
        assert_eq!(required_role(&Method::GET, "/v1/webhooks"), Role::Admin);
        assert_eq!(required_role(&Method::POST, "/v1/webhooks/ops/redeliver"), Role::Admin);
        assert_eq!(required_role(&Method::GET, "/v1/webhooksx"), Role::Viewer);
        assert_eq!(required_role(&Method::POST, "/v1/observations"), Role::Operator);
        assert_eq!(
            required_role(&Method::POST, "/v1/components/c1/service-state/force"),
            Role::Admin
        );
    }

    #[test]
    fn token_lookup_by_hash() {
        let auth = Auth::new(vec![TokenConfig {
            name: "ops".into(),
            role: Role::Operator,
            sha256: hash_token("t0k3n"),
        }]);
        assert_eq!(auth.token("t0k3n").map(|c| c.name), Some("ops".to_string()));
        assert!(auth.token("nope").is_none());
    }
}
