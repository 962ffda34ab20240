//! Crash test: the real `steward serve` process with a file database and a journaled simulated
//! Core is killed with SIGKILL at seeded random points while runs are in flight, restarted, and
//! killed again — at least 20 times. Then it runs to the end and the test checks:
//! every accepted command is still there; no idempotency key reached Core twice; every run is
//! terminal; replaying the event log equals the stored state.
//!
//! `CRASH_KILLS=N` changes the number of kill points (default 24); `CRASH_SEED=N` the schedule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use steward_runtime::SystemClock;
use steward_runtime::store::replay_and_compare;
use steward_sim::{SimConfig, SimCore};
use steward_state_machine::FleetConfig;

const BIN: &str = env!("CARGO_BIN_EXE_steward");
const RACKS: u32 = 16;

fn config(dir: &Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nplan_interval_ms = 40\nsync_interval_ms = 60\ntask_poll_interval_ms = 40\n\
         [core.sim]\nseed = 11\nracks = {RACKS}\nrows = 4\nlatency = {{ min_ms = 150, max_ms = 900 }}\n\
         failure_rate = {{ firmware_update = 0.1 }}\nconflict_rate = 0.1\nrecover_after_ms = 500\njournal = {:?}\n",
        dir.join("core.journal")
    )
}

/// One `steward serve` process.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.join("steward.toml"))
            .arg("--db")
            .arg(dir.join("steward.db"))
            .env("STEWARD_LOG", "warn,steward_runtime=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("steward did not start serving");
        Server { child, url }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "steward did not exit cleanly on SIGTERM: {status}");
    }
}

/// A tiny deterministic PRNG for the kill schedule.
struct Schedule(u64);

impl Schedule {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % below
    }
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Option<Value> {
    let response = client.post(url).json(&body).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_nothing_and_submits_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("steward.toml"), config(dir.path())).unwrap();
    let kills = env_number("CRASH_KILLS", 24);
    let mut schedule = Schedule(env_number("CRASH_SEED", 2026));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut accepted_runs: Vec<String> = Vec::new();
    let mut accepted_transitions: Vec<(String, String)> = Vec::new();

    for kill in 0..kills {
        let server = Server::start(dir.path());
        // Some commands between kills; whatever got a 2xx answer must survive.
        if kill % 6 == 0 {
            let body = json!({
                "operation": {"kind": "firmware_update", "version": format!("2.{kill}.0")},
                "selector": {"all": true},
                "policy": {"max_parallel_racks": 3, "waves": {"equal": {"count": 2}}, "auto_advance": true, "max_attempts": 2, "retry_backoff_seconds": 1,
                           "conflict_retry": {"initial_delay_seconds": 1, "max_delay_seconds": 2, "timeout_seconds": 3600}}
            });
            if let Some(run) = post(&client, &format!("{}/v1/runs", server.url), body).await {
                accepted_runs.push(run["id"].as_str().unwrap().to_string());
            }
        }
        if kill % 5 == 2 {
            let component = format!("rack-{:03}-node-01", 1 + kill % u64::from(RACKS));
            let to =
                if accepted_transitions.iter().filter(|(c, _)| *c == component).count() % 2 == 0 {
                    "maintenance"
                } else {
                    "in_service"
                };
            let url = format!("{}/v1/components/{component}/service-state", server.url);
            if post(&client, &url, json!({"to": to, "note": "crash test"})).await.is_some() {
                accepted_transitions.push((component, to.to_string()));
            }
        }
        tokio::time::sleep(Duration::from_millis(50 + schedule.next(600))).await;
        server.kill();
    }

    // Let it finish every run, then stop it cleanly.
    let server = Server::start(dir.path());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let runs: Value = client
            .get(format!("{}/v1/runs", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runs = runs.as_array().cloned().unwrap_or_default();
        let all_terminal = runs.iter().all(|r| {
            matches!(
                r["status"].as_str(),
                Some("completed" | "completed_with_failures" | "failed" | "cancelled")
            )
        });
        if all_terminal {
            for id in &accepted_runs {
                assert!(runs.iter().any(|r| r["id"] == id.as_str()), "accepted run {id} was lost");
            }
            for run in &runs {
                let counts = &run["counts"];
                let total: u64 =
                    counts.as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
                assert_eq!(
                    total,
                    u64::from(RACKS),
                    "run {} counts do not add up: {counts}",
                    run["id"]
                );
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "runs not terminal in time: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!accepted_runs.is_empty(), "no run was ever accepted");
    for (component, to) in &accepted_transitions {
        let history: Value = client
            .get(format!("{}/v1/components/{component}/history", server.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["to"] == to.as_str() && h["note"] == "crash test");
        assert!(found, "accepted transition of {component} to {to} was lost: {history}");
    }
    server.terminate();

    // Core's journal counts every submit call per key.
    let journal: PathBuf = dir.path().join("core.journal");
    let sim = SimConfig {
        seed: 11,
        racks: RACKS,
        rows: 4,
        journal: Some(journal),
        ..SimConfig::default()
    };
    let core = SimCore::new(sim, Arc::new(SystemClock)).unwrap();
    assert_eq!(core.duplicate_submits(), 0, "an idempotency key was submitted to Core twice");
    assert!(core.task_count() > 0, "no task reached Core");

    let report =
        replay_and_compare(&dir.path().join("steward.db"), FleetConfig::default()).unwrap();
    assert!(report.equal, "replay differs from stored state: {:?}", report.differences);
    assert!(report.events > 0);
}
