//! Cold start with a long event log and a large fleet (issue 4, benchmark 7d).
//!
//! Builds a database the way the reducer would have written it, but directly through the pure
//! machines and [`Store::commit`] in big batches: 10,000 racks × 18 compute trays (180,000
//! components) imported in chunks of 100 racks, every component observed ready, two firmware
//! runs over every rack (per rack: claimed, submitted, task running, 18 trays reprovisioning,
//! 18 trays ready on the new version, task completed; then the run finishes), and
//! service-state toggles until the log holds exactly 1,000,000 events. Every event row is the
//! real `FleetEvent` JSON and every state row comes from the fleet the events produced (20,000
//! targets and tasks, 2 runs, history rows).
//!
//! Then it starts a child process (this binary again) that times `Runtime::start` to ready — the
//! first successful `handle.racks()` reply — and reads its own peak memory (`VmHWM`) after that;
//! the child's Core reports nothing, so the numbers are Steward's own. The start is repeated
//! `COLD_START_REPEAT` times (default 3) and the median is reported (the file is in the page
//! cache after the build; a truly cold disk cache adds the file's read time).
//!
//! `cargo bench -p steward-sim --bench cold_start`. Knobs: `COLD_START_RACKS` (10,000),
//! `COLD_START_EVENTS` (1,000,000), `COLD_START_DB` (build there, or reuse a file that exists).
//! Without `--bench` it runs a tiny smoke case.
// A benchmark measures wall time, so it reads the clock the pure crates may not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, missing_docs)]

mod reducer_common;

use chrono::{Duration, TimeZone, Utc};
use reducer_common::{
    NullCore, benching, env_or, median, proc_status_kb, sim_config, tokio_runtime,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use steward_proto::{
    ComponentId, CreateRunRequest, Operation, RunId, RunPolicy, Selector, ServiceState, TaskId,
    TaskStatus, Timestamp,
};
use steward_runtime::clock::ManualClock;
use steward_runtime::store::{BatchBuilder, Store, StoreOptions, Synchronous};
use steward_runtime::{Clock, Runtime, RuntimeConfig, SystemClock};
use steward_sim::SimCore;
use steward_state_machine::{Fleet, FleetConfig, FleetEvent};

const COMPUTE: u32 = 18;
const COMMIT_EVERY: usize = 25_000;

/// Applies events to the fleet and commits them in big batches, like a long-running reducer.
struct Writer {
    fleet: Fleet,
    store: Store,
    batch: BatchBuilder,
    pending: usize,
    seq: u64,
    now: Timestamp,
    limit: u64,
}

impl Writer {
    fn full(&self) -> bool {
        self.seq >= self.limit
    }

    fn push(&mut self, event: FleetEvent) {
        if self.full() {
            return;
        }
        self.now += Duration::milliseconds(7);
        let effects = self.fleet.apply(&event, self.now).unwrap_or_else(|e| panic!("{e}"));
        assert!(!effects.is_empty(), "every logged event changes something");
        self.seq += 1;
        self.batch.event(self.seq, self.now, &event).unwrap();
        self.batch.writes(&effects.writes, self.now);
        self.pending += 1;
        if self.pending >= COMMIT_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch).finish(&self.fleet).unwrap();
        self.store.commit(&batch).unwrap();
        self.pending = 0;
    }
}

fn observed(id: &ComponentId, state: &str, firmware: &str) -> FleetEvent {
    FleetEvent::ComponentObserved {
        initiator: String::new(),
        component_id: id.clone(),
        controller_state: state.into(),
        power_state: Some("on".into()),
        firmware_version: Some(firmware.into()),
        observed_at: None,
    }
}

fn firmware_run(w: &mut Writer, number: u32) {
    let version = format!("{}.0.0", number + 1);
    let run_id = RunId::new(format!("run-{number}"));
    let request = CreateRunRequest {
        name: Some(format!("firmware {version} everywhere")),
        operation: Operation::FirmwareUpdate { version: version.clone(), components: vec![] },
        selector: Selector { all: Some(true), ..Default::default() },
        policy: RunPolicy { max_parallel_racks: 1000, ..Default::default() },
        dry_run: false,
    };
    let new_run =
        steward_planner::plan_run(&w.fleet, &request, run_id.clone(), "bench", w.now).unwrap();
    let targets = new_run.targets.clone();
    w.push(FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets });
    w.push(FleetEvent::RunStarted { run_id: run_id.clone() });
    for target in targets {
        let task_id = TaskId::new(format!("task-{number}-{}", target.rack_id));
        let id = target.id.clone();
        let lease_until = w.now + Duration::seconds(30);
        w.push(FleetEvent::TargetClaimed { target_id: id.clone(), lease_until });
        w.push(FleetEvent::TargetSubmitted { target_id: id.clone(), task_id: task_id.clone() });
        let results = |status: TaskStatus| -> BTreeMap<ComponentId, TaskStatus> {
            target.components.iter().map(|c| (c.clone(), status)).collect()
        };
        w.push(FleetEvent::TaskObserved {
            task_id: task_id.clone(),
            target_id: id.clone(),
            status: TaskStatus::Running,
            message: format!("updating firmware to {version}"),
            component_results: results(TaskStatus::Running),
        });
        for c in target.components.iter() {
            w.push(observed(c, "Reprovisioning/FirmwareUpdate", &format!("{number}.0.0")));
        }
        for c in target.components.iter() {
            w.push(observed(c, "Ready", &version));
        }
        w.push(FleetEvent::TaskObserved {
            task_id,
            target_id: id,
            status: TaskStatus::Completed,
            message: format!("firmware {version} installed"),
            component_results: results(TaskStatus::Completed),
        });
    }
    w.push(FleetEvent::RunFinished { run_id });
}

fn build(path: &Path, racks: u32, events: u64) {
    let started = Instant::now();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
    let core = SimCore::new(sim_config(racks, COMPUTE, false), Arc::new(clock.clone())).unwrap();
    let inventory = core.inventory();
    drop(core);
    let mut w = Writer {
        fleet: Fleet::new(FleetConfig::default()),
        store: Store::open(path, &StoreOptions { synchronous: Synchronous::Normal }).unwrap(),
        batch: BatchBuilder::new(),
        pending: 0,
        seq: 0,
        now: clock.now(),
        limit: events,
    };
    for chunk in inventory.racks.chunks(100) {
        w.push(FleetEvent::InventoryUpserted { initiator: String::new(), racks: chunk.to_vec() });
    }
    let ids: Vec<ComponentId> = w.fleet.components.keys().cloned().collect();
    for id in &ids {
        w.push(observed(id, "Ready", "1.0.0"));
    }
    for number in 1..=2 {
        firmware_run(&mut w, number);
    }
    let mut i = 0usize;
    while !w.full() {
        let id = &ids[i % ids.len()];
        let to = if (i / ids.len()).is_multiple_of(2) { "maintenance" } else { "in_service" };
        w.push(FleetEvent::ServiceStateChanged {
            component_id: id.clone(),
            to: ServiceState::from(to),
            initiator: "ops".into(),
            note: Some("rotating spares".into()),
        });
        i += 1;
    }
    w.flush();
    w.store.close().unwrap();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {} events, {} components, {} targets in {:.1} s; file {} MiB",
        w.seq,
        w.fleet.components.len(),
        w.fleet.targets.len(),
        started.elapsed().as_secs_f64(),
        size / (1 << 20)
    );
}

/// The child: start the runtime on `db`, time it to the first `racks()` reply, report memory.
fn child(db: &Path) {
    let base = proc_status_kb();
    let rt = tokio_runtime();
    rt.block_on(async {
        let started = Instant::now();
        let config = RuntimeConfig::new(db);
        let runtime =
            Runtime::start(config, Arc::new(NullCore), Arc::new(SystemClock)).await.unwrap();
        let racks = runtime.handle().racks().await.unwrap();
        let ready = started.elapsed();
        let memory = proc_status_kb();
        println!(
            "READY ms={:.1} racks={} hwm_kb={} rss_kb={} base_rss_kb={}",
            ready.as_secs_f64() * 1000.0,
            racks.len(),
            memory.get("VmHWM").copied().unwrap_or(0),
            memory.get("VmRSS").copied().unwrap_or(0),
            base.get("VmRSS").copied().unwrap_or(0),
        );
        runtime.shutdown().await;
    });
}

fn main() {
    if let Ok(db) = std::env::var("COLD_START_CHILD") {
        child(Path::new(&db));
        return;
    }
    let bench = benching();
    let racks: u32 = env_or("COLD_START_RACKS", if bench { 10_000 } else { 20 });
    let events: u64 = env_or("COLD_START_EVENTS", if bench { 1_000_000 } else { 2_000 });
    let repeat: usize = env_or("COLD_START_REPEAT", if bench { 3 } else { 1 });
    let dir = tempfile::tempdir().unwrap();
    let db = std::env::var("COLD_START_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("cold.db"));
    if db.exists() {
        println!("reusing {}", db.display());
    } else {
        build(&db, racks, events);
    }
    let exe = std::env::current_exe().unwrap();
    let mut ready = Vec::new();
    let mut hwm = Vec::new();
    for _ in 0..repeat {
        let output =
            std::process::Command::new(&exe).env("COLD_START_CHILD", &db).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout.lines().find(|l| l.starts_with("READY")).unwrap();
        println!("  {line}");
        let field = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .unwrap()
        };
        ready.push(field("ms"));
        hwm.push(field("hwm_kb"));
    }
    println!(
        "cold start to ready: median {:.0} ms over {repeat} starts; \
         peak memory (VmHWM) median {:.0} MiB",
        median(&mut ready),
        median(&mut hwm) / 1024.0
    );
}
