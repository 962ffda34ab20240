//! Black-box tests of `steward serve` with the exec adapter (`[core] adapter = "exec"`), the
//! site's tools being small `/bin/sh` scripts written into a temp directory: the observe
//! script's fleet imported and shown (API and CLI), a garbage observe making every component
//! unknown until it recovers, a firmware update run to completion with the versions read back,
//! failures (non-zero exit with stderr, a malformed line) in the targets' messages, and a
//! SIGKILL of steward while a firmware script sleeps: after the restart the run completes and
//! the scripts' log shows every task key started exactly once. The example site scripts in
//! `examples/exec/` (the README's "try it") run a firmware update and a power-off from the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary_support;

use binary_support::{Steward, examples, outcome, temp_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const RACKS: [&str; 3] = ["rack-001", "rack-002", "rack-003"];

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let status = std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(status.success());
    path.display().to_string()
}

/// The site: an observe script over three racks of two components (one compute, one
/// nvswitch), firmware versions kept in `state/`, a firmware script that logs every start,
/// and a power script that fails in two ways. Returns the config.
fn site(dir: &Path) -> String {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = dir.display().to_string();
    let s = state.display().to_string();
    let observe = script(
        dir,
        "observe.sh",
        &format!(
            r#"if [ -e "{d}/garbage" ]; then echo 'this is not json'; exit 0; fi
printf '['
sep=''
for rack in {racks}; do
  for c in c1 s1; do
    id="$rack-$c"
    fw=1.0.0
    if [ -e "{s}/$id.fw" ]; then read -r fw < "{s}/$id.fw"; fi
    if [ "$c" = c1 ]; then
      printf '%s{{"component_id":"%s","rack_id":"%s","kind":"compute","controller_state":"Ready","power_state":"on","firmware_version":"%s"}}' "$sep" "$id" "$rack" "$fw"
    else
      printf '%s{{"component_id":"%s","rack_id":"%s","kind":"nvswitch","controller_state":{{"state":"ready"}},"firmware_version":"%s"}}' "$sep" "$id" "$rack" "$fw"
    fi
    sep=','
  done
done
printf ']\n'"#,
            racks = RACKS.join(" ")
        ),
    );
    // The first task to find `slow` sleeps (mkdir is atomic: one task only) so the test can
    // SIGKILL steward while it runs.
    let flash = script(
        dir,
        "flash.sh",
        &format!(
            r#"echo "$STEWARD_TASK_KEY" >> "{d}/started.log"
cat > "{d}/request-$STEWARD_RACK_ID.json"
for c in $STEWARD_COMPONENTS; do
  echo "{{\"component\":\"$c\",\"status\":\"running\",\"message\":\"flashing $STEWARD_FIRMWARE_VERSION\"}}"
done
if [ -e "{d}/slow" ] && mkdir "{d}/slept" 2>/dev/null; then sleep 8; fi
r=''
for c in $STEWARD_COMPONENTS; do
  echo "$STEWARD_FIRMWARE_VERSION" > "{s}/$c.fw"
  r="$r${{r:+,}}\"$c\":{{\"status\":\"completed\",\"message\":\"now $STEWARD_FIRMWARE_VERSION\"}}"
done
echo "{{\"result\":{{$r}}}}""#
        ),
    );
    let power = script(
        dir,
        "power.sh",
        r#"cat > /dev/null
if [ "$1" = off ]; then echo "talking to the BMC"; echo "bmc unreachable for $STEWARD_RACK_ID" >&2; exit 2; fi
echo "cycling $STEWARD_COMPONENTS"
echo '{"result":{}}'"#,
    );
    format!(
        "listen = \"127.0.0.1:0\"\nsynchronous = \"normal\"\nplan_interval_ms = 50\n\
         sync_interval_ms = 200\ntask_poll_interval_ms = 100\n\
         [core]\nadapter = \"exec\"\n\
         [core.exec]\nobserve = [{observe:?}]\nfirmware_update = [{flash:?}]\n\
         power_off = [{power:?}, \"off\"]\npower_cycle = [{power:?}, \"cycle\"]\n\
         timeout_seconds = 300\n"
    )
}

async fn create(steward: &Steward, body: &Value) -> String {
    let answer = steward.api().post("/v1/runs", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["id"].as_str().unwrap().to_string()
}

async fn wait_finished(steward: &Steward, id: &str) -> Value {
    steward
        .api()
        .wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(120), |run| {
            run["finished_at"].is_string()
        })
        .await
}

fn firmware(version: &str, racks: &[&str], parallel: u32) -> Value {
    json!({"operation": {"kind": "firmware_update", "version": version},
           "selector": {"racks": racks},
           "policy": {"max_parallel_racks": parallel, "max_attempts": 1}})
}

fn phases_all(components: &Value, phase: &str) -> bool {
    let items = components.as_array().unwrap();
    !items.is_empty() && items.iter().all(|c| c.pointer("/status/phase") == Some(&json!(phase)))
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_adapter_imports_observes_updates_firmware_and_reports_failures() {
    let dir = temp_dir();
    let config = site(dir.path());
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    assert_eq!(
        api.wait_ready_count(6).await,
        6,
        "three racks of two components imported and ready"
    );
    let racks = api.ok("/v1/racks").await;
    assert_eq!(racks.as_array().unwrap().len(), 3, "{racks:#}");
    let (code, stdout, stderr) =
        outcome(&steward.cli(&["components", "list", "--rack", "rack-002"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rack-002-c1") && stdout.contains("rack-002-s1"), "{stdout}");
    assert!(stdout.contains("ready"), "{stdout}");

    // Garbage from the observe script: every component unknown (never a stale ready), then back.
    std::fs::write(dir.path().join("garbage"), "").unwrap();
    let unknown =
        api.wait_for("/v1/components", Duration::from_secs(60), |c| phases_all(c, "unknown")).await;
    let reason = unknown[0].pointer("/status/reason").unwrap().as_str().unwrap();
    assert!(reason.contains("observe command failed: not JSON"), "{reason}");
    std::fs::remove_file(dir.path().join("garbage")).unwrap();
    api.wait_ready().await;

    // A firmware update over the fleet, every rack at once.
    let id = create(&steward, &firmware("2.0.0", &RACKS, 3)).await;
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    for target in targets.as_array().unwrap() {
        assert_eq!(target["status"], "completed", "{target:#}");
        assert!(target["task_id"].as_str().unwrap().starts_with("exec-"), "{target:#}");
    }
    let log = std::fs::read_to_string(dir.path().join("started.log")).unwrap();
    assert_eq!(log.lines().count(), 3, "one start per rack: {log}");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("request-rack-001.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(request["operation"], json!({"kind": "firmware_update", "version": "2.0.0"}));
    assert_eq!(request["rack_id"], "rack-001");
    assert_eq!(request["components"], json!(["rack-001-c1", "rack-001-s1"]));
    assert!(request["idempotency_key"].as_str().unwrap().starts_with(&id));
    // The observe script reads the new versions back.
    api.wait_for("/v1/components", Duration::from_secs(60), |all| {
        all.as_array().unwrap().iter().all(|c| c["firmware_version"] == "2.0.0")
    })
    .await;
    // Already current: skipped without running the script.
    let again = create(&steward, &firmware("2.0.0", &RACKS[..1], 1)).await;
    assert_eq!(wait_finished(&steward, &again).await["counts"]["skipped"], 1);
    assert_eq!(std::fs::read_to_string(dir.path().join("started.log")).unwrap(), log);

    // A non-zero exit fails the target with stderr's last line.
    let off = json!({"operation": {"kind": "power_off"}, "selector": {"racks": ["rack-001"]},
                     "policy": {"max_attempts": 1}});
    let id = create(&steward, &off).await;
    assert_eq!(wait_finished(&steward, &id).await["status"], "failed");
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    let message = targets[0]["message"].as_str().unwrap();
    assert!(message.contains("exit status 2: bmc unreachable for rack-001"), "{message}");
    // A line that is not JSON fails it too, naming the line.
    let cycle = json!({"operation": {"kind": "power_cycle"}, "selector": {"racks": ["rack-002"]},
                       "policy": {"max_attempts": 1}});
    let id = create(&steward, &cycle).await;
    assert_eq!(wait_finished(&steward, &id).await["status"], "failed");
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    let message = targets[0]["message"].as_str().unwrap();
    assert!(message.contains("malformed stdout line 1: not JSON"), "{message}");
    // An operation the site has no command for is refused by the adapter, never executed.
    let on = json!({"operation": {"kind": "power_on"}, "selector": {"racks": ["rack-003"]},
                    "policy": {"max_attempts": 1}});
    let id = create(&steward, &on).await;
    assert_eq!(wait_finished(&steward, &id).await["status"], "failed");
    let targets = api.ok(&format!("/v1/runs/{id}/targets")).await;
    let message = targets[0]["message"].as_str().unwrap();
    assert!(message.contains("core.exec.power_on is not configured"), "{message}");
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_update_never_starts_a_task_twice_and_the_run_completes() {
    let dir = temp_dir();
    let config = site(dir.path());
    std::fs::write(dir.path().join("slow"), "").unwrap();
    let steward = Steward::start(dir.path(), &config);
    assert_eq!(steward.api().wait_ready_count(6).await, 6);
    // One rack at a time: the kill lands on the first, the others start after the restart.
    let id = create(&steward, &firmware("3.1.0", &RACKS, 1)).await;
    let slept = dir.path().join("slept");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !slept.exists() {
        assert!(std::time::Instant::now() < deadline, "the firmware script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(steward); // SIGKILL (Drop kills the child) while the script sleeps.

    let steward = Steward::start(dir.path(), &config);
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    for target in targets.as_array().unwrap() {
        assert_eq!(target["status"], "completed", "{target:#}");
        assert_eq!(target["attempt"], 1, "no retry: {target:#}");
    }
    // Which way the restart found the first rack's command (both are correct): still running
    // and watched, or already gone with its result line left in its stdout file.
    let log = steward.log();
    let watched = log.lines().filter(|l| l.contains("watching a command started before")).count();
    eprintln!("restart: {watched} command(s) watched after the restart");
    let log = std::fs::read_to_string(dir.path().join("started.log")).unwrap();
    let keys: Vec<&str> = log.lines().collect();
    let unique: std::collections::BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(keys.len(), 3, "one start per rack, none twice: {log}");
    assert_eq!(unique.len(), 3, "every key started exactly once: {log}");
    // The rack whose script outlived steward got its result read after the restart.
    steward
        .api()
        .wait_for("/v1/components", Duration::from_secs(60), |all| {
            all.as_array().unwrap().iter().all(|c| c["firmware_version"] == "3.1.0")
        })
        .await;
    steward.stop();

    // Another restart starts nothing.
    let steward = Steward::start(dir.path(), &config);
    steward.api().wait_ready().await;
    assert_eq!(std::fs::read_to_string(dir.path().join("started.log")).unwrap(), log);
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_site_scripts_run_an_update_and_a_power_off_from_the_cli() {
    let dir = temp_dir();
    let state = dir.path().join("site");
    let site = examples().join("exec");
    let script = |name: &str| site.join(name).display().to_string();
    let s = state.display().to_string();
    let config = format!(
        "listen = \"127.0.0.1:0\"\nsynchronous = \"normal\"\nplan_interval_ms = 50\n\
         sync_interval_ms = 200\ntask_poll_interval_ms = 100\n\
         [core]\nadapter = \"exec\"\n[core.exec]\n\
         observe = [{observe:?}, {s:?}]\nfirmware_update = [{flash:?}, {s:?}]\n\
         power_off = [{power:?}, {s:?}, \"off\"]\n",
        observe = script("observe.sh"),
        flash = script("flash.sh"),
        power = script("power.sh"),
    );
    let steward = Steward::start(dir.path(), &config);
    assert_eq!(steward.api().wait_ready_count(12).await, 12, "four racks of three components");
    let (code, stdout, stderr) = outcome(&steward.cli(&[
        "--json",
        "run",
        "create",
        "--op",
        "firmware_update",
        "--version",
        "2.0.0",
        "--rack",
        "rack-001",
        "rack-002",
        "--max-parallel",
        "2",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(wait_finished(&steward, &id).await["status"], "completed");
    let log = std::fs::read_to_string(state.join("started.log")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    let (code, stdout, stderr) = outcome(&steward.cli(&[
        "--json",
        "run",
        "create",
        "--op",
        "power_off",
        "--rack",
        "rack-003",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let id = serde_json::from_str::<Value>(&stdout).unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(wait_finished(&steward, &id).await["status"], "completed");
    steward
        .api()
        .wait_for("/v1/components", Duration::from_secs(60), |all| {
            all.as_array().unwrap().iter().all(|c| {
                let id = c["id"].as_str().unwrap();
                let fw = if id.starts_with("rack-001") || id.starts_with("rack-002") {
                    "2.0.0"
                } else {
                    "1.0.0"
                };
                let power = if id.starts_with("rack-003") { "off" } else { "on" };
                c["firmware_version"] == fw && c["power_state"] == power
            })
        })
        .await;
    steward.stop();
}
