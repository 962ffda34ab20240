//! The HTTP API (axum) over a [`Handle`]: every route of API.md §2, bearer-token auth with roles,
//! problem+json errors, a 4 MiB body limit, browser and network safety ([`guard`]), `/healthz`
//! and `/readyz` (`health.rs`) and Prometheus `/metrics`.
//!
//! The server is a thin translation layer: it parses and validates JSON (errors name the field),
//! passes the caller's token name as the initiator, and maps [`steward_runtime::CommandError`]s to
//! statuses. It never touches state itself.

// A `Problem` is built at most once per request, on the error path; boxing it buys nothing.
#![allow(clippy::result_large_err)]

mod admin;
pub mod auth;
mod events_stream;
pub mod guard;
mod health;
pub mod openapi;
mod page;
mod params;
pub mod problem;
mod routes;
pub mod server;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use steward_runtime::Handle;
use steward_runtime::Metrics;
use steward_state_machine::TransitionTable;

pub use auth::{Auth, Caller, LOCAL_INITIATOR};
pub use problem::{PROBLEM_JSON, Problem};
pub use server::{ServeError, Server};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Everything the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The runtime's handle.
    pub handle: Handle,
    /// Metrics to encode on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Token configuration.
    pub auth: Arc<Auth>,
    /// The site's default policy: every run request's policy is laid over it.
    pub default_policy: Arc<steward_proto::RunPolicy>,
    /// The service-state machine's table as this server runs it (site table or default).
    pub service_table: Arc<TransitionTable>,
    /// The runtime's liveness and readiness (`/healthz`, `/readyz`).
    pub health: steward_runtime::Health,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The router with every route, auth, the body limit and problem+json for every error.
pub fn router(state: ApiState) -> Router {
    let auth = state.auth.clone();
    let (routes, generated) = routes::api().split_for_parts();
    routes
        .with_state(state)
        .layer(axum::Extension(openapi::document(generated)))
        .layer(axum::middleware::from_fn_with_state(auth.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(auth, guard::guard))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(problemize))
        .layer(axum::middleware::from_fn(access_log))
}

/// Logs every request at debug level (errors at info) with its status and latency.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    #[allow(clippy::disallowed_methods)] // Latency of a request, for the log only.
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if status >= 400 {
        tracing::info!(%method, %path, status, micros, "request refused");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    response
}

/// Turns any error response that is not problem+json yet (unknown route, wrong method, a
/// rejected extractor, an over-long body) into one.
async fn problemize(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let mut detail = String::from_utf8_lossy(&body).trim().to_string();
    if detail.is_empty() {
        detail = status.canonical_reason().unwrap_or("error").to_string();
    }
    let slug = match status.as_u16() {
        404 => "not-found",
        405 => "method-not-allowed",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        431 => "header-too-large",
        400 | 422 => "validation",
        _ => "error",
    };
    let mut problem = Problem::new(status, slug, detail);
    if status.as_u16() == 422 {
        problem.status = 400;
    }
    let mut response = problem.into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
