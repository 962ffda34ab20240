//! Route table and handlers of API.md §2. Each handler parses its input (errors name the field),
//! calls one [`steward_runtime::Handle`] method with the caller's name as initiator, and serializes the
//! answer.

use super::auth::Caller;
use super::openapi::{
    DryRun, EventsPage, InventorySummary, ObservationSummary, RackDetail, TransitionTableDoc,
};
use super::params::{ValidId, check_rack_filter, check_service_state};
use super::problem::{Problem, parse_body, parse_optional_body, parse_value};
use super::{ApiState, events_stream, openapi, page};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use steward_proto::{
    AdvanceRequest, ComponentId, ComponentKind, ComponentView, HistoryEntry, InventoryUpsert,
    Observation, Phase, Rack, RackId, ReasonRequest, RerunRequest, Run, RunId, RunPolicy,
    RunRequest, ServiceStateRequest, Target,
};
use steward_runtime::{ComponentFilter, CreateRunOutcome};
use steward_state_machine::{Machine, RunMachine, TargetMachine, TaskMachine, TransitionTable};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Response, Problem>;

/// Longest long-poll wait on `/v1/events`.
const MAX_EVENTS_WAIT_SECONDS: u64 = 60;
/// Default and largest page size of `/v1/events`.
const DEFAULT_EVENTS_LIMIT: u32 = 100;
const MAX_EVENTS_LIMIT: u32 = 1000;

/// Every route, each from a handler annotated with `#[utoipa::path]`: the one list both the router
/// and `GET /v1/openapi.json` are built from. A new route goes here as `.routes(routes!(handler))`
/// (handlers sharing a path in one `routes!`); a plain `.route()` would serve it undocumented,
/// which `tests/openapi.rs` refuses.
pub(super) fn api() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(page::index))
        .routes(routes!(page::asset))
        .routes(routes!(openapi::serve))
        .routes(routes!(super::health::healthz))
        .routes(routes!(super::health::readyz))
        .routes(routes!(metrics))
        .routes(routes!(inventory))
        .routes(routes!(racks))
        .routes(routes!(rack))
        .routes(routes!(components))
        .routes(routes!(component))
        .routes(routes!(set_service_state))
        .routes(routes!(super::admin::force_service_state))
        .routes(routes!(super::webhooks::list))
        .routes(routes!(super::webhooks::redeliver))
        .routes(routes!(history))
        .routes(routes!(observations))
        .routes(routes!(create_run, runs))
        .routes(routes!(run))
        .routes(routes!(targets))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(advance))
        .routes(routes!(rerun))
        .routes(routes!(events))
        .routes(routes!(events_stream::stream))
        .routes(routes!(machine))
}

fn json_ok(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus/OpenMetrics text", body = String,
        content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<ApiState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

#[utoipa::path(post, path = "/v1/inventory", tag = "inventory",
    request_body(content = InventoryUpsert, content_type = "application/json"),
    responses((status = 200, description = "Counts of what was upserted", body = InventorySummary),
        (status = 400, description = "Invalid document; `field` names the offending field")))]
async fn inventory(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let inventory: InventoryUpsert = parse_body(&body)?;
    json_ok(state.handle.upsert_inventory(inventory, &caller.name).await?)
}

#[utoipa::path(get, path = "/v1/racks", tag = "inventory",
    responses((status = 200, description = "Every rack", body = Vec<Rack>)))]
async fn racks(State(state): State<ApiState>) -> ApiResult {
    json_ok(state.handle.racks().await?)
}

#[utoipa::path(get, path = "/v1/racks/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Rack id")),
    responses((status = 200, description = "The rack with its components", body = RackDetail),
        (status = 404, description = "No such rack")))]
async fn rack(State(state): State<ApiState>, ValidId(id): ValidId) -> ApiResult {
    json_ok(state.handle.rack(RackId::new(id)).await?)
}

#[utoipa::path(get, path = "/v1/components", tag = "inventory",
    params(("rack" = Option<String>, Query, description = "Only this rack"),
        ("kind" = Option<ComponentKind>, Query, description = "Only this kind"),
        ("phase" = Option<Phase>, Query, description = "Only this (effective) phase"),
        ("service_state" = Option<String>, Query, description = "Only this service state")),
    responses((status = 200, description = "Matching components", body = Vec<ComponentView>),
        (status = 400, description = "Invalid filter")))]
async fn components(
    State(state): State<ApiState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let object: serde_json::Map<String, Value> = query
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if let Some(Value::String(rack)) = object.get("rack") {
        check_rack_filter(rack)?;
    }
    if let Some(Value::String(service_state)) = object.get("service_state") {
        check_service_state(&state.service_table, service_state)?;
    }
    let filter: ComponentFilter = parse_value(Value::Object(object))?;
    json_ok(state.handle.components(filter).await?)
}

#[utoipa::path(get, path = "/v1/components/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Component id")),
    responses((status = 200, description = "The component", body = ComponentView),
        (status = 404, description = "No such component")))]
async fn component(State(state): State<ApiState>, ValidId(id): ValidId) -> ApiResult {
    json_ok(state.handle.component(ComponentId::new(id)).await?)
}

#[utoipa::path(post, path = "/v1/components/{id}/service-state", tag = "service states",
    params(("id" = String, Path, description = "Component id")),
    request_body(content = ServiceStateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The component in its new state", body = ComponentView),
        (status = 400, description = "Invalid body"),
        (status = 404, description = "No such component"),
        (status = 409, description = "Illegal transition; `allowed` lists the legal targets")))]
async fn set_service_state(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let request: ServiceStateRequest = parse_body(&body)?;
    if request.to.as_str().is_empty() {
        return Err(Problem::validation(Some("to".into()), "must name a service state"));
    }
    let view = state
        .handle
        .set_service_state(ComponentId::new(id), request.to, request.note, &caller.name)
        .await?;
    json_ok(view)
}

#[utoipa::path(get, path = "/v1/components/{id}/history", tag = "service states",
    params(("id" = String, Path, description = "Component id")),
    responses(
        (status = 200, description = "History, oldest first", body = Vec<HistoryEntry>),
        (status = 404, description = "No such component")))]
async fn history(State(state): State<ApiState>, ValidId(id): ValidId) -> ApiResult {
    json_ok(state.handle.history(ComponentId::new(id)).await?)
}

#[utoipa::path(post, path = "/v1/observations", tag = "inventory",
    request_body(content = Vec<Observation>, content_type = "application/json"),
    responses((status = 200, description = "How many observations arrived and changed a status",
            body = ObservationSummary),
        (status = 400, description = "Invalid observation")))]
async fn observations(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let observations: Vec<Observation> = parse_body(&body)?;
    let received = observations.len();
    let changed = state.handle.observe(observations, &caller.name).await?;
    json_ok(json!({"received": received, "changed": changed}))
}

#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    request_body(content = RunRequest, content_type = "application/json",
        description = "Unset policy fields take the server's configured defaults"),
    responses((status = 201, description = "The run, created and started", body = Run),
        (status = 200, description = "`dry_run`: the planned run, nothing created", body = DryRun),
        (status = 400, description = "Invalid request or policy")))]
async fn create_run(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let request: RunRequest = parse_body(&body)?;
    let request = request.with_base_policy(RunPolicy::clone(&state.default_policy));
    if let Err(errors) = request.policy.validate("policy") {
        return Err(steward_runtime::CommandError::Invalid(errors).into());
    }
    match state.handle.create_run(request, &caller.name).await? {
        CreateRunOutcome::Created(run) => {
            let location = format!("/v1/runs/{}", run.id);
            let mut response = (StatusCode::CREATED, axum::Json(run)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(response)
        }
        CreateRunOutcome::DryRun(plan) => json_ok(plan),
    }
}

#[utoipa::path(get, path = "/v1/runs", tag = "runs",
    responses((status = 200, description = "Every run, newest first", body = Vec<Run>)))]
async fn runs(State(state): State<ApiState>) -> ApiResult {
    json_ok(state.handle.runs().await?)
}

#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = Run),
        (status = 404, description = "No such run")))]
async fn run(State(state): State<ApiState>, ValidId(id): ValidId) -> ApiResult {
    json_ok(state.handle.run(RunId::new(id)).await?)
}

#[utoipa::path(get, path = "/v1/runs/{id}/targets", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "Targets in dispatch order, with holds", body = Vec<Target>),
        (status = 404, description = "No such run")))]
async fn targets(State(state): State<ApiState>, ValidId(id): ValidId) -> ApiResult {
    json_ok(state.handle.targets(RunId::new(id)).await?)
}

#[utoipa::path(post, path = "/v1/runs/{id}/pause", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses((status = 200, description = "The run after the command", body = Run),
        (status = 404, description = "No such run"),
        (status = 409, description = "Not allowed from the run's status")))]
async fn pause(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.pause_run(RunId::new(id), request.reason, &caller.name).await?)
}

#[utoipa::path(post, path = "/v1/runs/{id}/resume", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses((status = 200, description = "The run after the command", body = Run),
        (status = 404, description = "No such run"),
        (status = 409, description = "Not allowed from the run's status")))]
async fn resume(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let _request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.resume_run(RunId::new(id), &caller.name).await?)
}

#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<ReasonRequest>, content_type = "application/json"),
    responses((status = 200, description = "The run after the command", body = Run),
        (status = 404, description = "No such run"),
        (status = 409, description = "Not allowed from the run's status")))]
async fn cancel(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.cancel_run(RunId::new(id), request.reason, &caller.name).await?)
}

#[utoipa::path(post, path = "/v1/runs/{id}/advance", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Option<AdvanceRequest>, content_type = "application/json"),
    responses((status = 200, description = "The run with its next wave open", body = Run),
        (status = 404, description = "No such run"),
        (status = 409, description = "Not paused at a wave gate, or another wave")))]
async fn advance(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let request: AdvanceRequest = parse_optional_body(&body)?;
    json_ok(state.handle.advance_run(RunId::new(id), request.expected_wave, &caller.name).await?)
}

#[utoipa::path(post, path = "/v1/runs/{id}/rerun", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = RerunRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The new run over the finished run's failed (and skipped)
            targets, linked both ways", body = Run),
        (status = 400, description = "Nothing to rerun"),
        (status = 404, description = "No such run"),
        (status = 409, description = "The run has not finished")))]
async fn rerun(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ValidId(id): ValidId,
    body: Bytes,
) -> ApiResult {
    let request: RerunRequest = parse_optional_body(&body)?;
    let run = state.handle.rerun_run(RunId::new(id), request.failed_only, &caller.name).await?;
    let location = format!("/v1/runs/{}", run.id);
    let mut response = (StatusCode::CREATED, axum::Json(run)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

fn query_number(query: &BTreeMap<String, String>, key: &str) -> Result<Option<u64>, Problem> {
    match query.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Problem::validation(
                Some(key.to_string()),
                format!("{key}={text:?} is not a non-negative integer"),
            )
        }),
    }
}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("after" = Option<u64>, Query, description = "Events after this seq (default 0)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1..=1000 (default 100)"),
        ("wait" = Option<u64>, Query, description = "Long-poll this many seconds (max 60)")),
    responses((status = 200, description = "A page of the event log", body = EventsPage),
        (status = 400, description = "Invalid query parameter")))]
async fn events(
    State(state): State<ApiState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> ApiResult {
    if let Some(unknown) = query.keys().find(|k| !matches!(k.as_str(), "after" | "limit" | "wait"))
    {
        return Err(Problem::validation(
            Some(unknown.clone()),
            format!("unknown query parameter `{unknown}`, expected after, limit or wait"),
        ));
    }
    let after = query_number(&query, "after")?.unwrap_or(0);
    let limit = query_number(&query, "limit")?
        .map_or(DEFAULT_EVENTS_LIMIT, |l| u32::try_from(l).unwrap_or(u32::MAX))
        .clamp(1, MAX_EVENTS_LIMIT);
    let wait = query_number(&query, "wait")?.unwrap_or(0).min(MAX_EVENTS_WAIT_SECONDS);
    json_ok(state.handle.events(after, limit, Duration::from_secs(wait)).await?)
}

/// The transition table of a machine by name.
pub fn machine_table(name: &str, service: &TransitionTable) -> Option<TransitionTable> {
    match name {
        "service" | "service_state" => Some(service.clone()),
        "run" => Some(RunMachine::table()),
        "target" => Some(TargetMachine::table()),
        "task" => Some(TaskMachine::table()),
        _ => None,
    }
}

#[utoipa::path(get, path = "/v1/machines/{name}", tag = "machines",
    params(("name" = String, Path, description = "service, run, target or task"),
        ("format" = Option<String>, Query, description = "json (default), mermaid or table")),
    responses((status = 200, description = "The transition table", body = TransitionTableDoc),
        (status = 200, description = "mermaid/table", body = String, content_type = "text/plain"),
        (status = 404, description = "No such machine"),
        (status = 400, description = "Unknown format")))]
async fn machine(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let Some(table) = machine_table(&name, &state.service_table) else {
        return Err(Problem::not_found(format!(
            "machine {name:?} not found; machines: service, run, target, task"
        )));
    };
    match query.get("format").map(String::as_str).unwrap_or("json") {
        "json" => json_ok(table),
        "mermaid" => Ok(text(table.to_mermaid())),
        "table" => Ok(text(table.to_plain_table())),
        other => Err(Problem::validation(
            Some("format".into()),
            format!("format {other:?} is not one of json, mermaid, table"),
        )),
    }
}

fn text(body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_fills_missing_keys_only() {
        let defaults = RunPolicy { max_parallel_racks: 4, max_attempts: 2, ..RunPolicy::default() };
        let body = json!({"operation": {"kind": "power_on"}, "selector": {"all": true},
                          "policy": {"max_attempts": 3}});
        let request: RunRequest = serde_json::from_value(body).expect("a valid request");
        let merged = request.with_base_policy(defaults.clone()).policy;
        assert_eq!((merged.max_parallel_racks, merged.max_attempts), (4, 3));
        let bare = json!({"operation": {"kind": "power_on"}, "selector": {"all": true}});
        let request: RunRequest = serde_json::from_value(bare).expect("a valid request");
        assert_eq!(request.with_base_policy(defaults.clone()).policy, defaults);
    }

    #[test]
    fn machines_by_name() {
        let service = TransitionTable {
            machine: "service".into(),
            initial: "in_service".into(),
            states: vec![],
            terminal: vec![],
            events: vec![],
            transitions: vec![],
        };
        for name in ["service", "run", "target", "task"] {
            assert!(machine_table(name, &service).is_some(), "{name}");
        }
        assert!(machine_table("nope", &service).is_none());
    }
}
