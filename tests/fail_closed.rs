//! Black-box tests of issue 10 ("fail closed at every edge") over HTTP against the real
//! binary: browser and network refusals (415, 403 Host/Origin, 413 on a declared length, 431),
//! input refusals naming the field, each a problem+json with no event logged; observation time;
//! and operator-owned inventory fields surviving a restart.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // Tests of the shell read the wall clock.

mod binary_support;

use binary_support::{Api, Steward, fast_config, temp_dir};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{Read, Write};

/// The sequence number the event log has reached.
async fn log_end(api: &Api) -> u64 {
    api.ok("/v1/events?after=0&limit=1000").await["next"].as_u64().unwrap()
}

/// Sends only a request head declaring a 100 GB body and returns the status line.
fn declared_huge_body(url: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100000000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

fn assert_problem(answer: &binary_support::Answer, status: u16, field: Option<&str>) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.content_type, "application/problem+json", "{answer:?}");
    if let Some(field) = field {
        assert_eq!(answer.body["field"], field, "{answer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_rules_and_refusals_change_nothing() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    api.wait_ready().await;
    let before = log_end(&api).await;
    let run = json!({"operation": {"kind": "power_on"}, "selector": {"racks": ["rack-001"]}});

    // A form post from a web page: not JSON.
    let form = api
        .request(Method::POST, "/v1/runs")
        .header("content-type", "text/plain")
        .body(run.to_string());
    assert_problem(&api.send(form).await, 415, None);
    // DNS rebinding: a foreign Host in tokenless mode.
    let rebind = api.request(Method::GET, "/v1/runs").header("host", "evil.example");
    assert_problem(&api.send(rebind).await, 403, None);
    // Another origin may not mutate.
    let cross =
        api.request(Method::POST, "/v1/runs").header("origin", "http://evil.example").json(&run);
    assert_problem(&api.send(cross).await, 403, None);
    // A declared body over the limit is refused before it is read; an over-long URL is a 431.
    assert!(declared_huge_body(&steward.url).contains("413"), "413 on the declared length");
    let long = api.get(&format!("/v1/components?rack={}", "x".repeat(20_000))).await;
    assert_problem(&long, 431, None);

    // Input refusals, each naming the field.
    let dots = json!({"racks": [{"id": "..", "name": "x"}]});
    assert_problem(&api.post("/v1/inventory", &dots).await, 400, Some("racks[0].id"));
    let nul = json!([{"component_id": "a\u{0}b", "controller_state": "Ready"}]);
    assert_problem(&api.post("/v1/observations", &nul).await, 400, Some("[0].component_id"));
    let future = json!([{"component_id": "rack-001-compute-01", "controller_state": "Ready",
                         "observed_at": "2999-01-01T00:00:00Z"}]);
    assert_problem(&api.post("/v1/observations", &future).await, 400, Some("[0].observed_at"));
    let typo = api.get("/v1/components?service_state=maintenence").await;
    assert_problem(&typo, 400, Some("service_state"));
    let long_id = api.get(&format!("/v1/racks/{}", "r".repeat(129))).await;
    assert_problem(&long_id, 400, Some("id"));
    let mut no_kinds = run.clone();
    no_kinds["selector"]["kinds"] = json!([]);
    assert_problem(&api.post("/v1/runs", &no_kinds).await, 400, Some("selector.kinds"));
    let mut window = run.clone();
    window["policy"] = json!({"maintenance_windows": [{"start": "22:00", "end": "22:00"}]});
    let refused = api.post("/v1/runs", &window).await;
    assert_problem(&refused, 400, Some("policy.maintenance_windows[0].end"));
    let mut soak = run.clone();
    soak["policy"] = json!({"soak_seconds": 18_446_744_073_709_551_615u64});
    assert_problem(&api.post("/v1/runs", &soak).await, 400, Some("policy.soak_seconds"));
    let mut states = run.clone();
    states["policy"] = json!({"allowed_service_states": ["maintenence"]});
    let refused = api.post("/v1/runs", &states).await;
    assert_problem(&refused, 400, Some("policy.allowed_service_states[0]"));

    assert_eq!(log_end(&api).await, before, "no refusal logged an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_observations_never_read_fresh_and_stale_shows_in_metrics() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("status_max_age_seconds = 600", "", ""));
    let api = steward.api();
    api.wait_ready().await;
    let old = json!([{"component_id": "rack-006-compute-01", "controller_state": "Failed/X",
                      "observed_at": "2001-01-01T00:00:00Z"}]);
    let answer = api.post("/v1/observations", &old).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let component = api.ok("/v1/components/rack-006-compute-01").await;
    assert_eq!(component["status"]["phase"], "ready", "an older observation is ignored");
    let metrics = api.get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("steward_components{phase=\"stale\"}"), "{text}");
    assert!(
        text.contains("steward_observations_ignored_total{reason=\"out_of_order\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_operator_names_and_labels() {
    let dir = temp_dir();
    let config = fast_config("", "", "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    let rack = json!({"racks": [{"id": "rack-001", "name": "canary rack",
                                "labels": {"pool": "canary"}}]});
    assert_eq!(api.post("/v1/inventory", &rack).await.status, 200);
    assert!(steward.stop().success());

    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    let rack: Value = api.ok("/v1/racks/rack-001").await;
    assert_eq!(rack["name"], "canary rack", "{rack}");
    assert_eq!(rack["labels"]["pool"], "canary", "{rack}");
    let matched = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_on"}, "selector": {"labels": {"pool": "canary"}},
                    "dry_run": true}),
        )
        .await;
    assert_eq!(
        matched.status, 200,
        "the label still selects the rack after a restart: {matched:?}"
    );
}
