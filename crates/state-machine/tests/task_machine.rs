//! Task machine property tests: random Core reports. Accepted => row in `TASK_ROWS` and the
//! status never moves backward; `IllegalTransition` => no row (terminal statuses absorb);
//! guards (backward reports) leave the task byte-for-byte equal; identical reports have no
//! effects; replay of the accepted reports reproduces the final task.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use steward_proto::{ComponentId, Task, TaskStatus, Timestamp};
use steward_state_machine::{Effect, Machine, Rejected, TaskEvent, TaskMachine};

fn t0() -> Timestamp {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
}

fn task() -> Task {
    Task {
        id: "task-1".into(),
        target_id: "run-1:r1".into(),
        run_id: "run-1".into(),
        rack_id: "r1".into(),
        idempotency_key: "run-1/run-1:r1/1".into(),
        status: TaskStatus::Pending,
        component_results: BTreeMap::new(),
        message: String::new(),
        updated_at: t0(),
    }
}

fn rank(s: TaskStatus) -> u8 {
    match s {
        TaskStatus::Pending => 0,
        TaskStatus::Waiting => 1,
        TaskStatus::Running => 2,
        _ => 3,
    }
}

#[test]
fn identical_report_has_no_effects_and_changed_message_persists() {
    let observe = |status, message: &str| TaskEvent::Observe {
        status,
        message: message.into(),
        component_results: BTreeMap::new(),
    };
    let (running, effects) =
        TaskMachine::step(&task(), &observe(TaskStatus::Running, "go"), t0()).unwrap();
    assert_eq!(effects, vec![Effect::PersistTask("task-1".into())]);
    let (same, effects) =
        TaskMachine::step(&running, &observe(TaskStatus::Running, "go"), t0()).unwrap();
    assert!(effects.is_empty());
    assert_eq!(same, running);
    let (_, effects) =
        TaskMachine::step(&running, &observe(TaskStatus::Running, "50%"), t0()).unwrap();
    assert_eq!(effects.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn task_random_reports(
        reports in prop::collection::vec((0usize..6, 0u8..3, prop::option::of(0usize..6), 0i64..30), 1..30),
    ) {
        let mut state = task();
        let mut now = t0();
        let mut log = Vec::new();
        for (s, m, result, dt) in &reports {
            now += TimeDelta::seconds(*dt);
            let mut component_results = BTreeMap::new();
            if let Some(r) = result {
                component_results.insert(ComponentId::new("c1"), TaskStatus::ALL[*r]);
            }
            let event = TaskEvent::Observe {
                status: TaskStatus::ALL[*s],
                message: ["", "working", "done"][*m as usize].to_string(),
                component_results,
            };
            let before = serde_json::to_string(&state).unwrap();
            let from = state.status;
            match TaskMachine::step(&state, &event, now) {
                Ok((next, effects)) => {
                    prop_assert!(TaskMachine::row_exists(from, event.kind(), next.status));
                    prop_assert!(rank(next.status) >= rank(from));
                    prop_assert_eq!(effects.is_empty(), next == state);
                    state = next;
                    log.push((event, now));
                }
                Err(Rejected::IllegalTransition { .. }) => {
                    prop_assert!(from.is_terminal());
                    prop_assert!(!TaskMachine::pair_allowed(from, event.kind()));
                    prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                }
                Err(Rejected::Guard { .. }) => {
                    prop_assert!(rank(TaskStatus::ALL[*s]) < rank(from));
                    prop_assert_eq!(serde_json::to_string(&state).unwrap(), before);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        let mut replayed = task();
        for (event, at) in &log {
            replayed = TaskMachine::step(&replayed, event, *at).unwrap().0;
        }
        prop_assert_eq!(replayed, state);
    }
}
