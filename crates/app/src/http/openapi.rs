//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of this server, generated (utoipa) from the
//! route list in `routes.rs` and the Rust types the handlers parse and answer with.
//!
//! Paths and bodies come from each handler's `#[utoipa::path]`; request and response schemas from
//! `ToSchema` on the `steward-proto` types (its `openapi` feature). What every route shares is
//! added here after generation, from the same code the server runs: the role each operation
//! needs (`x-steward-role`, from [`auth::required_role`]), the bearer security requirement, and
//! the 401/403/default problem+json answers.
//!
//! A few answers are types of the engine crates, which do not compile utoipa; they are described
//! by mirror types below, kept in step by the tests at the bottom.

use super::auth::{self, PUBLIC_NOTE};
use super::problem::{PROBLEM_JSON, Problem};
use axum::Extension;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use steward_proto::{ComponentView, EventRecord, FieldError, Rack, Run, Target};
use utoipa::{OpenApi, ToSchema};

/// The generated document as JSON text, built once when the router is built.
#[derive(Clone, Debug)]
pub struct Document(pub Arc<String>);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "Lifecycle control plane for data-center fleets. Every error is \
            `application/problem+json`. Auth: `Authorization: Bearer TOKEN`; each operation's \
            `x-steward-role` names the least role it needs (viewer < operator < admin). Without \
            configured tokens the server serves loopback clients only, as admin."
    ),
    components(schemas(Problem, FieldError))
)]
struct ApiDoc;

/// Completes the document generated from the route list and renders it as JSON.
pub fn document(generated: utoipa::openapi::OpenApi) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(generated);
    let mut value = serde_json::to_value(&doc).unwrap_or(Value::Null);
    annotate(&mut value);
    Document(Arc::new(value.to_string()))
}

/// Adds roles, security and the shared problem+json answers to every operation.
fn annotate(doc: &mut Value) {
    let bearer = json!({"type": "http", "scheme": "bearer", "description": "A configured token"});
    doc["components"]["securitySchemes"] = json!({ "bearer": bearer });
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            annotate_operation(&method, path, operation);
        }
    }
}

fn annotate_operation(method: &Method, path: &str, operation: &mut Value) {
    let problem = |description: &str| {
        json!({"description": description,
               "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    };
    problem_content(&mut operation["responses"]);
    operation["responses"]["default"] =
        problem("Any other error (unknown route 404, 405, 413, 415, 5xx)");
    if auth::is_public(path) {
        operation["x-steward-role"] = json!("none");
        operation["security"] = json!([{}]);
        let note = format!("{PUBLIC_NOTE}\n\n{}", operation["description"].as_str().unwrap_or(""));
        operation["description"] = json!(note.trim());
        return;
    }
    let role = auth::required_role(method, path);
    operation["x-steward-role"] = json!(role.as_str());
    operation["security"] = json!([{"bearer": []}]);
    operation["responses"]["401"] = problem("Missing or invalid bearer token");
    operation["responses"]["403"] =
        problem(&format!("The token's role is below `{}`", role.as_str()));
}

/// Every error answer a handler documents without a body is problem+json: the handlers' error
/// type is [`Problem`], so the annotations name only status and meaning.
fn problem_content(responses: &mut Value) {
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, response) in responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response.get("content").is_none() {
            response["content"] =
                json!({PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}});
        }
    }
}

/// This server's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
pub(super) async fn serve(Extension(document): Extension<Document>) -> Response {
    let mut response = document.0.as_str().to_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `POST /v1/inventory` answer (mirror of `steward_runtime::InventorySummary`).
#[derive(Serialize, ToSchema)]
pub(super) struct InventorySummary {
    /// Racks in the document.
    racks: usize,
    /// Components in the document.
    components: usize,
}

/// `GET /v1/racks/{id}` answer (mirror of `steward_runtime::RackDetail`).
#[derive(Serialize, ToSchema)]
pub(super) struct RackDetail {
    /// The rack.
    #[serde(flatten)]
    rack: Rack,
    /// Its components with status and service state.
    components: Vec<ComponentView>,
}

/// `POST /v1/runs` answer with `dry_run` (mirror of `steward_runtime::DryRun`).
#[derive(Serialize, ToSchema)]
pub(super) struct DryRun {
    /// Always true.
    dry_run: bool,
    /// The run as it would be created.
    run: Run,
    /// Its targets in dispatch order, each with the hold it would have now.
    targets: Vec<Target>,
}

/// `GET /v1/events` answer (mirror of `steward_runtime::EventsPage`).
#[derive(Serialize, ToSchema)]
pub(super) struct EventsPage {
    /// Events after the requested seq, oldest first.
    events: Vec<EventRecord>,
    /// The seq to ask after next time.
    next: u64,
}

/// `POST /v1/observations` answer.
#[derive(Serialize, ToSchema)]
pub(super) struct ObservationSummary {
    /// Observations in the request.
    received: usize,
    /// How many changed a component.
    changed: usize,
}

/// One transition (mirror of `steward_state_machine::Transition`).
#[derive(Serialize, ToSchema)]
pub(super) struct TransitionDoc {
    /// Status before.
    from: String,
    /// Event kind.
    event: String,
    /// Status after.
    to: String,
}

/// `GET /v1/machines/{name}` answer (mirror of `steward_state_machine::TransitionTable`).
#[derive(Serialize, ToSchema)]
#[schema(as = TransitionTable)]
pub(super) struct TransitionTableDoc {
    /// Machine name.
    machine: String,
    /// Initial status.
    initial: String,
    /// Every status.
    states: Vec<String>,
    /// Absorbing statuses.
    terminal: Vec<String>,
    /// Every event kind.
    events: Vec<String>,
    /// Legal transitions.
    transitions: Vec<TransitionDoc>,
}

/// `GET /v1/webhooks` item (mirror of `steward_runtime::WebhookView`).
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookView)]
pub(super) struct WebhookViewDoc {
    /// The webhook's name.
    name: String,
    /// Notification kinds it receives (empty: all).
    events: Vec<String>,
    /// Undelivered deliveries still being tried.
    backlog: u64,
    /// Deliveries parked (dead letters) after `webhook_max_attempts` failed attempts.
    parked: u64,
    /// The last 2xx answer.
    last_success_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last failed attempt.
    last_failure_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its error (kept after a later success).
    last_error: Option<String>,
}

/// `POST /v1/webhooks/{name}/redeliver` answer.
#[derive(Serialize, ToSchema)]
pub(super) struct RedeliverAnswer {
    /// The webhook.
    pub(super) webhook: String,
    /// How many parked deliveries were requeued.
    pub(super) requeued: u64,
}

/// The property names a schema of the document declares (`$ref`s and `allOf` followed).
pub fn schema_properties(doc: &Value, schema: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/components/schemas/");
        return schema_properties(doc, &doc["components"]["schemas"][name]);
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(schema_properties(doc, part));
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        out.extend(properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use steward_proto::{Location, RackId};
    use steward_state_machine::Machine;

    fn doc() -> Value {
        let (_, generated) = super::super::routes::api().split_for_parts();
        serde_json::from_str(&document(generated).0).unwrap()
    }

    fn keys(value: &Value) -> Vec<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn schema_keys(doc: &Value, name: &str) -> Vec<String> {
        let schema = json!({"$ref": format!("#/components/schemas/{name}")});
        schema_properties(doc, &schema).into_keys().collect()
    }

    #[test]
    fn is_openapi_3_1_with_roles_on_every_operation() {
        let doc = doc();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let role = operation["x-steward-role"].as_str().unwrap_or_default();
                assert!(!role.is_empty(), "{method} {path} has no role");
                assert!(operation["responses"]["default"].is_object(), "{method} {path}");
            }
        }
        assert_eq!(doc["paths"]["/v1/inventory"]["post"]["x-steward-role"], "admin");
        assert_eq!(doc["paths"]["/v1/runs"]["post"]["x-steward-role"], "operator");
        assert_eq!(doc["paths"]["/v1/runs"]["get"]["x-steward-role"], "viewer");
        assert_eq!(doc["paths"]["/"]["get"]["x-steward-role"], "none");
        assert_eq!(doc["paths"]["/v1/webhooks"]["get"]["x-steward-role"], "admin");
        let redeliver = &doc["paths"]["/v1/webhooks/{name}/redeliver"]["post"];
        assert_eq!(redeliver["x-steward-role"], "admin");
    }

    #[test]
    fn mirrors_match_the_engine_types() {
        let doc = doc();
        let summary = steward_runtime::InventorySummary { racks: 1, components: 2 };
        let mut expected = keys(&serde_json::to_value(summary).unwrap());
        expected.sort();
        assert_eq!(schema_keys(&doc, "InventorySummary"), expected);
        let page = steward_runtime::EventsPage { events: vec![], next: 0 };
        assert_eq!(schema_keys(&doc, "EventsPage"), keys(&serde_json::to_value(page).unwrap()));
        let rack = Rack {
            id: RackId::new("r"),
            name: "r".into(),
            location: Location::default(),
            labels: BTreeMap::new(),
        };
        let detail = steward_runtime::RackDetail { rack, components: vec![] };
        let mut expected = keys(&serde_json::to_value(detail).unwrap());
        expected.sort();
        assert_eq!(schema_keys(&doc, "RackDetail"), expected);
        let table =
            super::super::routes::machine_table("run", &steward_state_machine::RunMachine::table());
        let mut expected = keys(&serde_json::to_value(table.unwrap()).unwrap());
        expected.sort();
        assert_eq!(schema_keys(&doc, "TransitionTable"), expected);
        let webhook = steward_runtime::WebhookView {
            name: "ops".into(),
            events: vec![],
            stats: steward_runtime::store::WebhookStats::default(),
        };
        let mut expected = keys(&serde_json::to_value(webhook).unwrap());
        expected.sort();
        assert_eq!(schema_keys(&doc, "WebhookView"), expected);
    }

    #[test]
    fn problem_schema_names_the_problem_fields() {
        let doc = doc();
        let names = schema_keys(&doc, "Problem");
        for field in ["type", "title", "status", "detail", "field", "allowed", "errors"] {
            assert!(names.contains(&field.to_string()), "{field} missing from {names:?}");
        }
    }
}
