//! Helpers shared by the runtime benchmarks (`reducer_throughput`, `reducer_latency`,
//! `firmware_run`, `cold_start`): a Core that owns nothing, the sim fleet shape, metric reads,
//! percentiles, env knobs and memory readings.
// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;
use steward_proto::{IdempotencyKey, Observation, TaskId};
use steward_runtime::Metrics;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};
use steward_runtime::store::Synchronous;
use steward_sim::{LatencyRange, SimConfig};

/// Whether cargo ran us as a benchmark (`cargo bench` passes `--bench`); without it (as under
/// `cargo test --all-targets`) each bench runs a tiny smoke case.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// An env knob with a default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A list knob (`A,B,C`) with a default.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// The `synchronous` mode to bench with: `BENCH_SYNC` = `full` (default), `normal` or `off`
/// (to tell fsync stalls from reducer work).
pub fn bench_sync() -> Synchronous {
    match std::env::var("BENCH_SYNC").as_deref() {
        Ok("normal") => Synchronous::Normal,
        Ok("off") => Synchronous::Off,
        _ => Synchronous::Full,
    }
}

/// A Core with nothing in it: observing returns no components, so the inventory poller adds
/// no work and every event in a measurement comes from the bench's own commands.
pub struct NullCore;

#[async_trait::async_trait]
impl Core for NullCore {
    async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
        Ok(Vec::new())
    }

    async fn submit(&self, _request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        Ok(SubmitOutcome::Rejected { message: "null core".into() })
    }

    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        Err(CoreError::NotFound { task: task.clone() })
    }

    async fn find_task(&self, _key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
        Ok(None)
    }

    async fn cancel(&self, _task: &TaskId) -> Result<(), CoreError> {
        Ok(())
    }
}

/// A GB200-like sim fleet: `compute` trays per rack plus `nvswitch` switches and one power
/// shelf when `extras` is set; tasks take no time.
pub fn sim_config(racks: u32, compute: u32, extras: bool) -> SimConfig {
    SimConfig {
        racks,
        rows: (racks / 20).max(1),
        compute_per_rack: compute,
        nvswitch_per_rack: u32::from(extras),
        power_shelf_per_rack: u32::from(extras),
        node_per_rack: 0,
        latency: LatencyRange::fixed(0),
        ..SimConfig::default()
    }
}

/// A value from the Prometheus text of `metrics` (first sample line starting with `name`).
pub fn metric(metrics: &Metrics, name: &str) -> f64 {
    let text = metrics.encode();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Events logged so far and reducer batches that logged something.
///
/// The reducer runs the planner exactly once per batch in which something changed (and on a
/// planning tick); with ticks pushed far apart, plan calls count the transactions that wrote
/// events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub events: f64,
    pub batches: f64,
}

impl Counters {
    pub fn read(metrics: &Metrics) -> Self {
        Self {
            events: metric(metrics, "steward_events_applied_total"),
            batches: metric(metrics, "steward_plan_duration_seconds_count"),
        }
    }

    pub fn since(self, before: Counters) -> Counters {
        Counters { events: self.events - before.events, batches: self.batches - before.batches }
    }
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Fields of /proc/self/status in kB (`VmHWM`, `VmRSS`, ...).
pub fn proc_status_kb() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kb = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some((key.to_string(), kb))
        })
        .collect()
}

/// A multi-threaded tokio runtime with two workers (the machine has two cores).
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The median of a few numbers.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() { 0.0 } else { values[values.len() / 2] }
}
