//! Target machine: scenario tests and property tests over random event sequences.
//!
//! The proptest `target_random_sequences` checks, after every event: accepted => the row
//! (from, kind, to) is in `TARGET_ROWS`; `IllegalTransition` => no row for (from, kind); a
//! terminal status rejects everything; a rejected event leaves the state byte-for-byte equal;
//! the conflict backoff never exceeds the cap and never shrinks. At the end, replaying the
//! accepted events from the initial state reproduces the final state.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use std::sync::Arc;
use steward_proto::{ComponentId, Gate, Hold, Target, TargetStatus, TaskId, TaskStatus, Timestamp};
use steward_state_machine::{
    Effect, Machine, Rejected, TargetEvent, TargetMachine, next_conflict_delay,
};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

fn target() -> Target {
    Target::pending(
        &"run-1".into(),
        "r1".into(),
        1,
        Arc::from(vec![ComponentId::new("c1"), ComponentId::new("c2")]),
        t0(),
    )
}

fn conflict() -> TargetEvent {
    TargetEvent::Conflict {
        message: "rack busy".into(),
        initial_delay_seconds: 30,
        max_delay_seconds: 300,
    }
}

fn finished(status: TaskStatus, max_attempts: u32) -> TargetEvent {
    TargetEvent::TaskFinished {
        post_hook: None,
        status,
        message: String::new(),
        max_attempts,
        retry_backoff_seconds: 60,
    }
}

fn step(t: &Target, e: &TargetEvent, now: Timestamp) -> Result<(Target, Vec<Effect>), Rejected> {
    TargetMachine::step(t, e, now)
}

#[test]
fn claim_submit_complete_cycle() {
    let now = t0();
    let (claimed, effects) = step(
        &target(),
        &TargetEvent::Claim {
            pre_hook: None,
            lease_until: now + secs(30),
            operation: steward_proto::Operation::PowerCycle,
        },
        now,
    )
    .unwrap();
    assert_eq!(claimed.status, TargetStatus::Claimed);
    assert_eq!(claimed.lease_until, Some(now + secs(30)));
    assert_eq!(effects.len(), 2);
    match &effects[1] {
        Effect::SubmitTask(submit) => {
            assert_eq!(submit.idempotency_key.as_str(), "run-1/run-1:r1/1");
            assert_eq!(submit.components.len(), 2);
        }
        other => panic!("expected submit_task, got {other:?}"),
    }
    let (submitted, _) =
        step(&claimed, &TargetEvent::Submitted { task_id: TaskId::new("t-1") }, now).unwrap();
    assert_eq!(submitted.status, TargetStatus::Submitted);
    assert_eq!(submitted.lease_until, None);
    assert_eq!(submitted.task_id, Some(TaskId::new("t-1")));
    let (done, effects) = step(&submitted, &finished(TaskStatus::Completed, 1), now).unwrap();
    assert_eq!(done.status, TargetStatus::Completed);
    assert_eq!(effects, vec![Effect::PersistTarget(done.id.clone())]);
    assert!(!done.message.is_empty());
}

#[test]
fn failure_with_attempts_left_goes_back_to_pending_with_next_key() {
    let now = t0();
    let mut t = target();
    t.status = TargetStatus::Submitted;
    t.task_id = Some(TaskId::new("t-1"));
    let (next, _) = step(&t, &finished(TaskStatus::Failed, 2), now).unwrap();
    assert_eq!(next.status, TargetStatus::Pending);
    assert_eq!(next.attempt, 2);
    assert_eq!(next.task_id, None);
    assert_eq!(next.retry_after, Some(now + secs(60)));
    // Not claimable before the backoff passed.
    let early = step(
        &next,
        &TargetEvent::Claim {
            pre_hook: None,
            lease_until: now + secs(90),
            operation: steward_proto::Operation::PowerCycle,
        },
        now + secs(10),
    );
    assert!(matches!(early, Err(Rejected::Guard { .. })), "{early:?}");
    let (claimed, effects) = step(
        &next,
        &TargetEvent::Claim {
            pre_hook: None,
            lease_until: now + secs(200),
            operation: steward_proto::Operation::PowerCycle,
        },
        now + secs(60),
    )
    .unwrap();
    match &effects[1] {
        Effect::SubmitTask(submit) => {
            assert_eq!(submit.idempotency_key.as_str(), "run-1/run-1:r1/2")
        }
        other => panic!("expected submit_task, got {other:?}"),
    }
    // Second failure: no attempt left.
    let (submitted, _) =
        step(&claimed, &TargetEvent::Submitted { task_id: "t-2".into() }, now + secs(61)).unwrap();
    let (failed, _) = step(&submitted, &finished(TaskStatus::Failed, 2), now + secs(62)).unwrap();
    assert_eq!(failed.status, TargetStatus::Failed);
    // failed is terminal and absorbing.
    let again = step(
        &failed,
        &TargetEvent::Claim {
            pre_hook: None,
            lease_until: now + secs(999),
            operation: steward_proto::Operation::PowerCycle,
        },
        now + secs(999),
    );
    assert!(
        matches!(again, Err(Rejected::IllegalTransition { allowed, .. }) if allowed.is_empty())
    );
}

#[test]
fn submit_rejected_retries_then_fails() {
    let now = t0();
    let mut t = target();
    t.status = TargetStatus::Claimed;
    t.lease_until = Some(now + secs(30));
    let rejected = TargetEvent::SubmitRejected {
        message: "bad".into(),
        max_attempts: 2,
        retry_backoff_seconds: 5,
    };
    let (pending, _) = step(&t, &rejected, now).unwrap();
    assert_eq!((pending.status, pending.attempt), (TargetStatus::Pending, 2));
    assert_eq!(pending.lease_until, None);
    t.attempt = 2;
    let (failed, _) = step(&t, &rejected, now).unwrap();
    assert_eq!(failed.status, TargetStatus::Failed);
    assert!(failed.message.contains("bad"), "{}", failed.message);
}

#[test]
fn conflict_backoff_doubles_caps_and_survives_reclaims() {
    let mut now = t0();
    let mut t = target();
    let mut delays = Vec::new();
    for _ in 0..8 {
        let (claimed, _) = step(
            &t,
            &TargetEvent::Claim {
                pre_hook: None,
                lease_until: now + secs(30),
                operation: steward_proto::Operation::PowerCycle,
            },
            now,
        )
        .unwrap();
        let (blocked, _) = step(&claimed, &conflict(), now).unwrap();
        assert_eq!(blocked.status, TargetStatus::Blocked);
        assert_eq!(blocked.blocked_since, Some(t0()), "blocked_since is the first conflict");
        delays.push(blocked.conflict_delay_seconds);
        // Not re-claimable before retry_after.
        let early = step(
            &blocked,
            &TargetEvent::Claim {
                pre_hook: None,
                lease_until: now + secs(999),
                operation: steward_proto::Operation::PowerCycle,
            },
            now,
        );
        assert!(matches!(early, Err(Rejected::Guard { .. })));
        now = blocked.retry_after.unwrap();
        t = blocked;
    }
    assert_eq!(delays, vec![30, 60, 120, 240, 300, 300, 300, 300]);
    assert_eq!(next_conflict_delay(300, 30, 300), 300);
}

#[test]
fn lease_expiry_is_guarded_by_the_lease() {
    let now = t0();
    let (claimed, _) = step(
        &target(),
        &TargetEvent::Claim {
            pre_hook: None,
            lease_until: now + secs(30),
            operation: steward_proto::Operation::PowerCycle,
        },
        now,
    )
    .unwrap();
    let early = step(&claimed, &TargetEvent::LeaseExpired, now + secs(29));
    assert!(matches!(early, Err(Rejected::Guard { .. })));
    let (pending, _) = step(&claimed, &TargetEvent::LeaseExpired, now + secs(30)).unwrap();
    assert_eq!((pending.status, pending.attempt), (TargetStatus::Pending, 1));
}

#[test]
fn cancel_submitted_asks_core_and_waits_for_termination() {
    let now = t0();
    let mut t = target();
    t.status = TargetStatus::Submitted;
    t.task_id = Some("t-9".into());
    let (still, effects) = step(&t, &TargetEvent::Cancel { reason: "stop".into() }, now).unwrap();
    assert_eq!(still.status, TargetStatus::Submitted);
    assert!(
        effects.contains(&Effect::CancelTask { task_id: "t-9".into(), target_id: t.id.clone() })
    );
    let (ended, _) = step(&still, &finished(TaskStatus::Terminated, 3), now).unwrap();
    assert_eq!(ended.status, TargetStatus::Terminated);
    let (skipped, _) =
        step(&target(), &TargetEvent::Cancel { reason: "stop".into() }, now).unwrap();
    assert_eq!(skipped.status, TargetStatus::Skipped);
    assert!(skipped.message.starts_with("run cancelled: stop"));
}

#[test]
fn identical_hold_has_no_effects() {
    let now = t0();
    let hold = Hold {
        gate: Gate::Concurrency,
        message: "1 of 1 in flight".into(),
        since: now,
        component: None,
    };
    let (held, effects) =
        step(&target(), &TargetEvent::SetHold { hold: Some(hold.clone()) }, now).unwrap();
    assert_eq!(effects.len(), 1);
    let (same, effects) =
        step(&held, &TargetEvent::SetHold { hold: Some(hold) }, now + secs(5)).unwrap();
    assert!(effects.is_empty());
    assert_eq!(same, held, "an identical hold changes nothing, not even updated_at");
}

#[test]
fn task_finished_with_a_non_terminal_status_is_a_guard() {
    let mut t = target();
    t.status = TargetStatus::Submitted;
    let r = step(&t, &finished(TaskStatus::Running, 1), t0());
    assert!(matches!(r, Err(Rejected::Guard { .. })), "{r:?}");
}

// ---------------------------------------------------------------- property tests

#[derive(Clone, Debug)]
enum Gen {
    Claim(i64, bool),
    /// A hook start naming the current invocation (true) or a stale one.
    HookStarted(bool),
    /// A hook report: current invocation?, ok?, a next hook?, max_attempts.
    HookFinished(bool, bool, bool, u32),
    Submitted(u8),
    Conflict,
    LeaseExpired,
    SubmitRejected(u32),
    TaskFinished(u8, u32),
    Skip,
    Cancel,
    Hold(u8),
}

fn gen_event() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => ((-5i64..120), any::<bool>()).prop_map(|(s, h)| Gen::Claim(s, h)),
        2 => any::<bool>().prop_map(Gen::HookStarted),
        3 => (any::<bool>(), any::<bool>(), any::<bool>(), 1u32..4)
            .prop_map(|(c, ok, n, m)| Gen::HookFinished(c, ok, n, m)),
        3 => (0u8..3).prop_map(Gen::Submitted),
        3 => Just(Gen::Conflict),
        1 => Just(Gen::LeaseExpired),
        1 => (1u32..4).prop_map(Gen::SubmitRejected),
        3 => ((0u8..12), (1u32..4)).prop_map(|(s, m)| Gen::TaskFinished(s, m)),
        1 => Just(Gen::Skip),
        1 => Just(Gen::Cancel),
        2 => (0u8..3).prop_map(Gen::Hold),
    ]
}

/// The invocation id a generated hook event names: the state's current one, or a stale one.
fn invocation(state: &Target, current: bool) -> String {
    match (&state.hook, current) {
        (Some(hook), true) => hook.invocation_id.clone(),
        _ => "stale/pre/9".into(),
    }
}

fn realise(g: &Gen, now: Timestamp, state: &Target) -> TargetEvent {
    match g {
        Gen::Claim(s, hook) => TargetEvent::Claim {
            lease_until: now + secs(*s),
            operation: steward_proto::Operation::PowerCycle,
            pre_hook: hook.then(|| "drain".to_string()),
        },
        Gen::HookStarted(current) => {
            TargetEvent::HookStarted { invocation_id: invocation(state, *current) }
        }
        Gen::HookFinished(current, ok, next, m) => TargetEvent::HookFinished {
            invocation_id: invocation(state, *current),
            ok: *ok,
            message: "hook said so".into(),
            next_hook: next.then(|| "second".to_string()),
            lease_until: now + secs(30),
            operation: steward_proto::Operation::PowerCycle,
            max_attempts: *m,
            retry_backoff_seconds: 45,
        },
        Gen::Submitted(n) => TargetEvent::Submitted { task_id: TaskId::new(format!("task-{n}")) },
        Gen::Conflict => conflict(),
        Gen::LeaseExpired => TargetEvent::LeaseExpired,
        Gen::SubmitRejected(m) => TargetEvent::SubmitRejected {
            message: "no".into(),
            max_attempts: *m,
            retry_backoff_seconds: 45,
        },
        Gen::TaskFinished(s, m) => {
            let mut event = finished(TaskStatus::ALL[*s as usize % 6], *m);
            if let TargetEvent::TaskFinished { post_hook, .. } = &mut event
                && *s >= 6
            {
                *post_hook = Some("validate".into());
            }
            event
        }
        Gen::Skip => TargetEvent::Skip { reason: "policy".into() },
        Gen::Cancel => TargetEvent::Cancel { reason: "operator".into() },
        Gen::Hold(0) => TargetEvent::SetHold { hold: None },
        Gen::Hold(n) => TargetEvent::SetHold {
            hold: Some(Hold {
                gate: Gate::ALL[*n as usize],
                message: "waiting".into(),
                since: t0(),
                component: None,
            }),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn target_random_sequences(steps in prop::collection::vec((gen_event(), 0i64..400), 1..60)) {
        let mut state = target();
        let mut now = t0();
        let mut log: Vec<(TargetEvent, Timestamp)> = Vec::new();
        let mut last_delay = 0u64;
        for (g, dt) in &steps {
            now += secs(*dt);
            let event = realise(g, now, &state);
            let before = serde_json::to_string(&state).unwrap();
            let from = state.status;
            let kind = event.kind();
            let result = TargetMachine::step(&state, &event, now);
            // Determinism: the same input gives the same output.
            prop_assert_eq!(&result, &TargetMachine::step(&state, &event, now));
            match result {
                Ok((next, effects)) => {
                    prop_assert!(!from.is_terminal(), "terminal {from} accepted {kind}");
                    prop_assert!(TargetMachine::row_exists(from, kind, next.status),
                        "accepted {from} --{kind}--> {} is not in the table", next.status);
                    if next != state {
                        prop_assert!(!effects.is_empty(), "a change without a persist effect");
                    }
                    let in_hooks = matches!(
                        next.status,
                        TargetStatus::PreHooks | TargetStatus::PostHooks
                    );
                    prop_assert_eq!(in_hooks, next.hook.is_some(),
                        "a target runs a hook exactly while pre_hooks or post_hooks");
                    let runs_hook = effects.iter().any(|e| e.kind() == "run_hook");
                    prop_assert!(!runs_hook || in_hooks, "a hook call outside the hook states");
                    prop_assert!(
                        !(from == TargetStatus::PreHooks && effects.iter().any(|e| e.kind() == "submit_task") && next.status != TargetStatus::Claimed),
                        "a submission out of pre hooks lands anywhere but claimed"
                    );
                    prop_assert!(next.conflict_delay_seconds <= 300);
                    prop_assert!(next.conflict_delay_seconds >= last_delay, "backoff shrank");
                    last_delay = next.conflict_delay_seconds;
                    state = next;
                    log.push((event, now));
                }
                Err(Rejected::IllegalTransition { .. }) => {
                    prop_assert!(!TargetMachine::pair_allowed(from, kind));
                    prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                }
                Err(Rejected::Guard { .. }) => {
                    prop_assert!(TargetMachine::pair_allowed(from, kind));
                    prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                }
                Err(other) => prop_assert!(false, "unexpected rejection {other:?}"),
            }
        }
        // Replay of the accepted events reproduces the final state.
        let mut replayed = target();
        for (event, at) in &log {
            replayed = TargetMachine::step(&replayed, event, *at).unwrap().0;
        }
        prop_assert_eq!(serde_json::to_string(&replayed).unwrap(),
            serde_json::to_string(&state).unwrap());
    }

    #[test]
    fn conflict_delay_is_monotone_and_capped(
        current in 0u64..10_000, initial in 1u64..100, extra in 0u64..1000,
    ) {
        let max = initial + extra;
        let current = current.min(max);
        let next = next_conflict_delay(current, initial, max);
        prop_assert!(next <= max);
        prop_assert!(next >= current);
        prop_assert!(next >= initial.min(max));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The fast key builder agrees with the proto definition, short ids and long ones.
    #[test]
    fn idempotency_key_matches_proto(run in "[a-z0-9:ü-]{0,120}", id in "[a-z0-9:é-]{0,120}", attempt in any::<u32>()) {
        let mut t = target();
        t.run_id = run.as_str().into();
        t.id = id.as_str().into();
        t.attempt = attempt;
        prop_assert_eq!(
            steward_state_machine::idempotency_key(&t),
            steward_proto::IdempotencyKey::for_attempt(&t.run_id, &t.id, attempt)
        );
    }
}
