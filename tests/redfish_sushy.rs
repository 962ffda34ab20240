//! Black-box tests of `steward serve` with the Redfish adapter against real sushy-emulator
//! processes: discovery and import, a power_cycle over three racks that survives a SIGKILL of
//! steward with at most one Reset per key and system (counted in the emulators' request logs),
//! and an emulator killed mid-life whose components go unknown, never ready.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod binary_support;
mod redfish_support;

use binary_support::{Steward, temp_dir};
use redfish_support::{Emulator, available, steward_config};
use serde_json::{Value, json};
use std::time::Duration;

fn phases(components: &Value) -> Vec<String> {
    components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.pointer("/status/phase").and_then(Value::as_str).unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cycle_over_three_racks_survives_sigkill_and_sends_each_reset_once() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let emulators: Vec<Emulator> =
        (1..=3).map(|n| Emulator::start(&dir.path().join(format!("bmc{n}")), n, 4, "On")).collect();
    let refs: Vec<&Emulator> = emulators.iter().collect();
    let config = steward_config(dir.path(), &refs, "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(api.wait_ready().await, 12, "every emulated system imported and ready");

    let run = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_cycle"},
                    "selector": {"racks": ["rack-001", "rack-002", "rack-003"]},
                    "policy": {"max_parallel_racks": 3}}),
        )
        .await;
    assert_eq!(run.status, 201, "{run:?}");
    let id =
        run.body.pointer("/run/id").or(run.body.get("id")).unwrap().as_str().unwrap().to_string();

    // SIGKILL steward as soon as the first Reset has reached an emulator.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while emulators.iter().all(|e| e.uuids.iter().all(|u| e.resets(u) == 0)) {
        assert!(std::time::Instant::now() < deadline, "no Reset was ever sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(steward);

    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    let done = api
        .wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(120), |run| {
            run["status"] == "completed" || run["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "completed", "{done:#}");
    for emulator in &emulators {
        for uuid in &emulator.uuids {
            assert_eq!(emulator.power_state(uuid).as_deref(), Some("On"), "{uuid}");
            let resets = emulator.resets(uuid);
            assert!(resets <= 1, "{uuid} got {resets} Reset POSTs");
        }
    }
    steward.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_is_verified_and_a_dead_bmc_makes_its_components_unknown() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let mut dead = Emulator::start(&dir.path().join("bmc1"), 11, 2, "On");
    let alive = Emulator::start(&dir.path().join("bmc2"), 12, 2, "On");
    let config = steward_config(dir.path(), &[&dead, &alive], "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(api.wait_ready().await, 4);

    let run = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_off"}, "selector": {"racks": ["rack-002"]}}),
        )
        .await;
    assert_eq!(run.status, 201, "{run:?}");
    let id =
        run.body.pointer("/run/id").or(run.body.get("id")).unwrap().as_str().unwrap().to_string();
    let done = api
        .wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(90), |run| {
            run["status"] == "completed" || run["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "completed", "{done:#}");
    for uuid in &alive.uuids {
        assert_eq!(alive.power_state(uuid).as_deref(), Some("Off"), "verified on the emulator");
        assert_eq!(alive.resets(uuid), 1);
    }

    dead.kill();
    let components = api
        .wait_for("/v1/components?rack=rack-001", Duration::from_secs(30), |body| {
            let phases = phases(body);
            !phases.is_empty() && phases.iter().all(|p| p == "unknown")
        })
        .await;
    assert!(phases(&components).iter().all(|p| p != "ready"));
    steward.stop();
}
