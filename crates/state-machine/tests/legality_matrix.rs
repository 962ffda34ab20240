//! Exhaustive legality matrices for the run, target and task machines, generated from
//! `Status::ALL x EventKind::ALL` so a new status or event kind cannot be left out.
//!
//! Which test catches a deliberately wrong table row:
//! - an extra, missing or changed row in `TARGET_ROWS` / `RUN_ROWS` / `TASK_ROWS` makes
//!   `*_table_is_the_reviewed_table` fail (the table is compared with a golden copy written out
//!   here by hand), and since `step` consults the same rows, `*_matrix` then disagrees for the
//!   affected (status, event) pair or `*_every_row_is_reachable` finds a row nothing produces;
//! - a row out of a terminal status also fails `terminal_statuses_have_no_rows` and the
//!   "terminal statuses absorb" assertion of the proptests in `target_machine.rs`/`run_machine.rs`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use steward_proto::{
    ComponentId, Gate, Hold, HookPhase, HookRun, Operation, Run, RunPolicy, RunStatus,
    RunStatusReason, Selector, StatusCounts, Target, TargetStatus, Task, TaskStatus, Timestamp,
    Wave,
};
use steward_state_machine::{
    Machine, Rejected, RunEvent, RunEventKind, RunMachine, TargetEvent, TargetEventKind,
    TargetMachine, TaskEvent, TaskEventKind, TaskMachine,
};

fn now() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

type Golden = &'static [(&'static str, &'static str, &'static str)];

/// Checks, for machine `M`: the table equals `golden`; every (status, kind) pair is accepted
/// exactly when the table has a row for it (with the representative state and event); every
/// row is produced by some variant.
fn check_machine<M: Machine>(
    golden: Golden,
    representative: impl Fn(M::Status, M::EventKind) -> (M::State, M::Event),
    variants: impl Fn(M::Status, M::EventKind) -> Vec<(M::State, M::Event)>,
) where
    M::State: std::fmt::Debug,
{
    let table = M::table();
    let rows: BTreeSet<(String, String, String)> =
        table.transitions.iter().map(|t| (t.from.clone(), t.event.clone(), t.to.clone())).collect();
    let expected: BTreeSet<(String, String, String)> =
        golden.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(rows, expected, "{} table differs from the reviewed table", M::NAME);
    assert_eq!(rows.len(), table.transitions.len(), "{} table has duplicate rows", M::NAME);

    let mut produced = BTreeSet::new();
    for status in M::statuses() {
        for kind in M::event_kinds() {
            let from = M::status_name(*status);
            let event_name = M::event_name(*kind);
            let (state, event) = representative(*status, *kind);
            assert_eq!(M::status(&state), *status);
            assert_eq!(M::kind(&event), *kind);
            let legal = table.lookup(from, event_name).is_some();
            match M::step(&state, &event, now()) {
                Ok((next, _)) => {
                    assert!(legal, "{}: {from} accepted {event_name}, not in the table", M::NAME);
                    let to = M::status_name(M::status(&next));
                    produced.insert((from.to_string(), event_name.to_string(), to.to_string()));
                }
                Err(Rejected::IllegalTransition { machine, from: f, event: e, allowed }) => {
                    assert!(
                        !legal,
                        "{}: {from} rejected {event_name} though the table allows it",
                        M::NAME
                    );
                    assert_eq!((machine, f, e), (M::NAME, from, event_name));
                    assert_eq!(allowed, table.allowed_events(from));
                }
                Err(other) => panic!(
                    "{}: representative {from}/{event_name} refused by a guard: {other}",
                    M::NAME
                ),
            }
            for (state, event) in variants(*status, *kind) {
                if let Ok((next, _)) = M::step(&state, &event, now()) {
                    let to = M::status_name(M::status(&next));
                    produced.insert((from.to_string(), event_name.to_string(), to.to_string()));
                }
            }
        }
    }
    assert_eq!(produced, rows, "{}: rows produced by step differ from the table", M::NAME);
}

// ------------------------------------------------------------------ target

const TARGET_GOLDEN: Golden = &[
    ("pending", "claim", "claimed"),
    ("blocked", "claim", "claimed"),
    ("claimed", "submitted", "submitted"),
    ("claimed", "conflict", "blocked"),
    ("claimed", "lease_expired", "pending"),
    ("claimed", "submit_rejected", "failed"),
    ("claimed", "submit_rejected", "pending"),
    ("submitted", "task_finished", "completed"),
    ("submitted", "task_finished", "terminated"),
    ("submitted", "task_finished", "failed"),
    ("submitted", "task_finished", "pending"),
    ("pending", "skip", "skipped"),
    ("pending", "cancel", "skipped"),
    ("claimed", "cancel", "skipped"),
    ("blocked", "cancel", "skipped"),
    ("submitted", "cancel", "submitted"),
    ("pending", "set_hold", "pending"),
    ("blocked", "set_hold", "blocked"),
    ("pending", "claim", "pre_hooks"),
    ("blocked", "claim", "pre_hooks"),
    ("pre_hooks", "hook_started", "pre_hooks"),
    ("pre_hooks", "hook_finished", "pre_hooks"),
    ("pre_hooks", "hook_finished", "claimed"),
    ("pre_hooks", "hook_finished", "failed"),
    ("pre_hooks", "hook_finished", "pending"),
    ("pre_hooks", "cancel", "skipped"),
    ("submitted", "task_finished", "post_hooks"),
    ("post_hooks", "hook_started", "post_hooks"),
    ("post_hooks", "hook_finished", "post_hooks"),
    ("post_hooks", "hook_finished", "completed"),
    ("post_hooks", "hook_finished", "failed"),
    ("post_hooks", "hook_finished", "pending"),
    ("post_hooks", "cancel", "terminated"),
];

fn target_in(status: TargetStatus) -> Target {
    Target {
        hook: None,
        hooks_reported: Vec::new(),
        id: "run-1:r1".into(),
        run_id: "run-1".into(),
        rack_id: "r1".into(),
        wave: 1,
        components: Arc::from(vec![ComponentId::new("c1")]),
        status,
        attempt: 1,
        task_id: (status == TargetStatus::Submitted).then(|| "task-1".into()),
        message: String::new(),
        retry_after: None,
        lease_until: Some(now() - TimeDelta::seconds(1)),
        conflict_delay_seconds: 0,
        blocked_since: None,
        hold: None,
        updated_at: now(),
    }
    .with_hook(status)
}

/// Gives a target in a hook status the hook the representative hook events name.
trait WithHook {
    fn with_hook(self, status: TargetStatus) -> Self;
}

impl WithHook for Target {
    fn with_hook(mut self, status: TargetStatus) -> Self {
        let phase = match status {
            TargetStatus::PreHooks => HookPhase::Pre,
            TargetStatus::PostHooks => HookPhase::Post,
            _ => return self,
        };
        self.hook = Some(HookRun {
            phase,
            index: 0,
            name: "drain".into(),
            invocation_id: "inv-1".into(),
            since: now(),
            starts: 0,
        });
        self
    }
}

fn target_event(kind: TargetEventKind, variant: u8) -> TargetEvent {
    match kind {
        TargetEventKind::Claim => TargetEvent::Claim {
            lease_until: now() + TimeDelta::seconds(30),
            operation: steward_proto::Operation::PowerCycle,
            pre_hook: (variant == 1).then(|| "drain".to_string()),
        },
        TargetEventKind::Submitted => TargetEvent::Submitted { task_id: "task-1".into() },
        TargetEventKind::Conflict => TargetEvent::Conflict {
            message: "busy".into(),
            initial_delay_seconds: 30,
            max_delay_seconds: 300,
        },
        TargetEventKind::LeaseExpired => TargetEvent::LeaseExpired,
        TargetEventKind::SubmitRejected => TargetEvent::SubmitRejected {
            message: "no".into(),
            max_attempts: if variant == 0 { 1 } else { 3 },
            retry_backoff_seconds: 10,
        },
        TargetEventKind::TaskFinished => TargetEvent::TaskFinished {
            status: [
                TaskStatus::Completed,
                TaskStatus::Terminated,
                TaskStatus::Failed,
                TaskStatus::Failed,
            ][variant as usize % 4],
            message: String::new(),
            max_attempts: if variant == 3 { 3 } else { 1 },
            retry_backoff_seconds: 10,
            post_hook: (variant == 4).then(|| "validate".to_string()),
        },
        TargetEventKind::HookStarted => TargetEvent::HookStarted { invocation_id: "inv-1".into() },
        TargetEventKind::HookFinished => TargetEvent::HookFinished {
            invocation_id: "inv-1".into(),
            ok: variant < 2,
            message: "done".into(),
            next_hook: (variant == 1).then(|| "second".to_string()),
            lease_until: now() + TimeDelta::seconds(30),
            operation: steward_proto::Operation::PowerCycle,
            max_attempts: if variant == 3 { 3 } else { 1 },
            retry_backoff_seconds: 10,
        },
        TargetEventKind::Skip => TargetEvent::Skip { reason: "policy".into() },
        TargetEventKind::Cancel => TargetEvent::Cancel { reason: "stop".into() },
        TargetEventKind::SetHold => TargetEvent::SetHold {
            hold: Some(Hold {
                gate: Gate::Wave,
                message: "wave 2 not open".into(),
                since: now(),
                component: None,
            }),
        },
    }
}

#[test]
fn target_table_is_the_reviewed_table_and_matrix_holds() {
    check_machine::<TargetMachine>(
        TARGET_GOLDEN,
        |s, k| (target_in(s), target_event(k, 0)),
        |s, k| (0..5).map(|v| (target_in(s), target_event(k, v))).collect(),
    );
}

// ------------------------------------------------------------------ run

const RUN_GOLDEN: Golden = &[
    ("pending", "start", "running"),
    ("running", "pause", "paused"),
    ("paused", "resume", "running"),
    ("paused", "advance", "running"),
    ("running", "advance", "running"),
    ("running", "finish", "completed"),
    ("running", "finish", "completed_with_failures"),
    ("running", "finish", "failed"),
    ("pending", "cancel", "cancelled"),
    ("running", "cancel", "cancelled"),
    ("paused", "cancel", "cancelled"),
];

/// A run in `status` with two waves of one target: wave 1 open and finished with `first`; wave
/// 2 pending, or (when `all_done`) finished with `second`.
fn run_in(status: RunStatus, first: TargetStatus, second: Option<TargetStatus>) -> Run {
    let mut one = StatusCounts::default();
    one.add(first);
    let mut two = StatusCounts::default();
    two.add(second.unwrap_or(TargetStatus::Pending));
    let mut counts = one;
    counts.add(second.unwrap_or(TargetStatus::Pending));
    let wave = |number, counts| Wave {
        number,
        size: 1,
        counts,
        acknowledged_failures: 0,
        opened_at: None,
        finished_at: None,
    };
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: "run-1".into(),
        name: String::new(),
        operation: Operation::PowerOn,
        selector: Selector::default(),
        policy: RunPolicy::default(),
        status,
        status_reason: if status == RunStatus::Paused {
            RunStatusReason::WaveGate
        } else {
            RunStatusReason::None
        },
        status_message: String::new(),
        current_wave: if status == RunStatus::Pending { 0 } else { 1 },
        waves: vec![wave(1, one), wave(2, two)],
        counts,
        initiator: String::new(),
        created_at: now(),
        started_at: None,
        finished_at: None,
        updated_at: now(),
    }
}

fn run_event(kind: RunEventKind) -> RunEvent {
    match kind {
        RunEventKind::Start => RunEvent::Start,
        RunEventKind::Pause => {
            RunEvent::Pause { reason: RunStatusReason::OperatorPaused, message: "by hand".into() }
        }
        RunEventKind::Resume => RunEvent::Resume { initiator: "op".into() },
        RunEventKind::Advance => {
            RunEvent::Advance { expected_wave: Some(2), initiator: "op".into() }
        }
        RunEventKind::Finish => RunEvent::Finish,
        RunEventKind::Cancel => RunEvent::Cancel { initiator: "op".into(), reason: None },
    }
}

#[test]
fn run_table_is_the_reviewed_table_and_matrix_holds() {
    use TargetStatus::{Completed, Failed, Skipped};
    check_machine::<RunMachine>(
        RUN_GOLDEN,
        |s, k| {
            let second = (k == RunEventKind::Finish).then_some(Completed);
            let mut run = run_in(s, Completed, second);
            // At a wave gate only advance is legal; resume's representative pause is the operator's.
            if k == RunEventKind::Resume && s == RunStatus::Paused {
                run.status_reason = RunStatusReason::OperatorPaused;
            }
            (run, run_event(k))
        },
        |s, k| {
            [(Completed, Completed), (Completed, Failed), (Failed, Failed), (Skipped, Failed)]
                .into_iter()
                .map(|(a, b)| (run_in(s, a, Some(b)), run_event(k)))
                .collect()
        },
    );
}

// ------------------------------------------------------------------ task

const TASK_GOLDEN: Golden = &[
    ("pending", "observe", "pending"),
    ("pending", "observe", "waiting"),
    ("pending", "observe", "running"),
    ("pending", "observe", "completed"),
    ("pending", "observe", "failed"),
    ("pending", "observe", "terminated"),
    ("waiting", "observe", "waiting"),
    ("waiting", "observe", "running"),
    ("waiting", "observe", "completed"),
    ("waiting", "observe", "failed"),
    ("waiting", "observe", "terminated"),
    ("running", "observe", "running"),
    ("running", "observe", "completed"),
    ("running", "observe", "failed"),
    ("running", "observe", "terminated"),
];

fn task_in(status: TaskStatus) -> Task {
    Task {
        id: "task-1".into(),
        target_id: "run-1:r1".into(),
        run_id: "run-1".into(),
        rack_id: "r1".into(),
        idempotency_key: "run-1/run-1:r1/1".into(),
        status,
        component_results: Default::default(),
        message: String::new(),
        updated_at: now(),
    }
}

fn observe(status: TaskStatus) -> TaskEvent {
    TaskEvent::Observe { status, message: "m".into(), component_results: Default::default() }
}

#[test]
fn task_table_is_the_reviewed_table_and_matrix_holds() {
    let _ = TaskEventKind::ALL;
    check_machine::<TaskMachine>(
        TASK_GOLDEN,
        |s, _| (task_in(s), observe(TaskStatus::Completed)),
        |s, _| TaskStatus::ALL.iter().map(|to| (task_in(s), observe(*to))).collect(),
    );
}

#[test]
fn task_backward_report_is_a_guard() {
    let r = TaskMachine::step(&task_in(TaskStatus::Running), &observe(TaskStatus::Pending), now());
    assert!(matches!(r, Err(Rejected::Guard { .. })), "{r:?}");
}

// ------------------------------------------------------------------ shared

fn terminal_have_no_rows<M: Machine>() {
    let table = M::table();
    for terminal in &table.terminal {
        assert!(
            table.allowed_events(terminal).is_empty(),
            "{}: terminal {terminal} has rows",
            M::NAME
        );
    }
    for status in M::statuses() {
        let name = M::status_name(*status);
        assert!(table.states.iter().any(|s| s == name));
        if !M::is_terminal(*status) {
            assert!(!table.allowed_events(name).is_empty(), "{}: {name} is a dead end", M::NAME);
        }
    }
    let mermaid = table.to_mermaid();
    let plain = table.to_plain_table();
    for t in &table.transitions {
        assert!(mermaid.contains(&format!("{} --> {}: {}", t.from, t.to, t.event)));
        assert!(plain.contains(&t.event));
    }
}

#[test]
fn terminal_statuses_have_no_rows() {
    terminal_have_no_rows::<TargetMachine>();
    terminal_have_no_rows::<RunMachine>();
    terminal_have_no_rows::<TaskMachine>();
    assert_eq!(TargetMachine::table().terminal, ["completed", "failed", "terminated", "skipped"]);
    assert_eq!(
        RunMachine::table().terminal,
        ["completed", "completed_with_failures", "failed", "cancelled"]
    );
}
