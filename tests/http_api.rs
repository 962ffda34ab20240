//! Black-box tests of the HTTP API: the real `steward` binary on a loopback port with a temp
//! database, driven over HTTP. Covers every route of API.md §2, problem+json errors (400 naming
//! the field, 404, 409 with `allowed`, 413, 401/403 per role), a run's full lifecycle with waves,
//! pause/resume/cancel/advance, a safety gate tripping, dry runs, the event long-poll and
//! `/metrics`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // Tests of the shell read the wall clock.

mod binary_support;

use binary_support::{Steward, examples, fast_config, temp_dir};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use steward_app::config::hash_token;

fn items(value: &Value) -> &Vec<Value> {
    value.as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_a_full_run_lifecycle() {
    let dir = temp_dir();
    // power_cycle always fails in this sim: the safety-gate run uses it.
    let config = fast_config("", "failure_rate = { power_cycle = 1.0 }", "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();

    // Liveness and inventory.
    let health = api.get("/healthz").await;
    assert_eq!((health.status, health.body.clone()), (200, json!({"status": "ok"})));
    let racks = api.ok("/v1/racks").await;
    assert_eq!(items(&racks).len(), 6, "the sim fleet is imported at start");
    let rack = api.ok("/v1/racks/rack-001").await;
    assert_eq!(rack["id"], "rack-001");
    assert_eq!(items(&rack["components"]).len(), 8);
    assert!(rack["components"][0]["service_state"].is_string());
    assert_eq!(api.get("/v1/racks/nope").await.status, 404);
    assert_eq!(api.wait_ready().await, 48);

    // Component filters and one component.
    let computes = api.ok("/v1/components?rack=rack-001&kind=compute").await;
    assert_eq!(items(&computes).len(), 4);
    let ready = api.ok("/v1/components?phase=ready&service_state=in_service").await;
    assert_eq!(items(&ready).len(), 48);
    let bad = api.get("/v1/components?phase=sleepy").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.content_type, "application/problem+json");
    let one = api.ok("/v1/components/rack-001-compute-01").await;
    assert_eq!(one["status"]["phase"], "ready");
    assert_eq!(one["status"]["blocked_operations"], json!([]));
    let missing = api.get("/v1/components/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["status"], 404);
    assert!(missing.body["type"].is_string() && missing.body["title"].is_string());

    // Inventory upsert (admin) and observations.
    let inventory = std::fs::read(examples().join("inventory.json")).unwrap();
    let imported = api.post_raw("/v1/inventory", inventory).await;
    assert_eq!(imported.status, 200, "{imported:?}");
    assert_eq!(imported.body["racks"], 3);
    let observed = api
        .post(
            "/v1/observations",
            &json!([{"component_id": "rack-006-compute-01", "controller_state": "Failed/Unknown"}]),
        )
        .await;
    assert_eq!(observed.status, 200, "{observed:?}");
    assert_eq!(observed.body["changed"], 1);
    let bad_observation = api.post("/v1/observations", &json!([{"component_id": "x"}])).await;
    assert_eq!(bad_observation.status, 400);
    assert_eq!(bad_observation.body["field"], "[0].controller_state");

    // Service states: accepted transitions, history, and a 409 naming what is allowed.
    let path = "/v1/components/rack-001-node-01/service-state";
    let moved = api.post(path, &json!({"to": "maintenance", "note": "swap PSU"})).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_eq!(moved.body["service_state"], "maintenance");
    let illegal =
        api.post("/v1/components/rack-002-node-01/service-state", &json!({"to": "rma"})).await;
    assert_eq!(illegal.status, 409);
    assert_eq!(illegal.content_type, "application/problem+json");
    assert_eq!(illegal.body["allowed"], json!(["maintenance"]));
    assert_eq!(api.post(path, &json!({"to": "in_service"})).await.status, 200);
    let history = api.ok("/v1/components/rack-001-node-01/history").await;
    let history = items(&history);
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0]["from"].as_str(), history[0]["to"].as_str()),
        (Some("in_service"), Some("maintenance"))
    );
    assert_eq!(history[0]["note"], "swap PSU");
    assert_eq!(history[0]["initiator"], "local");
    let unknown_field = api.post(path, &json!({"to": "maintenance", "colour": "red"})).await;
    assert_eq!((unknown_field.status, unknown_field.body["field"].as_str()), (400, Some("colour")));

    // Bad run requests: 400 naming the field.
    let bad_policy = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_on"}, "selector": {"all": true},
                    "policy": {"waves": {"percentage": [10, 20]}}}),
        )
        .await;
    assert_eq!(bad_policy.status, 400, "{bad_policy:?}");
    assert_eq!(bad_policy.body["field"], "policy.waves.percentage");
    let typo = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_on"}, "selector": {"all": true},
                    "policy": {"max_paralel_racks": 2}}),
        )
        .await;
    assert_eq!((typo.status, typo.body["field"].as_str()), (400, Some("policy.max_paralel_racks")));
    let no_targets = api
        .post("/v1/runs", &json!({"operation": {"kind": "power_on"}, "selector": {"racks": []}}))
        .await;
    assert_eq!(no_targets.status, 400, "{no_targets:?}");

    // Dry run: planned waves, targets and holds; nothing created.
    let firmware = json!({"kind": "firmware_update", "version": "2.0.0"});
    let dry = api
        .post(
            "/v1/runs",
            &json!({"operation": firmware, "selector": {"racks": ["rack-001", "rack-002", "rack-003", "rack-004"]},
                    "policy": {"waves": {"count": [1, 1]}, "max_parallel_racks": 2}, "dry_run": true}),
        )
        .await;
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(items(&dry.body["run"]["waves"]).len(), 3);
    assert_eq!(items(&dry.body["targets"]).len(), 4);
    assert!(items(&dry.body["targets"]).iter().any(|t| t["hold"]["gate"] == "wave"));
    assert_eq!(items(&api.ok("/v1/runs").await).len(), 0, "a dry run creates nothing");

    // A run with three waves: wave gates, advance, operator pause and resume.
    let created = api
        .post(
            "/v1/runs",
            &json!({"name": "fw", "operation": firmware,
                    "selector": {"racks": ["rack-001", "rack-002", "rack-003", "rack-004"]},
                    "policy": {"waves": {"count": [1, 1]}, "max_parallel_racks": 2}}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.headers["location"].to_str().unwrap(), format!("/v1/runs/{id}"));
    let paused = api.wait_run(&id, "paused", Some("wave_gate")).await;
    assert_eq!(paused["current_wave"], 1);
    assert_eq!(paused["counts"]["completed"], 1);
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    let targets = items(&targets);
    assert_eq!(targets.len(), 4);
    for target in targets {
        for key in [
            "id",
            "rack_id",
            "wave",
            "status",
            "attempt",
            "task_id",
            "message",
            "hold",
            "updated_at",
        ] {
            assert!(target.get(key).is_some(), "target lacks {key}: {target}");
        }
    }
    assert!(targets.iter().filter(|t| t["status"] == "pending").all(|t| t["hold"].is_object()));
    let advanced = api.post(&format!("/v1/runs/{id}/advance"), &json!({})).await;
    assert_eq!(advanced.status, 200, "{advanced:?}");
    assert_eq!(advanced.body["status"], "running");
    let advance_again = api.post(&format!("/v1/runs/{id}/advance"), &json!({})).await;
    assert_eq!(advance_again.status, 409, "{advance_again:?}");
    assert!(advance_again.body["allowed"].is_array());
    let pause = api.post(&format!("/v1/runs/{id}/pause"), &json!({"reason": "lunch"})).await;
    assert_eq!(pause.status, 200, "{pause:?}");
    assert_eq!(
        (pause.body["status"].as_str(), pause.body["status_reason"].as_str()),
        (Some("paused"), Some("operator_paused"))
    );
    assert_eq!(api.post(&format!("/v1/runs/{id}/pause"), &json!({})).await.status, 409);
    let resumed = api.post(&format!("/v1/runs/{id}/resume"), &Value::Null).await;
    assert_eq!(resumed.status, 400, "a JSON null body is not an object: {resumed:?}");
    let resumed = api.post_raw(&format!("/v1/runs/{id}/resume"), Vec::new()).await;
    assert_eq!(resumed.status, 200, "an empty body is fine: {resumed:?}");
    api.wait_run(&id, "paused", Some("wave_gate")).await;
    assert_eq!(api.post(&format!("/v1/runs/{id}/advance"), &json!({})).await.status, 200);
    let done = api.wait_run(&id, "completed", None).await;
    assert_eq!(done["counts"]["completed"], 4);
    assert!(done["finished_at"].is_string() && done["started_at"].is_string());
    assert_eq!(api.post(&format!("/v1/runs/{id}/cancel"), &json!({})).await.status, 409);

    // A safety gate trips on failures; resume acknowledges them; cancel ends the run.
    let gated = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_cycle"}, "selector": {"racks": ["rack-005", "rack-006"]},
                    "policy": {"safety_gates": [{"failure_count": {"max": 1}, "scope": "run"}]}}),
        )
        .await;
    assert_eq!(gated.status, 201, "{gated:?}");
    let gid = gated.body["id"].as_str().unwrap().to_string();
    let tripped = api.wait_run(&gid, "paused", Some("safety_gate")).await;
    assert!(tripped["status_message"].as_str().unwrap().contains("safety gate"), "{tripped}");
    assert_eq!(tripped["counts"]["failed"], 1);
    let resumed = api.post(&format!("/v1/runs/{gid}/resume"), &json!({})).await;
    assert_eq!((resumed.status, resumed.body["status"].as_str()), (200, Some("running")));
    let cancelled = api.post(&format!("/v1/runs/{gid}/cancel"), &json!({"reason": "enough"})).await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["status"], "cancelled");
    let resume_cancelled = api.post(&format!("/v1/runs/{gid}/resume"), &json!({})).await;
    assert_eq!(resume_cancelled.status, 409);
    // Every target failing ends the run `failed`; `run watch` exits 3 for it.
    let doomed = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_cycle"}, "selector": {"racks": ["rack-004"]}}),
        )
        .await;
    assert_eq!(doomed.status, 201, "{doomed:?}");
    let did = doomed.body["id"].as_str().unwrap().to_string();
    let (code, out, err) = binary_support::outcome(&steward.cli(&["run", "watch", &did]));
    assert_eq!(code, 3, "{out} {err}");
    assert_eq!(api.ok(&format!("/v1/runs/{did}")).await["status"], "failed");
    let runs = api.ok("/v1/runs").await;
    assert_eq!(items(&runs).len(), 3);
    assert_eq!(api.get("/v1/runs/run-999").await.status, 404);
    assert_eq!(api.get("/v1/runs/run-999/targets").await.status, 404);

    // /metrics: Prometheus text with run counters.
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap().to_string();
    for needle in [
        "steward_events_applied",
        "steward_runs",
        "steward_run_status_changes",
        "steward_targets",
        "steward_plan_duration_seconds",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(text.contains("status=\"completed\""), "{text}");

    // Events: pages, `next`, and a long-poll that wakes on a new event.
    let page = api.ok("/v1/events?after=0&limit=5").await;
    let events = items(&page["events"]);
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["seq"], 1);
    for key in ["seq", "at", "kind", "data"] {
        assert!(events[0].get(key).is_some());
    }
    assert_eq!(page["next"], 5);
    let all = api.ok("/v1/events?after=0&limit=1000").await;
    let last = all["next"].as_u64().unwrap();
    let kinds: Vec<&str> =
        items(&all["events"]).iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.len() > 10, "{kinds:?}");
    let started = Instant::now();
    let empty = api.ok(&format!("/v1/events?after={}&wait=1", last + 1000)).await;
    assert!(items(&empty["events"]).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900), "wait=1 waits");
    let poller = {
        let api = api.clone();
        tokio::spawn(async move { api.ok(&format!("/v1/events?after={last}&wait=20")).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    assert_eq!(api.post(path, &json!({"to": "maintenance"})).await.status, 200);
    let woke = poller.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!items(&woke["events"]).is_empty());
    assert!(woke["events"][0]["seq"].as_u64().unwrap() > last);
    assert_eq!(api.get("/v1/events?after=x").await.status, 400);

    // Machines.
    let run_machine = api.ok("/v1/machines/run").await;
    assert!(!items(&run_machine["transitions"]).is_empty());
    let service = api.ok("/v1/machines/service").await;
    assert!(items(&service["states"]).iter().any(|s| s == "maintenance"));
    for name in ["target", "task"] {
        assert_eq!(api.get(&format!("/v1/machines/{name}?format=json")).await.status, 200);
    }
    let mermaid = api.get("/v1/machines/target?format=mermaid").await;
    assert!(mermaid.body.as_str().unwrap().starts_with("stateDiagram-v2"));
    assert_eq!(api.get("/v1/machines/nope").await.status, 404);

    // Limits and unknown routes: always problem+json.
    let url = steward.url.clone();
    let too_large = tokio::task::spawn_blocking(move || {
        binary_support::raw_oversized_post(&url, "/v1/inventory", 5 * 1024 * 1024)
    })
    .await
    .unwrap();
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    assert!(
        too_large.to_ascii_lowercase().contains("content-type: application/problem+json"),
        "{too_large}"
    );
    let not_json = api.post_raw("/v1/runs", b"{nope".to_vec()).await;
    assert_eq!(
        (not_json.status, not_json.content_type.as_str()),
        (400, "application/problem+json")
    );
    let unknown = api.get("/v1/nothing-here").await;
    assert_eq!((unknown.status, unknown.content_type.as_str()), (404, "application/problem+json"));

    assert!(steward.stop().success(), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_roles() {
    let dir = temp_dir();
    let tables = format!(
        "[[tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n\
         [[tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        hash_token("viewer-secret"),
        hash_token("operator-secret"),
        hash_token("admin-secret")
    );
    let tables = format!("{tables}[default_policy]\nmax_parallel_racks = 3\nmax_attempts = 2\n");
    let steward = Steward::start(dir.path(), &fast_config("", "", &tables));
    let anonymous = steward.api();
    let viewer = steward.api_with("viewer-secret");
    let operator = steward.api_with("operator-secret");
    let admin = steward.api_with("admin-secret");
    let forged = steward.api_with("guess");

    assert_eq!(anonymous.get("/healthz").await.status, 200, "liveness needs no token");
    let missing = anonymous.get("/v1/racks").await;
    assert_eq!((missing.status, missing.content_type.as_str()), (401, "application/problem+json"));
    assert_eq!(forged.get("/v1/racks").await.status, 401);
    assert_eq!(viewer.get("/v1/racks").await.status, 200);
    assert_eq!(viewer.get("/metrics").await.status, 200);

    let run = json!({"operation": {"kind": "power_on"}, "selector": {"racks": ["rack-001"]}, "dry_run": true});
    let denied = viewer.post("/v1/runs", &run).await;
    assert_eq!((denied.status, denied.content_type.as_str()), (403, "application/problem+json"));
    let planned = operator.post("/v1/runs", &run).await;
    assert_eq!(planned.status, 200, "{planned:?}");
    assert_eq!(planned.body["run"]["policy"]["max_parallel_racks"], 3, "config default policy");
    let overridden = json!({"operation": {"kind": "power_on"}, "selector": {"racks": ["rack-001"]},
                            "policy": {"max_attempts": 1}, "dry_run": true});
    let planned = operator.post("/v1/runs", &overridden).await;
    assert_eq!(planned.body["run"]["policy"]["max_attempts"], 1, "the request wins");
    assert_eq!(planned.body["run"]["policy"]["max_parallel_racks"], 3);

    let inventory = std::fs::read(binary_support::examples().join("inventory.json")).unwrap();
    assert_eq!(operator.post_raw("/v1/inventory", inventory.clone()).await.status, 403);
    assert_eq!(viewer.post_raw("/v1/inventory", inventory.clone()).await.status, 403);
    assert_eq!(admin.post_raw("/v1/inventory", inventory).await.status, 200);

    let path = "/v1/components/rack-001-compute-01/service-state";
    assert_eq!(viewer.post(path, &json!({"to": "maintenance"})).await.status, 403);
    assert_eq!(
        operator.post(path, &json!({"to": "maintenance", "note": "by ops"})).await.status,
        200
    );
    let history = viewer.ok("/v1/components/rack-001-compute-01/history").await;
    assert_eq!(history[0]["initiator"], "ops", "the token's name is the initiator");
    let events = viewer.ok("/v1/events?after=0&limit=1000").await;
    assert!(
        items(&events["events"]).iter().any(|e| e["data"].to_string().contains("\"ops\"")),
        "the initiator is in the event log"
    );

    // The CLI sends its token; without one it is refused with exit 1.
    let (code, out, err) =
        binary_support::outcome(&steward.cli(&["--token", "viewer-secret", "racks", "list"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rack-001"));
    let (code, _, err) = binary_support::outcome(&steward.cli(&["racks", "list"]));
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = binary_support::outcome(&steward.cli(&[
        "--token",
        "viewer-secret",
        "service",
        "set",
        "rack-001-node-01",
        "maintenance",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("403"), "{err}");
    assert!(steward.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_tables_from_config() {
    let dir = temp_dir();
    let tables = "[service_states]\ninitial = \"in_service\"\n\
                  states = [\"in_service\", \"drained\", \"repair\"]\n\
                  [service_states.transitions]\nin_service = [\"drained\"]\n\
                  drained = [\"in_service\", \"repair\"]\nrepair = [\"drained\"]\n\
                  [phase_mapping.words.compute]\nFrobnicating = \"in_use\"\n\
                  [phase_mapping.blocked]\nin_use = [\"power_control\"]\n\
                  [[planner.conflict_rules]]\nname = \"firmware_anywhere\"\n\
                  a = { operations = [\"firmware_update\"] }\nverdict = \"compatible\"\n";
    // Core's own sync would overwrite the pushed observation with a newer one (the newest
    // observation wins), so this test keeps Core quiet after the first sync.
    let config =
        fast_config("", "", tables).replace("sync_interval_ms = 100", "sync_interval_ms = 600000");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();

    let service = api.ok("/v1/machines/service").await;
    assert_eq!(service["states"], json!(["in_service", "drained", "repair"]));
    let path = "/v1/components/rack-001-node-01/service-state";
    let refused = api.post(path, &json!({"to": "maintenance"})).await;
    assert_eq!(refused.status, 409, "the default table is replaced: {refused:?}");
    assert_eq!(refused.body["allowed"], json!(["drained"]));
    assert_eq!(api.post(path, &json!({"to": "drained"})).await.status, 200);
    assert_eq!(api.post(path, &json!({"to": "repair"})).await.status, 200);

    let observed = api
        .post(
            "/v1/observations",
            &json!([{"component_id": "rack-002-compute-01", "controller_state": "Frobnicating/x"}]),
        )
        .await;
    assert_eq!(observed.status, 200, "{observed:?}");
    let component = api.ok("/v1/components/rack-002-compute-01").await;
    assert_eq!(component["status"]["phase"], "in_use", "the site word maps to in_use");
    assert_eq!(component["status"]["blocked_operations"], json!(["power_control"]));

    // The tables, conflict rules included, are in the event log (replay needs no config).
    let events = api.ok("/v1/events?after=0&limit=1000").await;
    let applied: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "site_tables_applied")
        .collect();
    assert_eq!(applied.len(), 1, "{events:#}");
    let rules = applied[0]["data"]["tables"]["conflict_rules"].clone();
    assert_eq!(rules[0]["name"], "firmware_anywhere", "{:#}", applied[0]);
    assert_eq!(rules[0]["verdict"], "compatible");
    assert!(steward.stop().success());
}
