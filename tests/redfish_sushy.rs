//! Black-box tests of `steward serve` with the Redfish adapter against real sushy-emulator
//! processes: discovery and import, a power_cycle over three racks that survives a SIGKILL of
//! steward with at most one Reset per key and system (counted in the emulators' request logs),
//! an emulator killed mid-life whose components go unknown, never ready, an emulator SIGKILLed
//! mid-run (its rack fails, the others complete), firmware through a test-side sushy driver that
//! keeps versions (tests/fixtures/sushy_versions.py), and https BMCs (certificates from rcgen):
//! verified against `ca_file`, refused without it, accepted unverified only when
//! `insecure_skip_verify = true` is written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod binary_support;
mod redfish_support;

use binary_support::{BIN, Steward, temp_dir};
use redfish_support::{Emulator, available, steward_config};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    assert_eq!(api.wait_ready_count(12).await, 12, "every emulated system imported and ready");

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
    assert_eq!(api.wait_ready_count(4).await, 4);

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

async fn run_to_end(api: &binary_support::Api, body: Value) -> Value {
    let run = api.post("/v1/runs", &body).await;
    assert_eq!(run.status, 201, "{run:?}");
    let id = run.body["id"].as_str().unwrap().to_string();
    api.wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(90), |run| {
        run["counts"]["completed"].as_u64().unwrap_or(0)
            + run["counts"]["failed"].as_u64().unwrap_or(0)
            == 1
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_update_reads_the_version_back_and_a_failing_image_fails() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let bmc = Emulator::start_with(&dir.path().join("bmc1"), 21, 2, "On", true, false);
    let config = steward_config(dir.path(), &[&bmc], "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(api.wait_ready_count(2).await, 2);

    let good = json!({"operation": {"kind": "firmware_update", "version": "2.0.0"},
                      "selector": {"racks": ["rack-001"]}});
    let run = run_to_end(&api, good).await;
    assert_eq!(run["counts"]["completed"], 1, "{run:#}");
    for uuid in &bmc.uuids {
        assert_eq!(bmc.bios_version(uuid).as_deref(), Some("2.0.0"));
    }
    assert_eq!(bmc.simple_updates(), 2, "one SimpleUpdate per system");

    let bad = json!({"operation": {"kind": "firmware_update", "version": "bad-3.0"},
                     "selector": {"racks": ["rack-001"]}});
    let run = run_to_end(&api, bad).await;
    assert_eq!(run["counts"]["failed"], 1, "{run:#}");
    for uuid in &bmc.uuids {
        assert_eq!(bmc.bios_version(uuid).as_deref(), Some("2.0.0"), "unchanged after a failure");
    }
    assert_eq!(bmc.simple_updates(), 4, "the failing update is not retried within its key");
    steward.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_right_imports_and_wrong_makes_components_unknown_logged_once() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let bmc = Emulator::start_with(&dir.path().join("bmc1"), 31, 2, "Off", false, true);
    let config = steward_config(dir.path(), &[&bmc], "");
    let steward = Steward::start(dir.path(), &config);
    assert_eq!(steward.api().wait_ready_count(2).await, 2, "right password: imported and ready");
    steward.stop();

    std::fs::write(dir.path().join("bmc-password"), "wrong\n").unwrap();
    let config = std::fs::read_to_string(dir.path().join("steward.toml")).unwrap();
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    let components = api
        .wait_for("/v1/components", Duration::from_secs(30), |body| {
            !body.as_array().unwrap().is_empty() && phases(body).iter().all(|p| p == "unknown")
        })
        .await;
    assert_eq!(components.as_array().unwrap().len(), 2);
    // Several syncs later: still unknown (never ready), and the 401 logged once.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(phases(&api.ok("/v1/components").await).iter().all(|p| p == "unknown"));
    let log = steward.log();
    assert_eq!(log.matches("BMC authentication failed").count(), 1, "logged once:\n{log}");
    assert!(!log.contains("wrong"), "the password never reaches the log");
    steward.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_bmc_times_out_backs_off_and_recovers_after_sigcont() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let bmc = Emulator::start(&dir.path().join("bmc1"), 41, 2, "On");
    let config = steward_config(dir.path(), &[&bmc], "");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(api.wait_ready_count(2).await, 2);

    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &bmc.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    api.wait_for("/v1/components", Duration::from_secs(30), |body| {
        phases(body).iter().all(|p| p == "unknown")
    })
    .await;
    signal("-CONT");
    assert_eq!(api.wait_ready_count(2).await, 2, "ready again after SIGCONT");
    let log = steward.log();
    assert!(log.contains("BMC endpoint unreachable"), "{log}");
    assert!(log.contains("reachable again"), "{log}");
    steward.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emulator_killed_mid_run_fails_its_rack_while_the_other_racks_complete() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let mut emulators: Vec<Emulator> = (1..=3)
        .map(|n| Emulator::start(&dir.path().join(format!("bmc{n}")), 50 + n, 2, "On"))
        .collect();
    let refs: Vec<&Emulator> = emulators.iter().collect();
    // A shorter settle limit so the dead rack's verification gives up within the test; still
    // longer than sushy's slowest restart (11 s) and the 15 s unseen-cycle grace.
    let config = steward_config(dir.path(), &refs, "")
        .replace("power_settle_seconds = 60", "power_settle_seconds = 25");
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(api.wait_ready_count(6).await, 6);

    let run = api
        .post(
            "/v1/runs",
            &json!({"operation": {"kind": "power_cycle"},
                    "selector": {"racks": ["rack-001", "rack-002", "rack-003"]},
                    "policy": {"max_parallel_racks": 3, "max_attempts": 1}}),
        )
        .await;
    assert_eq!(run.status, 201, "{run:?}");
    let id = run.body["id"].as_str().unwrap().to_string();

    // SIGKILL rack-002's emulator once its first Reset has arrived (mid-task).
    let victim = &emulators[1];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while victim.uuids.iter().all(|u| victim.resets(u) == 0) {
        assert!(std::time::Instant::now() < deadline, "rack-002 never got a Reset");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emulators[1].kill();

    // Its components go unknown (never their last good status); the others stay known.
    let components = api
        .wait_for("/v1/components?rack=rack-002", Duration::from_secs(30), |body| {
            let phases = phases(body);
            phases.len() == 2 && phases.iter().all(|p| p == "unknown")
        })
        .await;
    assert!(phases(&components).iter().all(|p| p != "ready"));

    // Its target fails once verification gives up (power_settle_seconds); the other racks
    // complete, and the run ends completed_with_failures.
    let done = api
        .wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(180), |run| {
            run["status"] == "completed_with_failures"
                || run["status"] == "completed"
                || run["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "completed_with_failures", "{done:#}");
    assert_eq!(done["counts"]["completed"], 2, "{done:#}");
    assert_eq!(done["counts"]["failed"], 1, "{done:#}");
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    for target in targets.as_array().unwrap() {
        let rack = target["rack_id"].as_str().unwrap();
        let want = if rack == "rack-002" { "failed" } else { "completed" };
        assert_eq!(target["status"], want, "{target:#}");
    }
    let failed = targets.as_array().unwrap().iter().find(|t| t["rack_id"] == "rack-002").unwrap();
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(message.contains("PowerState") || message.contains("unreachable"), "{failed:#}");

    for emulator in [&emulators[0], &emulators[2]] {
        for uuid in &emulator.uuids {
            assert_eq!(emulator.power_state(uuid).as_deref(), Some("On"), "{uuid}");
            assert_eq!(emulator.resets(uuid), 1, "{uuid}: one Reset");
        }
    }
    steward.stop();
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate file, key file), named
/// after `name` in `dir`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// `config` with `line` added to its `[core.redfish]` table.
fn with_redfish_line(config: &str, line: &str) -> String {
    config.replacen("[core.redfish]\n", &format!("[core.redfish]\n{line}\n"), 1)
}

fn reasons(components: &Value) -> Vec<String> {
    components
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.pointer("/status/reason").and_then(Value::as_str).unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_bmcs_are_verified_against_ca_file_refused_without_it_and_unverified_only_if_asked() {
    if !available() {
        return;
    }
    let dir = temp_dir();
    let (cert, key) = self_signed(dir.path(), "bmc");
    let mut bmc = Emulator::start_tls(&dir.path().join("bmc1"), 61, 2, (&cert, &key), None);
    assert!(bmc.url.starts_with("https://"));
    let plain = steward_config(dir.path(), &[&bmc], "");

    // ca_file holds the BMC's certificate: discovery and observation over https.
    let ca = format!("ca_file = {:?}", cert.display().to_string());
    let steward = Steward::start(dir.path(), &with_redfish_line(&plain, &ca));
    let api = steward.api();
    assert_eq!(api.wait_ready_count(2).await, 2, "verified against ca_file: imported and ready");

    // The BMC comes back with another certificate: its components go unknown, saying why.
    let port = bmc.port();
    bmc.kill();
    let (other_cert, other_key) = self_signed(dir.path(), "other");
    let bmc =
        Emulator::start_tls(&dir.path().join("bmc1"), 61, 2, (&other_cert, &other_key), Some(port));
    let components = api
        .wait_for("/v1/components", Duration::from_secs(60), |body| {
            let reasons = reasons(body);
            phases(body).iter().all(|p| p == "unknown")
                && reasons.iter().all(|r| r.contains("TLS handshake failed"))
        })
        .await;
    let reason = &reasons(&components)[0];
    assert!(reason.contains("certificate"), "{reason}");
    assert!(reason.contains("core.redfish.ca_file"), "the reason says what to check: {reason}");
    steward.stop();

    // No ca_file and no insecure_skip_verify: the self-signed BMC is not trusted.
    let steward = Steward::start(dir.path(), &plain);
    let api = steward.api();
    api.wait_for("/v1/components", Duration::from_secs(30), |body| {
        !body.as_array().unwrap().is_empty() && phases(body).iter().all(|p| p == "unknown")
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !steward.log().contains("TLS handshake failed") {
        assert!(std::time::Instant::now() < deadline, "no TLS message:\n{}", steward.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(phases(&api.ok("/v1/components").await).iter().all(|p| p != "ready"));
    steward.stop();

    // insecure_skip_verify = true, written explicitly: accepted unverified, with a warning.
    let steward =
        Steward::start(dir.path(), &with_redfish_line(&plain, "insecure_skip_verify = true"));
    assert_eq!(steward.api().wait_ready_count(2).await, 2, "unverified TLS when asked for");
    assert!(steward.log().contains("insecure_skip_verify = true"), "{}", steward.log());
    steward.stop();
    assert!(bmc.requests("/redfish/v1/Systems") > 0, "the BMC was reached over https");
}

#[test]
fn serve_refuses_an_unreadable_ca_file_naming_the_key() {
    let dir = temp_dir();
    let password = dir.path().join("bmc-password");
    std::fs::write(&password, "password\n").unwrap();
    let config = format!(
        "[core]\nadapter = \"redfish\"\n[core.redfish]\nusername = \"admin\"\n\
         password_file = {:?}\nca_file = {:?}\n\
         [[core.redfish.endpoints]]\nurl = \"https://127.0.0.1:9\"\nrack = \"rack-001\"\n",
        password.display().to_string(),
        dir.path().join("missing-ca.pem").display().to_string()
    );
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .arg("--db")
        .arg(dir.path().join("steward.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("core.redfish.ca_file"), "{stderr}");
    assert!(!dir.path().join("steward.db").exists(), "refused before touching the database");
}
