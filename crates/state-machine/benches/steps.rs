//! Step throughput: target-machine cycles (claim -> submitted -> task finished), run steps
//! (pause -> resume), and component status derivation per kind.
//!
//! Every benchmark runs twice: `wall/...` (criterion's wall clock) and `cpu/...` (this thread's
//! CPU time from `/proc/thread-self/sched`; Linux with scheduler debug info only). The machine these run on is shared, so the CPU figure is the one that says what one
//! core can do; the wall figure includes time the thread spent descheduled.
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{DateTime, TimeDelta, Utc};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, black_box, criterion_group, criterion_main,
};
use std::sync::Arc;
use steward_proto::{
    ComponentId, ComponentKind, Operation, RackSpec, Run, RunPolicy, RunStatus, RunStatusReason,
    Selector, StatusCounts, Target, TargetId, TaskId, TaskStatus, Timestamp, Wave,
};
use steward_state_machine::{
    Fleet, FleetConfig, FleetEvent, Machine, RunEvent, RunMachine, StatusMapper, TargetEvent,
    TargetMachine,
};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn target() -> Target {
    let components: Vec<ComponentId> =
        (0..18).map(|i| ComponentId::new(format!("rack-0001-c{i}"))).collect();
    Target::pending(&"run-0001".into(), "rack-0001".into(), 1, Arc::from(components), t0())
}

fn run() -> Run {
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: "run-0001".into(),
        name: "bench".into(),
        operation: Operation::FirmwareUpdate { version: "1.2.3".into(), components: vec![] },
        selector: Selector::default(),
        policy: RunPolicy::default(),
        status: RunStatus::Running,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves: (1..=3)
            .map(|number| Wave {
                number,
                size: 10,
                counts: StatusCounts { pending: 10, ..StatusCounts::default() },
                acknowledged_failures: 0,
                opened_at: None,
                finished_at: None,
            })
            .collect(),
        counts: StatusCounts { pending: 30, ..StatusCounts::default() },
        initiator: "bench".into(),
        created_at: t0(),
        started_at: Some(t0()),
        finished_at: None,
        updated_at: t0(),
    }
}

/// (All groups use flat sampling: equal, long samples, so the CPU clock's tick-sized lag
/// stays small against each sample.)
///
/// CPU time of the calling thread, in nanoseconds: `se.sum_exec_runtime` (milliseconds with
/// six decimals) from `/proc/thread-self/sched`. It may lag by up to one scheduler tick, which
/// averages out over criterion's samples of tens of milliseconds.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/thread-self/sched") else { return 0 };
    let Some(line) = text.lines().find(|l| l.starts_with("se.sum_exec_runtime")) else {
        return 0;
    };
    let value = line.rsplit(':').next().unwrap_or("").trim();
    let (ms, frac) = value.split_once('.').unwrap_or((value, "0"));
    let ms: u64 = ms.parse().unwrap_or(0);
    let frac = format!("{frac:0<6}");
    let ns: u64 = frac[..6].parse().unwrap_or(0);
    ms * 1_000_000 + ns
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else {
            (1e-6, "ms")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per_iteration = match t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => {
                *n as f64
            }
        };
        for v in values {
            *v = per_iteration * 1e9 / *v / 1e6;
        }
        "M/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn target_steps<M: Measurement>(c: &mut Criterion<M>) {
    let now = t0();
    let start = target();
    let claim = TargetEvent::Claim {
        pre_hook: None,
        lease_until: now + TimeDelta::seconds(30),
        operation: steward_proto::Operation::PowerCycle,
    };
    let submitted = TargetEvent::Submitted { task_id: TaskId::new("task-0001") };
    let finished = TargetEvent::TaskFinished {
        post_hook: None,
        status: TaskStatus::Completed,
        message: String::new(),
        max_attempts: 1,
        retry_backoff_seconds: 60,
    };
    let mut group = c.benchmark_group(format!("{}/target", prefix::<M>()));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(3));
    group.bench_function("claim_submit_finish_cycle", |b| {
        b.iter(|| {
            let (t, e1) = TargetMachine::step(black_box(&start), &claim, now).unwrap();
            let (t, e2) = TargetMachine::step(&t, &submitted, now).unwrap();
            let (t, e3) = TargetMachine::step(&t, &finished, now).unwrap();
            black_box((t, e1, e2, e3))
        })
    });
    group.finish();
}

fn run_steps<M: Measurement>(c: &mut Criterion<M>) {
    let now = t0();
    let start = run();
    let pause =
        RunEvent::Pause { reason: RunStatusReason::OperatorPaused, message: "by hand".into() };
    let resume = RunEvent::Resume { initiator: "op".into() };
    let mut group = c.benchmark_group(format!("{}/run", prefix::<M>()));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(2));
    group.bench_function("pause_resume", |b| {
        b.iter(|| {
            let (r, e1) = RunMachine::step(black_box(&start), &pause, now).unwrap();
            let (r, e2) = RunMachine::step(&r, &resume, now).unwrap();
            black_box((r, e1, e2))
        })
    });
    group.finish();
}

fn status_derivation<M: Measurement>(c: &mut Criterion<M>) {
    let mapper = StatusMapper::default();
    let cases: [(ComponentKind, &str); 4] = [
        (ComponentKind::Compute, "Assigned/Ready"),
        (ComponentKind::Nvswitch, r#"{"state":"configuring","since":"2026-01-01T00:00:00Z"}"#),
        (ComponentKind::PowerShelf, r#"{"state":"ready"}"#),
        (ComponentKind::Node, "ready"),
    ];
    let mut group = c.benchmark_group(format!("{}/status_derive", prefix::<M>()));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    for (kind, raw) in cases {
        group.bench_with_input(BenchmarkId::from_parameter(kind.as_str()), &raw, |b, raw| {
            b.iter(|| black_box(mapper.derive(kind, black_box(raw))))
        });
    }
    group.finish();
}

/// A fleet with one rack and one running run whose single target is pending.
fn small_fleet() -> Fleet {
    let mut fleet = Fleet::new(FleetConfig::default());
    let now = t0();
    let rack = RackSpec {
        id: "rack-0001".into(),
        name: String::new(),
        location: Default::default(),
        labels: Default::default(),
        components: vec![],
    };
    fleet
        .apply(&FleetEvent::InventoryUpserted { initiator: String::new(), racks: vec![rack] }, now)
        .unwrap();
    let mut run = run();
    run.status = RunStatus::Pending;
    run.current_wave = 0;
    run.waves.truncate(1);
    run.waves[0].size = 1;
    run.policy.max_attempts = u32::MAX;
    run.policy.retry_backoff_seconds = 0;
    fleet
        .apply(&FleetEvent::RunCreated { run: Box::new(run), targets: vec![target()] }, now)
        .unwrap();
    fleet.apply(&FleetEvent::RunStarted { run_id: "run-0001".into() }, now).unwrap();
    fleet
}

fn fleet_steps<M: Measurement>(c: &mut Criterion<M>) {
    let now = t0();
    let target_id = TargetId::new("run-0001:rack-0001");
    // A cycle that can repeat forever: the task fails, the target goes back to pending with the
    // next attempt (no backoff, unlimited attempts) and is claimed again.
    let events = [
        FleetEvent::TargetClaimed {
            target_id: target_id.clone(),
            lease_until: now + TimeDelta::seconds(30),
        },
        FleetEvent::TargetSubmitted { target_id: target_id.clone(), task_id: "task-0001".into() },
        FleetEvent::TaskObserved {
            task_id: "task-0001".into(),
            target_id,
            status: TaskStatus::Failed,
            message: String::new(),
            component_results: Default::default(),
        },
    ];
    let mut fleet = small_fleet();
    let mut group = c.benchmark_group(format!("{}/fleet", prefix::<M>()));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(3));
    group.bench_function("claim_submit_task_failed_retry", |b| {
        b.iter(|| {
            for event in &events {
                black_box(fleet.apply(event, now).unwrap());
            }
        })
    });
    group.finish();
}

fn prefix<M: Measurement>() -> &'static str {
    if std::any::type_name::<M>().ends_with("ThreadCpu") { "cpu" } else { "wall" }
}

criterion_group!(
    wall,
    target_steps::<WallTime>,
    run_steps::<WallTime>,
    status_derivation::<WallTime>,
    fleet_steps::<WallTime>
);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = target_steps::<ThreadCpu>, run_steps::<ThreadCpu>, status_derivation::<ThreadCpu>,
        fleet_steps::<ThreadCpu>
}
criterion_main!(wall, cpu);
