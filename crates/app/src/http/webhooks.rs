//! Visible webhooks (role admin, GET included): `GET /v1/webhooks` lists each configured webhook
//! with its backlog, parked count, last success and last failure with its error (never its URL
//! or secret); `POST /v1/webhooks/{name}/redeliver` requeues the webhook's parked deliveries and
//! answers `{"webhook", "requeued": N}`. Both routes are in the route list of `routes.rs`.

use super::ApiState;
use super::auth::Caller;
use super::openapi::{RedeliverAnswer, WebhookViewDoc};
use super::problem::Problem;
use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};

/// `GET /v1/webhooks`.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every configured webhook with its delivery state, \
        in config order (never its URL or secret)", body = Vec<WebhookViewDoc>)))]
pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, Problem> {
    Ok(Json(state.handle.webhooks().await?).into_response())
}

/// `POST /v1/webhooks/{name}/redeliver`.
#[utoipa::path(post, path = "/v1/webhooks/{name}/redeliver", tag = "webhooks",
    params(("name" = String, Path, description = "The webhook's configured name")),
    responses((status = 200, description = "How many parked deliveries went back to the queue \
        (0 when none was parked)", body = RedeliverAnswer),
        (status = 404, description = "No webhook has that name")))]
pub(super) async fn redeliver(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let requeued = state.handle.redeliver_webhook(&name, &caller.name).await?;
    Ok(Json(RedeliverAnswer { webhook: name, requeued }).into_response())
}
