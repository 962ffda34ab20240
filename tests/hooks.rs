//! Black-box tests of site hooks, rerun and skip-if-current through the real `steward serve`:
//! exec hooks as small shell scripts (succeed, fail, time out with a child left behind, print a
//! message), an HTTP hook to a local receiver that verifies the signature, a SIGKILL of steward
//! while a hook runs (the hook runs again with the same invocation id, never after it reported),
//! unknown hook names refused, `skip_if_current`, and `rerun` from the API and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary_support;

use binary_support::{Steward, fast_config, outcome, temp_dir};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    let status = std::process::Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    assert!(status.success());
    path.display().to_string()
}

fn hook(name: &str, argv: &[&str], timeout: u64) -> String {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[hooks]]\nname = {name:?}\nexec = [{}]\ntimeout_seconds = {timeout}\n",
        argv.join(", ")
    )
}

fn run_body(racks: &[&str], policy: Value) -> Value {
    json!({"operation": {"kind": "power_cycle"}, "selector": {"racks": racks}, "policy": policy})
}

async fn create(steward: &Steward, body: &Value) -> String {
    let answer = steward.api().post("/v1/runs", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["id"].as_str().unwrap().to_string()
}

async fn wait_finished(steward: &Steward, id: &str) -> Value {
    steward
        .api()
        .wait_for(&format!("/v1/runs/{id}"), Duration::from_secs(60), |run| {
            run["finished_at"].is_string()
        })
        .await
}

async fn events(steward: &Steward) -> Vec<Value> {
    let page = steward.api().ok("/v1/events?after=0&limit=1000").await;
    page["events"].as_array().unwrap().clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_and_post_hooks_run_per_rack_and_are_events() {
    let dir = temp_dir();
    let calls = dir.path().join("calls.log");
    let drain = script(
        dir.path(),
        "drain.sh",
        &format!(
            "input=$(cat)\ncase \"$input\" in *'\"rack_id\"'*) ;; *) exit 9;; esac\n\
             echo \"pre $STEWARD_RUN_ID $STEWARD_RACK_ID $STEWARD_ATTEMPT $STEWARD_HOOK_INVOCATION $1\" >> {calls:?}\n\
             echo noise\necho \"drained $STEWARD_RACK_ID\""
        ),
    );
    let validate = script(
        dir.path(),
        "validate.sh",
        &format!("cat >/dev/null\necho \"post $STEWARD_RACK_ID\" >> {calls:?}\necho validated"),
    );
    let tables =
        format!("{}{}", hook("drain", &[&drain, "{rack}"], 30), hook("validate", &[&validate], 30));
    let steward = Steward::start(dir.path(), &fast_config("", "", &tables));
    steward.api().wait_ready().await;
    let policy =
        json!({"max_parallel_racks": 2, "hooks": {"pre": ["drain"], "post": ["validate"]}});
    let id = create(&steward, &run_body(&["rack-001", "rack-002"], policy)).await;
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let log = std::fs::read_to_string(&calls).unwrap();
    for rack in ["rack-001", "rack-002"] {
        let pre = format!("pre {id} {rack} 1 {id}/{id}:{rack}/1/pre/0 {rack}");
        assert!(log.contains(&pre), "missing {pre:?} in {log}");
        assert!(log.contains(&format!("post {rack}")), "{log}");
    }
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    for target in targets.as_array().unwrap() {
        assert_eq!(target["status"], "completed");
        assert!(
            target["message"].as_str().unwrap().contains("post hook validate succeeded: validated")
        );
    }
    let all = events(&steward).await;
    let started = of_kind(&all, "hook_started");
    let finished = of_kind(&all, "hook_finished");
    assert_eq!(started.len(), 4, "two hooks on two racks");
    assert_eq!(finished.len(), 4);
    assert!(finished.iter().all(|e| e["data"]["ok"] == true));
    assert!(finished.iter().any(|e| e["data"]["message"] == "drained rack-001"));
    let (code, stdout, _) = outcome(&steward.cli(&["run", "targets", &id]));
    assert_eq!(code, 0);
    assert!(stdout.contains("HOOK"), "{stdout}");
    for rack in ["rack-001", "rack-002"] {
        let line = stdout.lines().find(|l| l.contains(rack)).unwrap_or_default();
        assert!(line.contains("pre drain ok, post validate ok"), "{rack}: {stdout}");
    }
    for target in targets.as_array().unwrap() {
        let names: Vec<&str> = target["hooks_reported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["drain", "validate"], "{target}");
    }
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_drain_never_touches_core_and_a_timeout_kills_the_group() {
    let dir = temp_dir();
    let pid_file = dir.path().join("child.pid");
    let fail = script(
        dir.path(),
        "fail.sh",
        "cat >/dev/null\necho 'some output'\necho 'scheduler refused to drain' >&2\nexit 3",
    );
    let slow = script(dir.path(), "slow.sh", &format!("sleep 300 &\necho $! > {pid_file:?}\nwait"));
    let tables = format!("{}{}", hook("drain", &[&fail], 30), hook("slow", &[&slow], 1));
    let steward = Steward::start(dir.path(), &fast_config("", "", &tables));
    steward.api().wait_ready().await;

    let id = create(&steward, &run_body(&["rack-001"], json!({"hooks": {"pre": ["drain"]}}))).await;
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "failed");
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    let target = &targets[0];
    assert_eq!(target["status"], "failed");
    assert!(target["task_id"].is_null(), "no Core task: {target:#}");
    let message = target["message"].as_str().unwrap();
    assert!(
        message.contains("pre hook drain failed: exit status 3: scheduler refused to drain"),
        "{message}"
    );
    let all = events(&steward).await;
    assert!(of_kind(&all, "target_submitted").is_empty(), "a failing drain submitted a task");

    let id = create(&steward, &run_body(&["rack-002"], json!({"hooks": {"pre": ["slow"]}}))).await;
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "failed");
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    assert!(targets[0]["message"].as_str().unwrap().contains("timed out after 1 s"), "{targets:#}");
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    // Killed means gone or a zombie waiting for init to reap it (the SIGKILL is sent before
    // the hook reports, so this holds at once; the loop only tolerates a slow reaper).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone_or_zombie(&pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hook's child {pid} outlived the timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    steward.stop();
}

/// Whether process `pid` no longer runs (absent, or a zombie).
fn gone_or_zombie(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_hook_names_are_refused_naming_the_field() {
    let dir = temp_dir();
    let steward =
        Steward::start(dir.path(), &fast_config("", "", &hook("drain", &["/bin/true"], 5)));
    let body = run_body(&["rack-001"], json!({"hooks": {"pre": ["drain"], "post": ["rm -rf /"]}}));
    let answer = steward.api().post("/v1/runs", &body).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["field"], "policy.hooks.post[0]", "{:#}", answer.body);
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn http_hook_is_signed_and_its_answer_decides() {
    use axum::routing::post;
    let secret = "s3cret";
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let app = axum::Router::new().route(
        "/validate",
        post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let signature = headers
                    .get("x-steward-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((signature.clone(), body.to_vec()));
                if signature == steward_runtime::webhooks::signature(secret, &body) {
                    (axum::http::StatusCode::OK, "healthy".to_string())
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, "bad signature".to_string())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = temp_dir();
    let tables = format!(
        "[[hooks]]\nname = \"validate\"\nhttp = {{ url = \"http://{addr}/validate\", secret = \"{secret}\" }}\ntimeout_seconds = 10\n\
         [[hooks]]\nname = \"unsigned\"\nhttp = {{ url = \"http://{addr}/validate\" }}\ntimeout_seconds = 10\n"
    );
    let steward = Steward::start(dir.path(), &fast_config("", "", &tables));
    steward.api().wait_ready().await;
    let id =
        create(&steward, &run_body(&["rack-001"], json!({"hooks": {"post": ["validate"]}}))).await;
    assert_eq!(wait_finished(&steward, &id).await["status"], "completed");
    let (signature, body) = rx.recv().await.unwrap();
    assert_eq!(signature, steward_runtime::webhooks::signature(secret, &body));
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["target"]["rack_id"], "rack-001");
    assert_eq!(sent["phase"], "post");

    let id =
        create(&steward, &run_body(&["rack-002"], json!({"hooks": {"post": ["unsigned"]}}))).await;
    assert_eq!(wait_finished(&steward, &id).await["status"], "failed");
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    assert!(targets[0]["message"].as_str().unwrap().contains("HTTP 401"), "{targets:#}");
    assert!(targets[0]["task_id"].is_string(), "a post hook runs after the task");
    assert!(!steward.log().contains(secret), "the secret was logged");
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_in_flight_at_a_sigkill_runs_again_and_never_after_it_reported() {
    let dir = temp_dir();
    let calls = dir.path().join("calls.log");
    let first = dir.path().join("first-run");
    // The first execution blocks until the test kills steward; later ones finish at once.
    let drain = script(
        dir.path(),
        "drain.sh",
        &format!(
            "cat >/dev/null\necho \"$STEWARD_HOOK_INVOCATION\" >> {calls:?}\n\
             if [ ! -e {first:?} ]; then touch {first:?}; sleep 30; fi\necho drained"
        ),
    );
    let config = fast_config("", "", &hook("drain", &[&drain], 60));
    let steward = Steward::start(dir.path(), &config);
    steward.api().wait_ready().await;
    let id = create(&steward, &run_body(&["rack-001"], json!({"hooks": {"pre": ["drain"]}}))).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !first.exists() {
        assert!(std::time::Instant::now() < deadline, "the hook never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(steward); // SIGKILL (Drop kills the child) while the hook runs.

    let steward = Steward::start(dir.path(), &config);
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let log = std::fs::read_to_string(&calls).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "run once, then again after the crash: {log}");
    assert_eq!(lines[0], lines[1], "the same invocation id both times");
    let all = events(&steward).await;
    assert_eq!(of_kind(&all, "hook_finished").len(), 1);
    steward.stop();

    // A hook that reported is never run again: another restart runs nothing.
    let steward = Steward::start(dir.path(), &config);
    steward.api().wait_ready().await;
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    steward.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_if_current_and_rerun_from_the_api_and_the_cli() {
    let dir = temp_dir();
    let fail = script(dir.path(), "fail.sh", "cat >/dev/null\nexit 1");
    let steward = Steward::start(dir.path(), &fast_config("", "", &hook("drain", &[&fail], 5)));
    steward.api().wait_ready().await;

    // The sim fleet starts at 1.0.0: every rack is already current.
    let body = json!({"operation": {"kind": "firmware_update", "version": "1.0.0"},
        "selector": {"racks": ["rack-001", "rack-002"]}});
    let id = create(&steward, &body).await;
    let run = wait_finished(&steward, &id).await;
    assert_eq!(run["counts"]["skipped"], 2, "{run:#}");
    let targets = steward.api().ok(&format!("/v1/runs/{id}/targets")).await;
    assert!(targets.as_array().unwrap().iter().all(|t| t["message"] == "already at 1.0.0"));
    // skip_if_current = false updates anyway; a rerun of the skipped targets is allowed.
    let mut forced = body.clone();
    forced["policy"] = json!({"skip_if_current": false, "max_parallel_racks": 2});
    let id2 = create(&steward, &forced).await;
    assert_eq!(wait_finished(&steward, &id2).await["counts"]["completed"], 2);

    let refused =
        steward.api().post(&format!("/v1/runs/{id}/rerun"), &json!({"failed_only": true})).await;
    assert_eq!(refused.status, 400, "nothing failed: {refused:?}");
    let rerun = steward.api().post(&format!("/v1/runs/{id}/rerun"), &json!({})).await;
    assert_eq!(rerun.status, 201, "{rerun:?}");
    assert_eq!(rerun.body["rerun_of"], id.as_str());
    let original = steward.api().ok(&format!("/v1/runs/{id}")).await;
    assert_eq!(original["reruns"], json!([rerun.body["id"]]));

    // A run whose drain fails, rerun from the CLI over its failed targets only.
    let failing = create(
        &steward,
        &run_body(
            &["rack-003", "rack-004"],
            json!({"hooks": {"pre": ["drain"]}, "max_parallel_racks": 2}),
        ),
    )
    .await;
    assert_eq!(wait_finished(&steward, &failing).await["status"], "failed");
    let (code, stdout, stderr) =
        outcome(&steward.cli(&["--json", "run", "rerun", &failing, "--failed-only"]));
    assert_eq!(code, 0, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["rerun_of"], failing.as_str());
    assert_eq!(created["policy"]["hooks"]["pre"], json!(["drain"]), "same policy");
    assert_eq!(created["waves"][0]["size"], 2, "both failed racks");
    let first = steward.api().ok(&format!("/v1/runs/{failing}")).await;
    assert_eq!(first["reruns"], json!([created["id"]]));
    let running = steward.api().post("/v1/runs/nope/rerun", &json!({})).await;
    assert_eq!(running.status, 404);
    steward.stop();
}
