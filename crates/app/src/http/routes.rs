//! Route table and handlers of API.md §2. Each handler parses its input (errors name the field),
//! calls one [`steward_runtime::Handle`] method with the caller's name as initiator, and serializes the
//! answer.

use super::ApiState;
use super::auth::Caller;
use super::problem::{Problem, parse_body, parse_optional_body, parse_value};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use steward_proto::{
    AdvanceRequest, ComponentId, InventoryUpsert, Observation, RackId, ReasonRequest, RerunRequest,
    RunId, RunPolicy, RunRequest, ServiceStateRequest,
};
use steward_runtime::{ComponentFilter, CreateRunOutcome};
use steward_state_machine::{Machine, RunMachine, TargetMachine, TaskMachine, TransitionTable};

type ApiResult = Result<Response, Problem>;

/// Longest long-poll wait on `/v1/events`.
const MAX_EVENTS_WAIT_SECONDS: u64 = 60;
/// Default and largest page size of `/v1/events`.
const DEFAULT_EVENTS_LIMIT: u32 = 100;
const MAX_EVENTS_LIMIT: u32 = 1000;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/inventory", post(inventory))
        .route("/v1/racks", get(racks))
        .route("/v1/racks/{id}", get(rack))
        .route("/v1/components", get(components))
        .route("/v1/components/{id}", get(component))
        .route("/v1/components/{id}/service-state", post(set_service_state))
        .route("/v1/components/{id}/history", get(history))
        .route("/v1/observations", post(observations))
        .route("/v1/runs", post(create_run).get(runs))
        .route("/v1/runs/{id}", get(run))
        .route("/v1/runs/{id}/targets", get(targets))
        .route("/v1/runs/{id}/pause", post(pause))
        .route("/v1/runs/{id}/resume", post(resume))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/advance", post(advance))
        .route("/v1/runs/{id}/rerun", post(rerun))
        .route("/v1/events", get(events))
        .route("/v1/machines/{name}", get(machine))
}

fn json_ok(value: impl serde::Serialize) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn inventory(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult {
    let inventory: InventoryUpsert = parse_body(&body)?;
    json_ok(state.handle.upsert_inventory(inventory, &caller.name).await?)
}

async fn racks(State(state): State<ApiState>) -> ApiResult {
    json_ok(state.handle.racks().await?)
}

async fn rack(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    json_ok(state.handle.rack(RackId::new(id)).await?)
}

async fn components(
    State(state): State<ApiState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let object: serde_json::Map<String, Value> = query
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let filter: ComponentFilter = parse_value(Value::Object(object))?;
    json_ok(state.handle.components(filter).await?)
}

async fn component(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    json_ok(state.handle.component(ComponentId::new(id)).await?)
}

async fn set_service_state(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
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

async fn history(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    json_ok(state.handle.history(ComponentId::new(id)).await?)
}

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

async fn runs(State(state): State<ApiState>) -> ApiResult {
    json_ok(state.handle.runs().await?)
}

async fn run(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    json_ok(state.handle.run(RunId::new(id)).await?)
}

async fn targets(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    json_ok(state.handle.targets(RunId::new(id)).await?)
}

async fn pause(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.pause_run(RunId::new(id), request.reason, &caller.name).await?)
}

async fn resume(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let _request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.resume_run(RunId::new(id), &caller.name).await?)
}

async fn cancel(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: ReasonRequest = parse_optional_body(&body)?;
    json_ok(state.handle.cancel_run(RunId::new(id), request.reason, &caller.name).await?)
}

async fn advance(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: AdvanceRequest = parse_optional_body(&body)?;
    json_ok(state.handle.advance_run(RunId::new(id), request.expected_wave, &caller.name).await?)
}

async fn rerun(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
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
