//! Run machine: scenario tests and property tests over random event sequences.
//!
//! `run_random_sequences` drives random run events interleaved with count changes (the fleet's
//! bookkeeping, simulated here) and checks after every event: accepted => row in `RUN_ROWS`;
//! `IllegalTransition` => no row for (from, kind); terminal statuses absorb; rejected events
//! leave the run byte-for-byte equal; replay of the accepted log reproduces the final run.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use steward_proto::{
    Operation, Run, RunPolicy, RunStatus, RunStatusReason, Selector, StatusCounts, TargetStatus,
    Timestamp, Wave,
};
use steward_state_machine::{Effect, Machine, Notification, Rejected, RunEvent, RunMachine};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn pending(n: u32) -> StatusCounts {
    StatusCounts { pending: n, ..StatusCounts::default() }
}

/// A pending run with waves of the given sizes, all targets pending.
fn run(sizes: &[u32]) -> Run {
    let waves: Vec<Wave> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| Wave {
            number: i as u32 + 1,
            size: *size,
            counts: pending(*size),
            acknowledged_failures: 0,
            opened_at: None,
            finished_at: None,
        })
        .collect();
    Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: "run-1".into(),
        name: "test".into(),
        operation: Operation::PowerCycle,
        selector: Selector::default(),
        policy: RunPolicy::default(),
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 0,
        waves,
        counts: pending(sizes.iter().sum()),
        initiator: "alice".into(),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        updated_at: t0(),
    }
}

/// Moves `n` pending targets of wave `w` (1-based) to `to`, as the fleet would.
fn settle(run: &mut Run, w: usize, n: u32, to: TargetStatus) {
    for _ in 0..n {
        if run.waves[w - 1].counts.pending == 0 {
            return;
        }
        run.waves[w - 1].counts.shift(TargetStatus::Pending, to);
        run.counts.shift(TargetStatus::Pending, to);
    }
}

fn step(r: &Run, e: &RunEvent, now: Timestamp) -> Result<(Run, Vec<Effect>), Rejected> {
    RunMachine::step(r, e, now)
}

fn advance(expected: Option<u32>) -> RunEvent {
    RunEvent::Advance { expected_wave: expected, initiator: "alice".into() }
}

#[test]
fn start_opens_wave_one_and_sets_started_at_once() {
    let now = t0() + TimeDelta::seconds(5);
    let (r, effects) = step(&run(&[1, 2]), &RunEvent::Start, now).unwrap();
    assert_eq!((r.status, r.current_wave), (RunStatus::Running, 1));
    assert_eq!(r.started_at, Some(now));
    assert_eq!(r.waves[0].opened_at, Some(now));
    assert_eq!(r.waves[1].opened_at, None);
    assert_eq!(effects[0], Effect::PersistRun(r.id.clone()));
    assert!(matches!(
        &effects[1],
        Effect::Notify(Notification::RunStatusChanged {
            from: RunStatus::Pending,
            to: RunStatus::Running,
            ..
        })
    ));
}

#[test]
fn wave_gate_advance_checks_expected_wave_and_terminal_wave() {
    let now = t0();
    let (mut r, _) = step(&run(&[1, 2]), &RunEvent::Start, now).unwrap();
    let early = step(&r, &advance(None), now);
    assert!(
        matches!(&early, Err(Rejected::Guard { why, .. }) if why.contains("wave 1 is not finished")),
        "{early:?}"
    );
    settle(&mut r, 1, 1, TargetStatus::Completed);
    let pause =
        RunEvent::Pause { reason: RunStatusReason::WaveGate, message: "wave 1 done".into() };
    let (paused, _) = step(&r, &pause, now).unwrap();
    assert_eq!(paused.status_reason, RunStatusReason::WaveGate);
    let wrong = step(&paused, &advance(Some(3)), now);
    match wrong {
        Err(Rejected::Guard { why, .. }) => {
            assert!(why.contains("expected_wave 3") && why.contains("next wave 2"), "{why}");
        }
        other => panic!("expected a guard, got {other:?}"),
    }
    let (open, effects) = step(&paused, &advance(Some(2)), now).unwrap();
    assert_eq!((open.status, open.current_wave), (RunStatus::Running, 2));
    assert_eq!(open.status_reason, RunStatusReason::None);
    assert_eq!(open.status_message, "");
    assert_eq!(open.waves[1].opened_at, Some(now));
    assert_eq!(effects.len(), 2);
    // No wave 3.
    let mut last = open.clone();
    settle(&mut last, 2, 2, TargetStatus::Completed);
    let none = step(&last, &advance(None), now);
    assert!(matches!(none, Err(Rejected::Guard { .. })));
}

#[test]
fn auto_advance_is_running_to_running_with_persist_only() {
    let (mut r, _) = step(&run(&[1, 1]), &RunEvent::Start, t0()).unwrap();
    settle(&mut r, 1, 1, TargetStatus::Failed);
    let (next, effects) = step(&r, &advance(None), t0()).unwrap();
    assert_eq!((next.status, next.current_wave), (RunStatus::Running, 2));
    assert_eq!(effects, vec![Effect::PersistRun(r.id.clone())]);
}

#[test]
fn resume_at_wave_gate_is_refused_with_advice_to_advance() {
    let (mut r, _) = step(&run(&[1, 1]), &RunEvent::Start, t0()).unwrap();
    settle(&mut r, 1, 1, TargetStatus::Completed);
    let pause = RunEvent::Pause { reason: RunStatusReason::WaveGate, message: String::new() };
    let (paused, _) = step(&r, &pause, t0()).unwrap();
    let refused = step(&paused, &RunEvent::Resume { initiator: "bob".into() }, t0()).unwrap_err();
    assert!(refused.to_string().contains("advance"), "{refused}");
    let (advanced, _) = step(&paused, &advance(Some(2)), t0()).unwrap();
    assert_eq!((advanced.status, advanced.current_wave), (RunStatus::Running, 2));
}

#[test]
fn resume_after_safety_gate_acknowledges_failures() {
    let (mut r, _) = step(&run(&[4]), &RunEvent::Start, t0()).unwrap();
    settle(&mut r, 1, 2, TargetStatus::Failed);
    settle(&mut r, 1, 1, TargetStatus::Terminated);
    let pause = RunEvent::Pause {
        reason: RunStatusReason::SafetyGate,
        message: "3 failures >= max 3".into(),
    };
    let (paused, _) = step(&r, &pause, t0()).unwrap();
    assert_eq!(paused.status_message, "3 failures >= max 3");
    let (resumed, effects) =
        step(&paused, &RunEvent::Resume { initiator: "bob".into() }, t0()).unwrap();
    assert_eq!(resumed.waves[0].acknowledged_failures, 3);
    assert_eq!(resumed.status_reason, RunStatusReason::None);
    match &effects[1] {
        Effect::Notify(Notification::RunStatusChanged { message, .. }) => {
            assert!(message.contains("3 failures acknowledged"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // An operator pause does not acknowledge.
    let pause = RunEvent::Pause { reason: RunStatusReason::OperatorPaused, message: String::new() };
    let mut r2 = r.clone();
    r2.waves[0].acknowledged_failures = 0;
    let (p2, _) = step(&r2, &pause, t0()).unwrap();
    let (res2, _) = step(&p2, &RunEvent::Resume { initiator: "bob".into() }, t0()).unwrap();
    assert_eq!(res2.waves[0].acknowledged_failures, 0);
}

#[test]
fn finish_terminal_status_rule() {
    let cases: &[(&[(TargetStatus, u32)], RunStatus)] = &[
        (&[(TargetStatus::Completed, 3)], RunStatus::Completed),
        (&[(TargetStatus::Skipped, 3)], RunStatus::Completed),
        (&[(TargetStatus::Completed, 1), (TargetStatus::Skipped, 2)], RunStatus::Completed),
        (
            &[(TargetStatus::Completed, 2), (TargetStatus::Failed, 1)],
            RunStatus::CompletedWithFailures,
        ),
        (&[(TargetStatus::Skipped, 2), (TargetStatus::Terminated, 1)], RunStatus::Failed),
        (&[(TargetStatus::Failed, 2), (TargetStatus::Terminated, 1)], RunStatus::Failed),
    ];
    for (settles, expected) in cases {
        let (mut r, _) = step(&run(&[3]), &RunEvent::Start, t0()).unwrap();
        let unfinished = step(&r, &RunEvent::Finish, t0());
        assert!(matches!(unfinished, Err(Rejected::Guard { .. })));
        for (to, n) in *settles {
            settle(&mut r, 1, *n, *to);
        }
        let (done, _) = step(&r, &RunEvent::Finish, t0()).unwrap();
        assert_eq!(done.status, *expected, "{settles:?}");
        assert_eq!(done.finished_at, Some(t0()));
    }
}

#[test]
fn cancel_from_every_non_terminal_status() {
    let cancel = RunEvent::Cancel { initiator: "carol".into(), reason: Some("oops".into()) };
    let (c, _) = step(&run(&[1]), &cancel, t0()).unwrap();
    assert_eq!(c.status, RunStatus::Cancelled);
    assert_eq!(c.status_message, "cancelled by carol: oops");
    let again = step(&c, &cancel, t0());
    assert!(matches!(again, Err(Rejected::IllegalTransition { .. })));
}

#[test]
fn pause_needs_a_reason() {
    let (r, _) = step(&run(&[1]), &RunEvent::Start, t0()).unwrap();
    let bad =
        step(&r, &RunEvent::Pause { reason: RunStatusReason::None, message: String::new() }, t0());
    assert!(matches!(bad, Err(Rejected::Guard { .. })));
}

// ---------------------------------------------------------------- property tests

#[derive(Clone, Debug)]
enum Op {
    Event(u8, u8),
    /// Settle `n` pending targets of the current wave to status index `s`.
    Settle(u32, u8),
}

fn gen_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => ((0u8..6), (0u8..6)).prop_map(|(k, d)| Op::Event(k, d)),
        2 => ((1u32..3), (4u8..8)).prop_map(|(n, s)| Op::Settle(n, s)),
    ]
}

fn realise(kind: u8, data: u8) -> RunEvent {
    match kind {
        0 => RunEvent::Start,
        1 => RunEvent::Pause {
            reason: RunStatusReason::ALL[data as usize % RunStatusReason::ALL.len()],
            message: String::new(),
        },
        2 => RunEvent::Resume { initiator: "op".into() },
        3 => advance(if data < 3 { None } else { Some(u32::from(data) - 2) }),
        4 => RunEvent::Finish,
        _ => RunEvent::Cancel { initiator: "op".into(), reason: None },
    }
}

#[derive(Clone, Debug)]
enum Logged {
    Event(RunEvent, Timestamp),
    Settle(usize, u32, TargetStatus),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn run_random_sequences(
        sizes in prop::collection::vec(1u32..4, 1..4),
        ops in prop::collection::vec((gen_op(), 0i64..100), 1..50),
    ) {
        let mut state = run(&sizes);
        let mut now = t0();
        let mut log = Vec::new();
        for (op, dt) in &ops {
            now += TimeDelta::seconds(*dt);
            match op {
                Op::Settle(n, s) => {
                    let w = state.current_wave.max(1) as usize;
                    let to = TargetStatus::ALL[*s as usize];
                    settle(&mut state, w, *n, to);
                    log.push(Logged::Settle(w, *n, to));
                }
                Op::Event(k, d) => {
                    let event = realise(*k, *d);
                    let before = serde_json::to_string(&state).unwrap();
                    let from = state.status;
                    let kind = event.kind();
                    let result = RunMachine::step(&state, &event, now);
                    match result {
                        Ok((next, effects)) => {
                            prop_assert!(!from.is_terminal());
                            prop_assert!(RunMachine::row_exists(from, kind, next.status),
                                "{from} --{kind}--> {} not in table", next.status);
                            prop_assert!(matches!(effects.first(), Some(Effect::PersistRun(_))));
                            if next.status != from {
                                prop_assert!(effects.iter().any(|e| matches!(e, Effect::Notify(_))));
                            }
                            if next.status == RunStatus::Running {
                                prop_assert_eq!(next.status_reason, RunStatusReason::None);
                            }
                            prop_assert!(next.current_wave as usize <= next.waves.len());
                            prop_assert_eq!(next.finished_at.is_some(), next.status.is_terminal());
                            if state.started_at.is_some() {
                                prop_assert_eq!(next.started_at, state.started_at);
                            }
                            state = next;
                            log.push(Logged::Event(event, now));
                        }
                        Err(Rejected::IllegalTransition { .. }) => {
                            prop_assert!(!RunMachine::pair_allowed(from, kind));
                            prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                        }
                        Err(Rejected::Guard { .. }) => {
                            prop_assert!(RunMachine::pair_allowed(from, kind));
                            prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
            }
        }
        let mut replayed = run(&sizes);
        for entry in &log {
            match entry {
                Logged::Event(event, at) => {
                    replayed = RunMachine::step(&replayed, event, *at).unwrap().0;
                }
                Logged::Settle(w, n, to) => settle(&mut replayed, *w, *n, *to),
            }
        }
        prop_assert_eq!(serde_json::to_string(&replayed).unwrap(),
            serde_json::to_string(&state).unwrap());
    }
}
