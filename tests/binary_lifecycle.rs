//! Black-box tests of the `steward` process itself: signed webhook deliveries to a local
//! receiver, including one that is only acknowledged after a restart; SIGTERM shutdown with exit
//! 0; `steward replay` agreeing with the database afterwards; config errors that name the key;
//! serving with no config; and `steward demo` running to a clean exit.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // Tests of the shell read the wall clock.

mod binary_support;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use binary_support::{BIN, Steward, cli, fast_config, outcome, temp_dir};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Delivery {
    signature: String,
    body: Vec<u8>,
    accepted: bool,
}

#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    accept: Arc<AtomicBool>,
}

impl Receiver {
    fn snapshot(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let deliveries = self.snapshot();
            if done(&deliveries) {
                return deliveries;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {deliveries:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    receiver.accept.store(true, Ordering::SeqCst);
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let accepted = state.accept.load(Ordering::SeqCst);
                let signature = headers
                    .get("x-steward-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                state.deliveries.lock().unwrap().push(Delivery {
                    signature,
                    body: body.to_vec(),
                    accepted,
                });
                if accepted { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

fn about(delivery: &Delivery, component: &str) -> bool {
    String::from_utf8_lossy(&delivery.body).contains(component)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_ordered_and_survive_a_restart() {
    let (receiver, url) = start_receiver().await;
    let dir = temp_dir();
    let tables = format!(
        "[[webhooks]]\nname = \"audit\"\nurl = \"{url}\"\nsecret = \"hush\"\nevents = [\"service_state_changed\"]\n"
    );
    let config = fast_config("", "", &tables);
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();

    let moved = api
        .post(
            "/v1/components/rack-001-node-01/service-state",
            &json!({"to": "maintenance", "note": "n1"}),
        )
        .await;
    assert_eq!(moved.status, 200);
    let deliveries = receiver
        .wait_for("the first delivery", |d| {
            d.iter().any(|d| d.accepted && about(d, "rack-001-node-01"))
        })
        .await;
    let first = deliveries.iter().find(|d| d.accepted).unwrap().clone();
    assert_eq!(first.signature, steward_runtime::webhooks::signature("hush", &first.body));
    assert!(first.signature.starts_with("sha256="));
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    for key in ["id", "seq", "kind", "at", "data"] {
        assert!(body.get(key).is_some(), "delivery lacks {key}: {body}");
    }
    assert_eq!(body["kind"], "service_state_changed");

    // The receiver goes down; a second change is attempted but not acknowledged.
    receiver.accept.store(false, Ordering::SeqCst);
    let moved = api
        .post("/v1/components/rack-002-node-01/service-state", &json!({"to": "maintenance"}))
        .await;
    assert_eq!(moved.status, 200);
    receiver
        .wait_for("a refused attempt", |d| {
            d.iter().any(|d| !d.accepted && about(d, "rack-002-node-01"))
        })
        .await;
    assert!(steward.stop().success(), "SIGTERM exits 0");

    // After a restart the pending delivery is retried and acknowledged; nothing acknowledged
    // before the restart is delivered again.
    receiver.accept.store(true, Ordering::SeqCst);
    let steward = Steward::start(dir.path(), &config);
    let api = steward.api();
    let moved = api
        .post("/v1/components/rack-003-node-01/service-state", &json!({"to": "maintenance"}))
        .await;
    assert_eq!(moved.status, 200);
    let deliveries = receiver
        .wait_for("the retried and the new delivery", |d| {
            d.iter().any(|d| d.accepted && about(d, "rack-002-node-01"))
                && d.iter().any(|d| d.accepted && about(d, "rack-003-node-01"))
        })
        .await;
    let accepted: Vec<Value> = deliveries
        .iter()
        .filter(|d| d.accepted)
        .map(|d| {
            assert_eq!(d.signature, steward_runtime::webhooks::signature("hush", &d.body));
            serde_json::from_slice(&d.body).unwrap()
        })
        .collect();
    let ids: Vec<&str> = accepted.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "no acknowledged delivery is repeated: {ids:?}");
    let seqs: Vec<u64> = accepted.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "deliveries follow seq: {seqs:?}");
    assert_eq!(accepted.len(), 3, "{accepted:#?}");
    assert!(steward.stop().success());

    let db = dir.path().join("steward.db");
    let (code, out, err) =
        outcome(&cli("http://127.0.0.1:9", &["replay", "--db", db.to_str().unwrap()]));
    assert_eq!(code, 0, "replay agrees with the live database: {out} {err}");
}

#[test]
fn serve_refuses_bad_configs_naming_the_key() {
    let dir = temp_dir();
    let cases = [
        ("listne = \"127.0.0.1:0\"\n", "listne"),
        ("[[tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"abc\"\n", "tokens[0].sha256"),
        ("[default_policy]\nwaves = { percentage = [10] }\n", "default_policy.waves.percentage"),
        ("[core.sim]\nrackz = 3\n", "rackz"),
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\nevents = [\"nope\"]\n",
            "webhooks[0].events[0]",
        ),
        (
            "[[planner.conflict_rules]]\nname = \"r\"\nverdict = \"conflict\"\n\
             a = { operations = [\"reboot\"] }\n",
            "planner.conflict_rules[0].a.operations[0]",
        ),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let output = Command::new(BIN)
            .args([
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--db",
                dir.path().join("x.db").to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "error names {key}: {stderr}");
    }
    let output = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--db", dir.path().join("y.db").to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_config_uses_the_defaults() {
    let dir = temp_dir();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("STEWARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("serving on ").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("no serving line");
    })
    .await
    .unwrap();
    let api = binary_support::Api::new(&url, None);
    let racks = api.ok("/v1/racks").await;
    assert_eq!(racks.as_array().unwrap().len(), 8, "the default sim fleet");
    assert!(dir.path().join("steward.db").exists(), "./steward.db by default");
    Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGINT exits 0: {status:?}");
}

#[test]
fn demo_runs_to_a_clean_exit() {
    let started = Instant::now();
    let output = Command::new(BIN).arg("demo").stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(stdout.contains("24 racks in 4 rows"), "{stdout}");
    assert!(stdout.contains("WAVE") && stdout.contains("WALL TIME"), "summary table: {stdout}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("safety_gate") || all.contains("SAFETY GATE"), "the gate trips: {all}");
    assert!(all.contains("acknowledges"), "resume with acknowledgement is shown: {all}");
    for hook in ["hook drain", "hook validate"] {
        assert!(stdout.contains(hook), "the {hook} reports are summarised: {stdout}");
    }
    assert!(!stdout.contains(": 0 reports"), "both hooks ran: {stdout}");
}
