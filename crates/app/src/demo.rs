//! `steward demo`: a self-contained tour on a temporary database. It starts the service
//! in-process (sim Core, HTTP API on a loopback port), loads a fleet of 24 racks in 4 rows, runs a
//! firmware update in three waves (a canary rack, then 25%, then the rest) with four racks in
//! flight, injects failures so the safety gate trips, acknowledges and resumes, advances at each
//! wave gate, and prints a per-wave summary. Every rack is drained first by a pre hook
//! (`examples/hooks/drain.sh`) and validated after its task by a post hook
//! (`examples/hooks/validate.sh`), so their messages and the hook events show in the output.
//! Everything goes through the same HTTP client the CLI uses.

use crate::cli::client::{CliError, Client};
use crate::cli::table::render;
use crate::cli::watch::{Progress, counts_line, fetch};
use crate::config::{Config, SynchronousSetting};
use crate::hooks_config::HookEntry;
use crate::http::Server;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use steward_proto::{
    AdvanceRequest, FailureCount, GateScope, HookRefs, Operation, Ordering, PolicyOverrides,
    RackId, ReasonRequest, Run, RunRequest, RunStatus, RunStatusReason, SafetyGate, Selector,
    Target, WaveSpec,
};
use steward_sim::{LatencyRange, SimConfig};

/// The demo's knobs (tests shrink them).
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Racks in the fleet.
    pub racks: u32,
    /// Rows they stand in.
    pub rows: u32,
    /// Task duration range in milliseconds.
    pub latency_ms: (u64, u64),
    /// Directory for the database; a fresh temporary one (removed afterwards) when `None`.
    pub dir: Option<PathBuf>,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            racks: 24,
            rows: 4,
            latency_ms: (300, 900),
            dir: None,
            timeout: Duration::from_secs(55),
        }
    }
}

/// What the demo did, for its caller (and tests).
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// The run at the end.
    pub run: Run,
    /// Safety-gate pauses acknowledged.
    pub safety_resumes: u32,
    /// Wave gates advanced.
    pub advances: u32,
}

fn temp_dir() -> Result<PathBuf, CliError> {
    let base = std::env::temp_dir();
    for attempt in 0..1000u32 {
        let dir = base.join(format!("steward-demo-{}-{attempt}", std::process::id()));
        if std::fs::create_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(CliError::Local(format!("cannot create a temporary directory in {}", base.display())))
}

fn say(line: &str) {
    println!("{line}");
}

/// Runs the demo; prints as it goes.
pub async fn run(options: DemoOptions) -> Result<DemoReport, CliError> {
    let (dir, remove) = match &options.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::Local(format!("cannot create {}: {e}", dir.display())))?;
            (dir.clone(), false)
        }
        None => (temp_dir()?, true),
    };
    let result = tour(&options, &dir).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn tour(options: &DemoOptions, dir: &std::path::Path) -> Result<DemoReport, CliError> {
    #[allow(clippy::disallowed_methods)] // Wall time of the demo is what the summary reports.
    let started = std::time::Instant::now();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        db: dir.join("steward.db"),
        synchronous: SynchronousSetting::Normal,
        plan_interval_ms: 100,
        sync_interval_ms: 250,
        task_poll_interval_ms: 100,
        hooks: vec![
            site_hook(dir, "drain", DRAIN_SCRIPT)?,
            site_hook(dir, "validate", VALIDATE_SCRIPT)?,
        ],
        ..Config::default()
    };
    let sim = SimConfig {
        seed: 2026,
        racks: options.racks,
        rows: options.rows,
        latency: LatencyRange { min_ms: options.latency_ms.0, max_ms: options.latency_ms.1 },
        journal: None,
        ..SimConfig::default()
    };
    say("== steward demo ==");
    say(&format!("database: {}", config.db.display()));
    let server = Server::start_with_sim(&config, sim)
        .await
        .map_err(|e| CliError::Local(format!("cannot start steward: {e}")))?;
    let result = drive(options, &server, started).await;
    server.shutdown().await;
    result
}

async fn drive(
    options: &DemoOptions,
    server: &Server,
    started: std::time::Instant,
) -> Result<DemoReport, CliError> {
    let client = Client::new(&server.url(), None)?;
    say(&format!("steward is serving on {} with a simulated Core", server.url()));
    let racks = client.get("/v1/racks").await?;
    let rack_count = racks.as_array().map_or(0, Vec::len);
    say(&format!("fleet: {rack_count} racks in {} rows imported into the inventory", options.rows));
    let deadline = tokio::time::Instant::now() + options.timeout;
    let ready = wait_ready(&client, deadline).await?;
    say(&format!("all {ready} components observed ready (status derived from Core's raw states)"));

    let created = client.post("/v1/runs", &typed(&demo_run(options.racks))).await?;
    let id = created.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    let (run, targets) = fetch(&client, &id).await?;
    let sizes: Vec<String> = run.waves.iter().map(|w| w.size.to_string()).collect();
    say(&format!(
        "created run {id}: firmware_update 2.0.0 over {} racks, waves of {} (canary, 25%, rest), \
         4 racks in flight, safety gate: pause at 2 failures in a wave",
        run.counts.total(),
        sizes.join(" + ")
    ));
    let doomed: Vec<RackId> = targets
        .iter()
        .filter(|t| t.wave == 2)
        .skip(1)
        .step_by(2)
        .take(2)
        .map(|t| t.rack_id.clone())
        .collect();
    if let Some(sim) = server.sim() {
        sim.inject_failures(doomed.iter().cloned());
    }
    let names: Vec<&str> = doomed.iter().map(RackId::as_str).collect();
    say(&format!("injecting firmware failures into {} (wave 2)", names.join(" and ")));
    say("");

    let mut progress = Progress::new(u64::from(run.counts.total()));
    let mut report = DemoReport { run, safety_resumes: 0, advances: 0 };
    loop {
        let (run, targets) = fetch(&client, &id).await?;
        progress.update(&run, &targets);
        if run.status.is_terminal() {
            report.run = run;
            break;
        }
        if tokio::time::Instant::now() > deadline {
            progress.finish();
            return Err(CliError::Local(format!(
                "the demo run did not finish in time: {}",
                counts_line(&run)
            )));
        }
        if run.status == RunStatus::Paused {
            act_on_pause(&client, server, &mut progress, &run, &targets, &mut report).await?;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    progress.finish();
    summary(&report.run, started);
    hook_summary(&client).await?;
    Ok(report)
}

/// How often the drain and validate hooks ran, and what each said last, from the event log.
async fn hook_summary(client: &Client) -> Result<(), CliError> {
    let mut finished: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page = client.get(&format!("/v1/events?after={after}&limit=1000")).await?;
        let events = page.get("events").and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(last_seq) = events.last().and_then(|e| e["seq"].as_u64()) else { break };
        after = last_seq;
        finished.extend(events.into_iter().filter(|e| e["kind"] == "hook_finished"));
    }
    for (name, phase, when) in [("drain", "/pre/", "before"), ("validate", "/post/", "after")] {
        let runs: Vec<&Value> = finished
            .iter()
            .filter(|e| e["data"]["invocation_id"].as_str().is_some_and(|id| id.contains(phase)))
            .collect();
        let last = runs.last().and_then(|e| e["data"]["message"].as_str()).unwrap_or("-");
        say(&format!(
            "hook {name} (examples/hooks/{name}.sh) ran {when} each rack's task: {} reports in \
             the event log; the last said \"{last}\"",
            runs.len()
        ));
    }
    Ok(())
}

async fn wait_ready(client: &Client, deadline: tokio::time::Instant) -> Result<usize, CliError> {
    loop {
        let all = client.get("/v1/components").await?;
        let all = all.as_array().cloned().unwrap_or_default();
        let ready = all
            .iter()
            .filter(|c| c.pointer("/status/phase").and_then(Value::as_str) == Some("ready"))
            .count();
        if !all.is_empty() && ready == all.len() {
            return Ok(ready);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::Local(format!(
                "only {ready} of {} components became ready",
                all.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn act_on_pause(
    client: &Client,
    server: &Server,
    progress: &mut Progress,
    run: &Run,
    _targets: &[Target],
    report: &mut DemoReport,
) -> Result<(), CliError> {
    let id = run.id.as_str();
    match run.status_reason {
        RunStatusReason::WaveGate => {
            progress.note(&format!(
                "  wave {} done ({}); an operator checks it and advances: POST /v1/runs/{id}/advance",
                run.current_wave,
                wave_counts(run, run.current_wave)
            ));
            client
                .post(&format!("/v1/runs/{id}/advance"), &typed(&AdvanceRequest::default()))
                .await?;
            report.advances += 1;
        }
        RunStatusReason::SafetyGate => {
            progress.note(
                "  SAFETY GATE: the run stopped dispatching. The operator inspects the failed",
            );
            progress.note(&format!(
                "  racks, fixes the fault and resumes: POST /v1/runs/{id}/resume acknowledges"
            ));
            progress.note(
                "  these failures (recorded in the event log), so the gate counts only new ones",
            );
            if let Some(sim) = server.sim() {
                sim.clear_injected_failures();
            }
            tokio::time::sleep(Duration::from_millis(800)).await;
            client
                .post(
                    &format!("/v1/runs/{id}/resume"),
                    &typed(&ReasonRequest { reason: Some("failures acknowledged".into()) }),
                )
                .await?;
            report.safety_resumes += 1;
        }
        _ => {
            client
                .post(&format!("/v1/runs/{id}/resume"), &typed(&ReasonRequest::default()))
                .await?;
        }
    }
    Ok(())
}

fn wave_counts(run: &Run, number: u32) -> String {
    match run.waves.iter().find(|w| w.number == number) {
        Some(w) => format!(
            "{} completed, {} failed, {} skipped",
            w.counts.completed,
            w.counts.failed + w.counts.terminated,
            w.counts.skipped
        ),
        None => "-".to_string(),
    }
}

fn summary(run: &Run, started: std::time::Instant) {
    let rows: Vec<Vec<String>> = run
        .waves
        .iter()
        .map(|w| {
            let wall = match (w.opened_at, w.finished_at) {
                (Some(open), Some(done)) => {
                    format!("{:.1}s", (done - open).num_milliseconds() as f64 / 1000.0)
                }
                _ => "-".to_string(),
            };
            vec![
                w.number.to_string(),
                w.size.to_string(),
                w.counts.completed.to_string(),
                (w.counts.failed + w.counts.terminated).to_string(),
                w.counts.skipped.to_string(),
                wall,
            ]
        })
        .collect();
    say("");
    say(&render(&["WAVE", "RACKS", "COMPLETED", "FAILED", "SKIPPED", "WALL TIME"], &rows));
    say(&format!(
        "run {} finished {} ({}) in {:.1}s total",
        run.id,
        run.status,
        counts_line(run),
        started.elapsed().as_secs_f64()
    ));
}

/// The demo's run: firmware 2.0.0 everywhere, a canary rack, then a quarter, then the rest, four
/// racks in flight, pausing at two failures in a wave.
fn demo_run(racks: u32) -> RunRequest {
    let gate = SafetyGate {
        failure_count: Some(FailureCount { max: 2 }),
        failure_rate: None,
        scope: GateScope::CurrentWave,
    };
    RunRequest {
        name: Some("demo firmware 2.0.0".into()),
        operation: Operation::FirmwareUpdate { version: "2.0.0".into(), components: Vec::new() },
        selector: Selector { all: Some(true), ..Selector::default() },
        policy: PolicyOverrides {
            max_parallel_racks: Some(4),
            waves: Some(WaveSpec::Count(vec![1, (racks / 4).max(1)])),
            ordering: Some(Ordering::OnePerRowRoundRobin),
            safety_gates: Some(vec![gate]),
            auto_advance: Some(false),
            hooks: Some(HookRefs { pre: vec!["drain".into()], post: vec!["validate".into()] }),
            ..PolicyOverrides::default()
        },
        dry_run: false,
    }
}

/// The demo's pre hook, `examples/hooks/drain.sh` (built into the binary).
const DRAIN_SCRIPT: &str = include_str!("../../../examples/hooks/drain.sh");
/// The demo's post hook, `examples/hooks/validate.sh` (built into the binary).
const VALIDATE_SCRIPT: &str = include_str!("../../../examples/hooks/validate.sh");

/// A demo hook named `name`: `script` written next to the demo's database as `{name}.sh` and run
/// through `/bin/sh` (drain before every rack's task, validate after it).
fn site_hook(dir: &std::path::Path, name: &str, script: &str) -> Result<HookEntry, CliError> {
    let path = dir.join(format!("{name}.sh"));
    std::fs::write(&path, script)
        .map_err(|e| CliError::Local(format!("cannot write {}: {e}", path.display())))?;
    Ok(HookEntry {
        name: name.into(),
        exec: Some(vec!["/bin/sh".into(), path.display().to_string()]),
        http: None,
        timeout_seconds: 30,
    })
}

/// A request struct as the JSON body the client sends (the same types the server parses).
fn typed(request: &impl serde::Serialize) -> Value {
    serde_json::to_value(request).unwrap_or(Value::Null)
}
