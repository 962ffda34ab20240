//! Visible webhooks (role admin): `GET /v1/webhooks` lists each configured webhook with its
//! backlog, parked count, last success and last failure with its error (never its URL or
//! secret); `POST /v1/webhooks/{name}/redeliver` requeues the webhook's parked deliveries and
//! answers `{"requeued": N}`.

use super::ApiState;
use super::auth::Caller;
use super::problem::Problem;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

/// The two routes, to merge into the API router.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/webhooks", get(list))
        .route("/v1/webhooks/{name}/redeliver", post(redeliver))
}

/// `GET /v1/webhooks`.
async fn list(State(state): State<ApiState>) -> Result<Response, Problem> {
    Ok(Json(state.handle.webhooks().await?).into_response())
}

/// `POST /v1/webhooks/{name}/redeliver`.
async fn redeliver(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let requeued = state.handle.redeliver_webhook(&name, &caller.name).await?;
    Ok(Json(json!({ "webhook": name, "requeued": requeued })).into_response())
}
