//! Black-box tests of the CLI: every client command of API.md §1 run as the real `steward`
//! binary against a served instance, human and `--json` output, and the exit codes (0 success,
//! 1 refused, 2 usage, 3 a watched run that did not complete).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // Tests of the shell read the wall clock.

mod binary_support;

use binary_support::{BIN, Steward, cli, examples, fast_config, outcome, temp_dir};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_command() {
    let dir = temp_dir();
    // Slower tasks, so a run is still running when the next command arrives.
    let sim = "latency = { min_ms = 400, max_ms = 700 }";
    let steward = Steward::start(dir.path(), &fast_config("", sim, ""));
    let api = steward.api();
    api.wait_ready().await;
    let inventory = examples().join("inventory.json");
    let observations = examples().join("observations.json");
    let run = |args: &[&str]| outcome(&steward.cli(args));

    let (code, out, err) = run(&["inventory", "import", inventory.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("imported 3 racks"), "{out}");

    let (code, out, _) = run(&["racks", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ID") && out.contains("rack-006"), "{out}");
    let (code, out, _) = run(&["racks", "show", "rack-001"]);
    assert_eq!(code, 0);
    assert!(out.contains("pool") && out.contains("rack-001-compute-01"), "{out}");

    let (code, out, _) = run(&["components", "list", "--rack", "rack-001", "--kind", "compute"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5, "header and four trays: {out}");
    let (code, out, _) =
        run(&["--json", "components", "list", "--phase", "ready", "--service-state", "in_service"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out).as_array().unwrap().len(), 48);
    let (code, out, _) = run(&["components", "show", "rack-001-compute-01"]);
    assert_eq!(code, 0);
    assert!(out.contains("phase") && out.contains("ready"), "{out}");
    let (code, _, err) = run(&["components", "show", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "one-line reason: {err}");
    assert!(err.contains("404"), "{err}");

    let (code, out, err) = run(&["observe", observations.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 observations"), "{out}");

    let (code, out, err) =
        run(&["service", "set", "rack-002-node-01", "maintenance", "--note", "swap PSU"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("maintenance"), "{out}");
    let (code, _, err) = run(&["service", "set", "rack-003-node-01", "rma"]);
    assert_eq!(code, 1);
    assert!(err.contains("409") && err.contains("allowed: maintenance"), "{err}");
    let (code, out, _) = run(&["service", "history", "rack-002-node-01"]);
    assert_eq!(code, 0);
    assert!(out.contains("swap PSU") && out.contains("local"), "{out}");
    let (code, out, _) = run(&["--json", "service", "history", "rack-002-node-01"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)[0]["to"], "maintenance");

    // Dry run, then a real run watched to completion.
    let create = [
        "run",
        "create",
        "--op",
        "firmware_update",
        "--version",
        "2.0.0",
        "--rack",
        "rack-001",
        "--rack",
        "rack-003",
        "--wave",
        "1",
        "--max-parallel",
        "1",
        "--auto-advance",
    ];
    let mut dry = create.to_vec();
    dry.push("--dry-run");
    let (code, out, err) = run(&dry);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dry run") && out.contains("rack-003"), "{out}");
    let mut json_create = vec!["--json"];
    json_create.extend_from_slice(&create);
    let (code, out, err) = run(&json_create);
    assert_eq!(code, 0, "{err}");
    let id = json_of(&out)["id"].as_str().unwrap().to_string();
    let (code, out, err) = run(&["run", "watch", &id]);
    assert_eq!(code, 0, "completed run: {out} {err}");
    assert!(out.contains("completed"), "{out}");
    let (code, out, _) = run(&["run", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("firmware_update 2.0.0"), "{out}");
    let (code, out, _) = run(&["run", "show", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("WAVE") && out.contains("completed"), "{out}");
    let (code, out, _) = run(&["run", "targets", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("rack-001") && out.contains("rack-003"), "{out}");

    // Pause, resume, advance at a wave gate, cancel; watch exits 3 for a cancelled run.
    let (code, out, err) = run(&[
        "--json",
        "run",
        "create",
        "--op",
        "power_on",
        "--rack",
        "rack-004",
        "--rack",
        "rack-005",
        "--rack",
        "rack-006",
        "--wave",
        "1",
        "--max-failures",
        "2",
        "--name",
        "power",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = json_of(&out)["id"].as_str().unwrap().to_string();
    api.wait_run(&id, "paused", Some("wave_gate")).await;
    let (code, out, err) = run(&["run", "advance", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("running"), "{out}");
    let (code, out, err) = run(&["run", "pause", &id, "--reason", "hold on"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    let (code, _, err) = run(&["run", "pause", &id]);
    assert_eq!(code, 1, "pausing a paused run is refused");
    assert!(err.contains("409"), "{err}");
    let (code, out, _) = run(&["run", "resume", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("running"), "{out}");
    let (code, out, _) = run(&["run", "cancel", &id, "--reason", "changed my mind"]);
    assert_eq!(code, 0);
    assert!(out.contains("cancelled"), "{out}");
    let (code, _, _) = run(&["run", "watch", &id]);
    assert_eq!(code, 3, "a cancelled run exits 3");
    let (code, _, err) = run(&["run", "advance", &id, "--expected-wave", "2"]);
    assert_eq!(code, 1, "{err}");

    // Events: a page, JSON, and --follow.
    let (code, out, _) = run(&["events", "--after", "0", "--limit", "5"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5, "{out}");
    let (code, out, _) = run(&["--json", "events", "--limit", "3"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["events"].as_array().unwrap().len(), 3);
    let follower = Command::new(BIN)
        .args(["--server", &steward.url, "events", "--follow", "--after", "0", "--limit", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = Command::new("kill").arg(follower.id().to_string()).status();
    let followed = follower.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&followed.stdout).lines().count() > 5, "follow pages on");

    // Machines in every format.
    let (code, out, _) = run(&["machine", "show", "service"]);
    assert_eq!(code, 0);
    assert!(out.contains("in_service") && out.contains("maintenance"), "{out}");
    let (code, out, _) = run(&["machine", "show", "run", "--format", "mermaid"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("stateDiagram-v2"), "{out}");
    let (code, out, _) = run(&["machine", "show", "task", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(json_of(&out)["transitions"].is_array());
    let (code, out, _) = run(&["machine", "show", "target", "--format", "table"]);
    assert_eq!(code, 0);
    assert!(out.contains("FROM"), "{out}");
    let (code, _, _) = run(&["machine", "show", "nope"]);
    assert_eq!(code, 2);

    // Usage errors exit 2.
    let (code, _, err) = run(&["run", "create", "--op", "firmware_update", "--all"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(&["run", "create", "--op", "power_on"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["run", "create", "--op", "power_on", "--all", "--wave", "x"]);
    assert_eq!(code, 2);
    // Mixed wave specs: a canary rack, 25% of the six racks (rounded up), then the rest.
    let (code, out, err) = run(&[
        "--json",
        "run",
        "create",
        "--op",
        "power_on",
        "--all",
        "--wave",
        "1",
        "--wave",
        "25%",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    let sizes: Vec<u64> = json_of(&out)["run"]["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, vec![1, 2, 3]);
    let (code, _, _) = run(&["frobnicate"]);
    assert_eq!(code, 2);
    // A refused policy exits 1 and names the field.
    let (code, _, err) =
        run(&["run", "create", "--op", "power_on", "--all", "--max-parallel", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("policy.max_parallel_racks"), "{err}");

    assert!(steward.stop().success());

    // With the server gone: client commands exit 1; replay agrees with the database.
    let (code, _, err) = outcome(&cli(&steward_url_gone(), &["run", "list"]));
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = outcome(&cli(
        "http://127.0.0.1:9",
        &["replay", "--db", dir.path().join("steward.db").to_str().unwrap()],
    ));
    assert_eq!(code, 0, "replay must agree with the live database: {out} {err}");
    let (code, _, _) =
        outcome(&cli("http://127.0.0.1:9", &["replay", "--db", "/nonexistent/steward.db"]));
    assert_eq!(code, 1);
}

fn steward_url_gone() -> String {
    "http://127.0.0.1:9".to_string()
}

#[test]
fn token_hash_and_help() {
    let (code, out, _) = outcome(&cli("http://127.0.0.1:9", &["token", "hash", "abc"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let (code, out, _) = outcome(&cli("http://127.0.0.1:9", &["--help"]));
    assert_eq!(code, 0);
    for command in [
        "serve",
        "demo",
        "inventory",
        "components",
        "service",
        "run",
        "events",
        "machine",
        "replay",
    ] {
        assert!(out.contains(command), "help lists {command}: {out}");
    }
}
