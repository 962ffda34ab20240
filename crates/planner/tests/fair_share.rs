//! Fair sharing of the global concurrency limit (issue 10 item 8): free global slots go to the
//! running run with the fewest targets in flight, the oldest first on ties, so from equal counts
//! they go round-robin and a second run makes progress while the first still has pending racks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sim, firmware, rack};
use std::collections::BTreeMap;
use steward_planner::{Action, Plan};
use steward_proto::ComponentKind::{Compute, Nvswitch};
use steward_proto::{Gate, RunId, RunPolicy, TargetStatus, TaskStatus};

/// A fleet of `n` racks `r1..rn`, every component ready.
fn fleet(n: usize) -> Sim {
    Sim::new((1..=n).map(|i| rack(&format!("r{i}"), None, &[Compute, Nvswitch])).collect())
}

fn names(from: usize, to: usize) -> Vec<String> {
    (from..=to).map(|i| format!("r{i}")).collect()
}

/// Creates and starts `run` over racks `from..=to` with `max_parallel_racks` 10, one second
/// after the previous run (so creation order is the order of the calls).
fn start(sim: &mut Sim, run: &str, from: usize, to: usize) {
    let racks = names(from, to);
    let racks: Vec<&str> = racks.iter().map(String::as_str).collect();
    let policy = RunPolicy { max_parallel_racks: 10, ..RunPolicy::default() };
    sim.create_and_start(run, firmware(&racks, policy));
    sim.advance(1);
}

/// New claims of pending targets in `plan`, per run.
fn claims(sim: &Sim, plan: &Plan) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for action in &plan.actions {
        if let Action::Claim { target_id, .. } = action {
            let target = &sim.fleet.targets[target_id];
            assert_eq!(target.status, TargetStatus::Pending);
            *out.entry(target.run_id.to_string()).or_default() += 1;
        }
    }
    out
}

fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(run, n)| ((*run).to_string(), *n)).collect()
}

/// Targets of `run` in flight (claimed or submitted).
fn in_flight(sim: &Sim, run: &str) -> usize {
    sim.fleet.run_active.get(&RunId::new(run)).map_or(0, |a| a.len())
}

/// Core accepts every claim, then completes `n` submitted targets of `run`.
fn complete(sim: &mut Sim, run: &str, n: usize) {
    sim.submit_claimed();
    let done: Vec<String> =
        sim.fleet.run_active[&RunId::new(run)].iter().take(n).map(|id| id.to_string()).collect();
    for target in done {
        sim.finish(&target, TaskStatus::Completed);
    }
}

#[test]
fn two_runs_split_the_global_limit_evenly() {
    let mut sim = fleet(8);
    sim.config.global_max_parallel = Some(4);
    start(&mut sim, "run-a", 1, 4);
    start(&mut sim, "run-b", 5, 8);
    let plan = sim.plan();
    assert_eq!(claims(&sim, &plan), counts(&[("run-a", 2), ("run-b", 2)]));
    // Both runs' remaining targets are covered by a global-concurrency run hold.
    for run in ["run-a", "run-b"] {
        let hold = plan.run_holds.iter().find(|h| h.run_id.as_str() == run).unwrap();
        assert_eq!(hold.gate, Gate::Concurrency);
        assert!(hold.message.contains("global limit of 4"), "{}", hold.message);
    }
}

#[test]
fn with_three_runs_the_oldest_gets_the_extra_slot() {
    let mut sim = fleet(12);
    sim.config.global_max_parallel = Some(4);
    start(&mut sim, "run-c", 1, 4);
    start(&mut sim, "run-a", 5, 8);
    start(&mut sim, "run-b", 9, 12);
    let plan = sim.plan();
    // run-c is the oldest (created first), whatever the ids say.
    assert_eq!(claims(&sim, &plan), counts(&[("run-a", 1), ("run-b", 1), ("run-c", 2)]));
}

#[test]
fn a_second_run_gets_freed_slots_while_the_first_still_has_pending_racks() {
    let mut sim = fleet(16);
    sim.config.global_max_parallel = Some(4);
    start(&mut sim, "run-a", 1, 10);
    sim.tick();
    assert_eq!(in_flight(&sim, "run-a"), 4, "alone, run-a takes every global slot");
    start(&mut sim, "run-b", 11, 16);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[]), "no slot is free yet");

    // Each slot run-a frees goes to run-b until both have as many in flight.
    complete(&mut sim, "run-a", 1);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[("run-b", 1)]));
    sim.tick();
    complete(&mut sim, "run-a", 1);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[("run-b", 1)]));
    sim.tick();
    assert_eq!((in_flight(&sim, "run-a"), in_flight(&sim, "run-b")), (2, 2));
    // Then they alternate; on a tie the older run goes first.
    complete(&mut sim, "run-a", 1);
    complete(&mut sim, "run-b", 1);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[("run-a", 1), ("run-b", 1)]));
    sim.tick();
    complete(&mut sim, "run-b", 1);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[("run-b", 1)]));
    let pending_a = sim.fleet.run_pending[&RunId::new("run-a")].len();
    assert!(pending_a > 0, "run-a still has pending racks while run-b progresses");
}

#[test]
fn a_run_whose_targets_are_held_leaves_its_share_to_the_others() {
    let mut sim = fleet(8);
    sim.config.global_max_parallel = Some(4);
    start(&mut sim, "run-a", 1, 4);
    start(&mut sim, "run-b", 5, 8);
    // run-a's racks are not ready: their targets hold, and take no slot.
    for i in 1..=4 {
        sim.observe(&format!("r{i}-c1"), "Error");
    }
    let plan = sim.plan();
    assert_eq!(claims(&sim, &plan), counts(&[("run-b", 4)]));
    let held = plan.actions.iter().filter(|a| matches!(a, Action::Hold { .. })).count();
    assert_eq!(held, 4, "every target of run-a was examined and held");
}

#[test]
fn without_a_global_limit_every_run_takes_its_own_limit() {
    let mut sim = fleet(8);
    start(&mut sim, "run-a", 1, 4);
    start(&mut sim, "run-b", 5, 8);
    assert_eq!(claims(&sim, &sim.plan()), counts(&[("run-a", 4), ("run-b", 4)]));
}
