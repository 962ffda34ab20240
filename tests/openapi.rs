//! `GET /v1/openapi.json` stays in step with the router, both ways.
//!
//! The router and the document are built from one list (`routes()` in
//! `crates/app/src/http/routes.rs`, each handler annotated with `#[utoipa::path]`). This test
//! checks what that construction cannot: against the real server, every documented path answers
//! exactly the documented methods (axum's 405 `Allow` header lists what the router serves there),
//! and no module registers a route outside the list (a plain `.route()` would be undocumented).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod binary_support;

use binary_support::{Steward, fast_config, temp_dir};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// A concrete path for a templated one (`{id}` and friends).
fn concrete(path: &str) -> String {
    path.replace("{name}", "run").replace("{file}", "app.js").replace("{id}", "no-such-id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    let doc = api.ok("/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for expected in ["/", "/v1/events/stream", "/v1/openapi.json", "/v1/runs/{id}/targets"] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let http = reqwest::Client::new();
    for (path, item) in paths {
        let documented: BTreeSet<String> =
            item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        let url = format!("{}{}", steward.url, concrete(path));
        let answer = http.patch(&url).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 405, "PATCH {path}: the router does not serve it");
        let allow = answer.headers()["allow"].to_str().unwrap().to_string();
        let served: BTreeSet<String> = allow
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD" && !m.is_empty())
            .collect();
        assert_eq!(
            served, documented,
            "{path}: router serves {allow}, document says {documented:?}"
        );
        for (method, operation) in item.as_object().unwrap() {
            let role = operation["x-steward-role"].as_str().unwrap_or_default();
            assert!(["none", "viewer", "operator", "admin"].contains(&role), "{method} {path}");
            let default = &operation["responses"]["default"]["content"]["application/problem+json"];
            assert!(default.is_object(), "{method} {path} has no problem+json answer");
        }
    }
    assert!(steward.stop().success());
}

#[test]
fn no_route_is_registered_outside_the_documented_list() {
    let http = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/app/src/http");
    let mut checked = 0;
    for entry in std::fs::read_dir(&http).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for call in [".route(", ".nest(", ".route_service(", ".fallback("] {
                assert!(
                    !code.contains(call),
                    "{}:{}: `{call}` registers a route the OpenAPI document does not list; add \
                     `#[utoipa::path]` to the handler and `.routes(routes!(handler))` in routes.rs",
                    path.display(),
                    number + 1
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 5, "expected the http modules in {}", http.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_after_last_event_id() {
    let dir = temp_dir();
    let steward = Steward::start(dir.path(), &fast_config("", "", ""));
    let api = steward.api();
    api.wait_ready().await;
    let http = reqwest::Client::new();
    let mut response = http
        .get(format!("{}/v1/events/stream", steward.url))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut text = String::new();
    while text.matches("\n\n").count() < 3 {
        let chunk = response.chunk().await.unwrap().expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|id| id.trim().parse().unwrap())
        .collect();
    assert_eq!(&ids[..3], &[3, 4, 5], "{text}");
    let first = text.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
    let record: Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(record["seq"], 3);
    let bad = http
        .get(format!("{}/v1/events/stream", steward.url))
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    drop(response);
    assert!(steward.stop().success());
}
