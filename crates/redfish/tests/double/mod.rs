//! A loopback Redfish double for crate-level tests of what sushy-emulator cannot do: a
//! `SimpleUpdate` answered 202 with a task monitor (`Location`) whose task runs for a few polls
//! and ends Completed or Exception, and BMC answers the test holds back (a system's GET, a
//! power change) so a cancel can land at a known point of a task.
//!
//! Systems start `On` with BIOS version 1.0.0. A Reset is recorded and applied at once unless
//! the system's power is held; a SimpleUpdate whose image file name contains "bad" ends in an
//! Exception, any other sets the version named by the file name (`.../{version}.bin`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Polls a task monitor answers 202 (Running) before its task ends.
pub const RUNNING_POLLS: u32 = 2;

#[derive(Debug)]
struct System {
    power: String,
    bios: String,
    hold_get: bool,
    hold_power: bool,
    pending_power: Option<String>,
}

#[derive(Debug)]
struct Monitor {
    system: String,
    version: String,
    polls: u32,
}

#[derive(Debug, Default)]
struct Inner {
    systems: BTreeMap<String, System>,
    posts: Vec<String>,
    monitors: BTreeMap<u32, Monitor>,
    monitor_gets: u32,
    /// Monitors answer without a Task body: 202 empty while running, 204 once done.
    bare_monitors: bool,
}

type Shared = Arc<Mutex<Inner>>;

/// One running double on a loopback port.
pub struct Double {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Double {
    /// Starts a double serving `systems` (their Redfish `Id`s), all On.
    pub async fn start(systems: &[&str]) -> Double {
        let mut inner = Inner::default();
        for id in systems {
            let system = System {
                power: "On".into(),
                bios: "1.0.0".into(),
                hold_get: false,
                hold_power: false,
                pending_power: None,
            };
            inner.systems.insert((*id).to_string(), system);
        }
        let inner = Arc::new(Mutex::new(inner));
        let router = Router::new()
            .route("/redfish/v1", get(root))
            .route("/redfish/v1/Systems", get(systems_collection))
            .route("/redfish/v1/Systems/{id}", get(system))
            .route("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset", post(reset))
            .route("/redfish/v1/UpdateService", get(update_service))
            .route("/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", post(update))
            .route("/redfish/v1/TaskService/TaskMonitors/{n}", get(monitor))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Double { url, inner, server }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Holds (or releases) every GET of system `id` until released.
    pub fn hold_get(&self, id: &str, hold: bool) {
        self.with(|i| i.systems.get_mut(id).unwrap().hold_get = hold);
    }

    /// Holds the power changes of system `id`; releasing applies the pending one.
    pub fn hold_power(&self, id: &str, hold: bool) {
        self.with(|i| {
            let system = i.systems.get_mut(id).unwrap();
            system.hold_power = hold;
            if !hold && let Some(power) = system.pending_power.take() {
                system.power = power;
            }
        });
    }

    /// Task monitors answer without Task bodies (202 empty while running, 204 when done), as
    /// the Redfish specification's plain task monitor does.
    pub fn bare_monitors(&self) {
        self.with(|i| i.bare_monitors = true);
    }

    /// Every POST received, as `Reset {id} {type}` or `SimpleUpdate {image}`.
    pub fn posts(&self) -> Vec<String> {
        self.with(|i| i.posts.clone())
    }

    /// GETs of task monitors received.
    pub fn monitor_gets(&self) -> u32 {
        self.with(|i| i.monitor_gets)
    }

    /// A system's PowerState.
    pub fn power(&self, id: &str) -> String {
        self.with(|i| i.systems[id].power.clone())
    }

    /// A system's BIOS version.
    pub fn bios(&self, id: &str) -> String {
        self.with(|i| i.systems[id].bios.clone())
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn root() -> Json<Value> {
    Json(json!({
        "@odata.id": "/redfish/v1",
        "Id": "RootService",
        "Systems": {"@odata.id": "/redfish/v1/Systems"},
        "UpdateService": {"@odata.id": "/redfish/v1/UpdateService"},
    }))
}

async fn update_service() -> Json<Value> {
    Json(json!({"@odata.id": "/redfish/v1/UpdateService", "Id": "UpdateService"}))
}

async fn systems_collection(State(inner): State<Shared>) -> Json<Value> {
    let members: Vec<Value> = inner
        .lock()
        .unwrap()
        .systems
        .keys()
        .map(|id| json!({"@odata.id": format!("/redfish/v1/Systems/{id}")}))
        .collect();
    Json(json!({"Members@odata.count": members.len(), "Members": members}))
}

async fn system(State(inner): State<Shared>, Path(id): Path<String>) -> Response {
    loop {
        let held = match inner.lock().unwrap().systems.get(&id) {
            None => return StatusCode::NOT_FOUND.into_response(),
            Some(system) => system.hold_get,
        };
        if !held {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let guard = inner.lock().unwrap();
    let Some(system) = guard.systems.get(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    Json(json!({
        "@odata.id": format!("/redfish/v1/Systems/{id}"),
        "Id": id,
        "Name": id,
        "PowerState": system.power,
        "BiosVersion": system.bios,
        "Status": {"State": "Enabled", "Health": "OK"},
        "Actions": {"#ComputerSystem.Reset": {
            "target": format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"),
            "ResetType@Redfish.AllowableValues": ["On", "ForceOff", "ForceRestart"],
        }},
    }))
    .into_response()
}

async fn reset(
    State(inner): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    let kind = body["ResetType"].as_str().unwrap_or_default().to_string();
    let mut guard = inner.lock().unwrap();
    guard.posts.push(format!("Reset {id} {kind}"));
    let Some(system) = guard.systems.get_mut(&id) else { return StatusCode::NOT_FOUND };
    let power = match kind.as_str() {
        "On" | "ForceOn" | "ForceRestart" => "On",
        "ForceOff" | "GracefulShutdown" => "Off",
        _ => return StatusCode::BAD_REQUEST,
    };
    if system.hold_power {
        system.pending_power = Some(power.to_string());
    } else {
        system.power = power.to_string();
    }
    StatusCode::NO_CONTENT
}

async fn update(State(inner): State<Shared>, Json(body): Json<Value>) -> Response {
    let image = body["ImageURI"].as_str().unwrap_or_default().to_string();
    let target = body["Targets"][0].as_str().unwrap_or_default();
    let system = target.rsplit('/').next().unwrap_or_default().to_string();
    let version = image.rsplit('/').next().unwrap_or_default().trim_end_matches(".bin").to_string();
    let mut guard = inner.lock().unwrap();
    guard.posts.push(format!("SimpleUpdate {image}"));
    if !guard.systems.contains_key(&system) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let n = guard.monitors.len() as u32 + 1;
    guard.monitors.insert(n, Monitor { system, version, polls: 0 });
    let mut headers = HeaderMap::new();
    let location = format!("/redfish/v1/TaskService/TaskMonitors/{n}");
    headers.insert(header::LOCATION, location.parse().unwrap());
    (StatusCode::ACCEPTED, headers, Json(task(n, "New", "OK", None))).into_response()
}

fn task(n: u32, state: &str, status: &str, message: Option<&str>) -> Value {
    let messages: Vec<Value> = message.map(|m| json!({"Message": m})).into_iter().collect();
    json!({
        "@odata.id": format!("/redfish/v1/TaskService/Tasks/{n}"),
        "Id": n.to_string(),
        "TaskState": state,
        "TaskStatus": status,
        "Messages": messages,
    })
}

async fn monitor(State(inner): State<Shared>, Path(n): Path<u32>) -> Response {
    let mut guard = inner.lock().unwrap();
    guard.monitor_gets += 1;
    let bare = guard.bare_monitors;
    let Some(monitor) = guard.monitors.get_mut(&n) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    monitor.polls += 1;
    let running = monitor.polls <= RUNNING_POLLS;
    if running && bare {
        return StatusCode::ACCEPTED.into_response();
    }
    if running {
        return (StatusCode::ACCEPTED, Json(task(n, "Running", "OK", None))).into_response();
    }
    if monitor.version.contains("bad") {
        let message = format!("image {} failed signature verification", monitor.version);
        return Json(task(n, "Exception", "Critical", Some(&message))).into_response();
    }
    let (system, version) = (monitor.system.clone(), monitor.version.clone());
    if let Some(system) = guard.systems.get_mut(&system) {
        system.bios = version;
    }
    if bare {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(task(n, "Completed", "OK", None)).into_response()
}
