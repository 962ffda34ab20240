//! Administrative corrections: `POST /v1/components/{id}/service-state/force` moves a component
//! to any state of the service table, bypassing the transitions, with a required note recorded
//! in the history as `forced: NOTE` (role admin). It is the way out when a new site table drops
//! a state some components are in: the server refuses to start with that table until they are
//! moved.

use super::ApiState;
use super::auth::Caller;
use super::problem::{Problem, parse_body};
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Response};
use steward_proto::{ComponentId, ForceServiceStateRequest};

/// `POST /v1/components/{id}/service-state/force`.
#[utoipa::path(post, path = "/v1/components/{id}/service-state/force", tag = "service states",
    params(("id" = String, Path, description = "Component id")),
    request_body(content = ForceServiceStateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The component in the forced state",
            body = steward_proto::ComponentView),
        (status = 400, description = "Invalid body (an empty note, a state the table lacks)"),
        (status = 404, description = "No such component")))]
pub async fn force_service_state(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let request: ForceServiceStateRequest = parse_body(&body)?;
    if request.to.as_str().is_empty() {
        return Err(Problem::validation(Some("to".into()), "must name a service state"));
    }
    if request.note.trim().is_empty() {
        return Err(Problem::validation(Some("note".into()), "must say why (it is audited)"));
    }
    let view = state
        .handle
        .force_service_state(ComponentId::new(id), request.to, request.note, &caller.name)
        .await?;
    Ok(axum::Json(view).into_response())
}
