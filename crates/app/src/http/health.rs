//! Liveness and readiness: `GET /healthz` is 200 while the reducer thread runs and 503 once it
//! has stopped (a supervisor restarts the process); `GET /readyz` is 200 only when the reducer
//! runs and the store took the last commit, otherwise 503 with the reason (`store: disk full`,
//! `store: database locked (retrying)`, `reloading`, `reducer: ...`), so a load balancer stops
//! sending writes while the store refuses them. Neither needs a token.

use super::ApiState;
use super::problem::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET /healthz`.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "The reducer runs", body = Object,
            example = json!({"status": "ok"})),
        (status = 503, description = "The reducer stopped; restart the process")))]
pub async fn healthz(State(state): State<ApiState>) -> Response {
    match state.health.live() {
        Ok(()) => axum::Json(json!({"status": "ok"})).into_response(),
        Err(reason) => unavailable("not-live", reason),
    }
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "The reducer runs and the last commit succeeded", body = Object,
            example = json!({"status": "ready", "last_commit": "2026-11-28T12:00:00Z"})),
        (status = 503, description = "Not ready; `detail` says why (`store: disk full`, ...)")))]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    match state.health.ready() {
        Ok(()) => {
            let last_commit = state.health.last_commit();
            axum::Json(json!({"status": "ready", "last_commit": last_commit})).into_response()
        }
        Err(reason) => unavailable("not-ready", reason),
    }
}

/// 503 problem+json whose `detail` is the reason.
fn unavailable(slug: &str, reason: String) -> Response {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, slug, reason).into_response()
}
