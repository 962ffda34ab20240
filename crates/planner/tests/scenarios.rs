//! Scenario tests written as tables: a script of operator and Core events, and after each
//! planner tick the actions and run-level holds it printed, compared line by line with the
//! expected transcript.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sim, Transcript, check, firmware, rack, request};
use steward_proto::{
    ComponentId,
    ComponentKind::{Compute, Nvswitch, PowerShelf},
    FailureCount, GateScope, Hold, MaintenanceWindow, OnNotReady, Operation, RunId, RunPolicy,
    SafetyGate, TargetId,
    TaskStatus::{Completed, Failed},
    WaveSpec,
};
use steward_state_machine::FleetEvent;

fn racks(n: usize) -> Vec<steward_proto::RackSpec> {
    (1..=n).map(|i| rack(&format!("r{i}"), None, &[Compute, Nvswitch])).collect()
}

fn all(n: usize) -> Vec<&'static str> {
    ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"][..n].to_vec()
}

#[test]
fn canary_wave_then_the_rest() {
    let mut sim = Sim::new(racks(5));
    let mut t = Transcript::default();
    let policy = RunPolicy {
        max_parallel_racks: 2,
        waves: WaveSpec::Count(vec![1]),
        ..RunPolicy::default()
    };
    sim.create_and_start("run-1", firmware(&all(5), policy));
    t.tick(&mut sim);
    t.step("core submits r1");
    sim.submit_claimed();
    t.tick(&mut sim);
    t.step("core completes r1");
    sim.finish("run-1:r1", Completed);
    t.tick(&mut sim);
    t.tick(&mut sim);
    t.step("operator advances to wave 2");
    sim.apply(FleetEvent::RunAdvanced {
        run_id: RunId::new("run-1"),
        expected_wave: Some(2),
        initiator: "op".into(),
    });
    t.tick(&mut sim);
    t.step("core submits r2 r3, completes r2");
    sim.submit_claimed();
    sim.finish("run-1:r2", Completed);
    t.tick(&mut sim);
    t.step("core submits r4, completes r3 r4");
    sim.submit_claimed();
    sim.finish("run-1:r3", Completed);
    sim.finish("run-1:r4", Completed);
    t.tick(&mut sim);
    sim.submit_claimed();
    sim.finish("run-1:r5", Completed);
    t.step("core completes r5");
    t.tick(&mut sim);
    t.note(&sim.run_status("run-1"));
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 2 #0 [wave]: waits for wave 1 to finish (1 of 1 targets not finished) and for an operator to advance the run to wave 2
        > core submits r1
        > tick at 12:00:00
        waiting run-1 pending from wave 2 #0 [wave]: waits for wave 1 to finish (1 of 1 targets not finished) and for an operator to advance the run to wave 2
        > core completes r1
        > tick at 12:00:00
        pause run-1 [wave_gate]: wave 1 of 2 finished (1 completed, 0 failed, 0 terminated, 0 skipped); advance the run to open wave 2 (4 targets)
        waiting run-1 all pending [run_status]: run run-1 is being paused (wave_gate): wave 1 of 2 finished (1 completed, 0 failed, 0 terminated, 0 skipped); advance the run to open wave 2 (4 targets)
        > tick at 12:00:00
        waiting run-1 all pending [run_status]: run run-1 is paused (wave_gate): wave 1 of 2 finished (1 completed, 0 failed, 0 terminated, 0 skipped); advance the run to open wave 2 (4 targets)
        > operator advances to wave 2
        > tick at 12:00:00
        claim run-1:r2 (lease until 2026-01-05T12:00:30Z)
        claim run-1:r3 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 2 #3 [concurrency]: run run-1 has 2 of 2 racks in flight (max_parallel_racks 2); the next target starts when one finishes
        > core submits r2 r3, completes r2
        > tick at 12:00:00
        claim run-1:r4 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 2 #4 [concurrency]: run run-1 has 2 of 2 racks in flight (max_parallel_racks 2); the next target starts when one finishes
        > core submits r4, completes r3 r4
        > tick at 12:00:00
        claim run-1:r5 (lease until 2026-01-05T12:00:30Z)
        > core completes r5
        > tick at 12:00:00
        finish run-1
        completed (none) wave 2
        "#,
    );
}

#[test]
fn safety_gate_trips_mid_wave_and_resume_acknowledges() {
    let mut sim = Sim::new(racks(6));
    let mut t = Transcript::default();
    let policy = RunPolicy {
        max_parallel_racks: 3,
        safety_gates: vec![SafetyGate {
            failure_count: Some(FailureCount { max: 2 }),
            failure_rate: None,
            scope: GateScope::CurrentWave,
        }],
        ..RunPolicy::default()
    };
    sim.create_and_start("run-1", firmware(&all(6), policy));
    t.tick(&mut sim);
    sim.submit_claimed();
    t.step("core fails r1 and r2; r3 still running");
    sim.finish("run-1:r1", Failed);
    sim.finish("run-1:r2", Failed);
    t.tick(&mut sim);
    t.tick(&mut sim);
    t.step("operator resumes (acknowledges 2 failures)");
    sim.apply(FleetEvent::RunResumed { run_id: RunId::new("run-1"), initiator: "op".into() });
    t.tick(&mut sim);
    sim.submit_claimed();
    t.step("core completes r3 r4 r5");
    for r in ["r3", "r4", "r5"] {
        sim.finish(&format!("run-1:{r}"), Completed);
    }
    t.tick(&mut sim);
    sim.submit_claimed();
    t.step("core fails r6: one unacknowledged failure, below the gate");
    sim.finish("run-1:r6", Failed);
    t.tick(&mut sim);
    t.note(&sim.run_status("run-1"));
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        claim run-1:r2 (lease until 2026-01-05T12:00:30Z)
        claim run-1:r3 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 1 #3 [concurrency]: run run-1 has 3 of 3 racks in flight (max_parallel_racks 3); the next target starts when one finishes
        > core fails r1 and r2; r3 still running
        > tick at 12:00:00
        pause run-1 [safety_gate]: safety gate failure_count 2 tripped in wave 1: 2 of 6 targets failed; resume to acknowledge these failures and continue, or cancel the run
        waiting run-1 all pending [run_status]: run run-1 is being paused (safety_gate): safety gate failure_count 2 tripped in wave 1: 2 of 6 targets failed; resume to acknowledge these failures and continue, or cancel the run
        > tick at 12:00:00
        waiting run-1 all pending [run_status]: run run-1 is paused (safety_gate): safety gate failure_count 2 tripped in wave 1: 2 of 6 targets failed; resume to acknowledge these failures and continue, or cancel the run
        > operator resumes (acknowledges 2 failures)
        > tick at 12:00:00
        claim run-1:r4 (lease until 2026-01-05T12:00:30Z)
        claim run-1:r5 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 1 #5 [concurrency]: run run-1 has 3 of 3 racks in flight (max_parallel_racks 3); the next target starts when one finishes
        > core completes r3 r4 r5
        > tick at 12:00:00
        claim run-1:r6 (lease until 2026-01-05T12:00:30Z)
        > core fails r6: one unacknowledged failure, below the gate
        > tick at 12:00:00
        finish run-1
        completed_with_failures (none) wave 1
        "#,
    );
}

#[test]
fn rack_conflict_between_two_runs_resolves_when_the_first_finishes() {
    let mut sim = Sim::new(vec![
        rack("r1", None, &[Compute, PowerShelf]),
        rack("r2", None, &[Compute, PowerShelf]),
    ]);
    let mut t = Transcript::default();
    t.step("run-1 power cycles r1 (power shelf included); run-2 updates firmware on r1 r2");
    sim.create_and_start("run-1", request(Operation::PowerCycle, &["r1"], RunPolicy::default()));
    let policy = RunPolicy { max_parallel_racks: 2, ..RunPolicy::default() };
    sim.create_and_start("run-2", firmware(&["r1", "r2"], policy));
    t.tick(&mut sim);
    sim.submit_claimed();
    t.tick(&mut sim);
    t.step("core completes run-1:r1");
    sim.finish("run-1:r1", Completed);
    t.tick(&mut sim);
    t.note(&sim.statuses("run-2"));
    check(
        &t.text(),
        r#"
        > run-1 power cycles r1 (power shelf included); run-2 updates firmware on r1 r2
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        hold run-2:r1 [conflict]: rack r1 busy with run run-1 target run-1:r1 (power_cycle, claimed): firmware_update conflicts with power_cycle on the same rack (rule power_shelf_power_control); retried when that task finishes
        claim run-2:r2 (lease until 2026-01-05T12:00:30Z)
        > tick at 12:00:00
        hold run-2:r1 [conflict]: rack r1 busy with run run-1 target run-1:r1 (power_cycle, submitted): firmware_update conflicts with power_cycle on the same rack (rule power_shelf_power_control); retried when that task finishes
        > core completes run-1:r1
        > tick at 12:00:00
        finish run-1
        claim run-2:r1 (lease until 2026-01-05T12:00:30Z)
        run-2:r1 claimed
        run-2:r2 submitted
        "#,
    );
}

#[test]
fn core_conflict_blocks_then_retries_then_times_out() {
    let mut sim = Sim::new(racks(1));
    let mut t = Transcript::default();
    let mut policy = RunPolicy::default();
    policy.conflict_retry.initial_delay_seconds = 30;
    policy.conflict_retry.timeout_seconds = 100;
    sim.create_and_start("run-1", firmware(&["r1"], policy));
    t.tick(&mut sim);
    t.step("core reports a rack conflict");
    sim.conflict("run-1:r1", "rack r1 busy with an external task");
    t.tick(&mut sim);
    sim.advance(30);
    t.tick(&mut sim);
    t.step("core reports the conflict again (backoff doubles to 60s)");
    sim.conflict("run-1:r1", "rack r1 busy with an external task");
    sim.advance(60);
    t.tick(&mut sim);
    t.step("conflict again; 100s after the first conflict the run pauses");
    sim.conflict("run-1:r1", "rack r1 busy with an external task");
    sim.advance(10);
    t.tick(&mut sim);
    t.note(&sim.run_status("run-1"));
    t.step("operator resumes: the timeout counts afresh from the resume");
    sim.advance(20);
    sim.apply(FleetEvent::RunResumed { run_id: RunId::new("run-1"), initiator: "op".into() });
    t.tick(&mut sim);
    sim.advance(100);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        > core reports a rack conflict
        > tick at 12:00:00
        (nothing)
        > tick at 12:00:30
        claim run-1:r1 (lease until 2026-01-05T12:01:00Z)
        > core reports the conflict again (backoff doubles to 60s)
        > tick at 12:01:30
        claim run-1:r1 (lease until 2026-01-05T12:02:00Z)
        > conflict again; 100s after the first conflict the run pauses
        > tick at 12:01:40
        pause run-1 [conflict_retry_timeout]: target run-1:r1 (rack r1) is blocked by rack conflicts since 2026-01-05T12:00:00Z and conflict_retry.timeout_seconds 100 ran out; last conflict: blocked by a rack conflict: rack r1 busy with an external task; retry in 120s; resume to keep retrying, or cancel the run
        paused (conflict_retry_timeout) wave 1
        > operator resumes: the timeout counts afresh from the resume
        > tick at 12:02:00
        (nothing)
        > tick at 12:03:40
        pause run-1 [conflict_retry_timeout]: target run-1:r1 (rack r1) is blocked by rack conflicts since 2026-01-05T12:00:00Z and conflict_retry.timeout_seconds 100 ran out (counted from the run's last start, resume or advance at 2026-01-05T12:02:00Z); last conflict: blocked by a rack conflict: rack r1 busy with an external task; retry in 120s; resume to keep retrying, or cancel the run
        "#,
    );
}

#[test]
fn maintenance_window_opens() {
    let mut sim = Sim::new(racks(2));
    let mut t = Transcript::default();
    let policy = RunPolicy {
        max_parallel_racks: 2,
        maintenance_windows: vec![MaintenanceWindow { start: "22:00".into(), end: "04:00".into() }],
        ..RunPolicy::default()
    };
    sim.create_and_start("run-1", firmware(&all(2), policy));
    t.tick(&mut sim);
    sim.advance(9 * 3600 + 59 * 60);
    t.tick(&mut sim);
    sim.advance(60);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        waiting run-1 all pending [maintenance_window]: outside every maintenance window (22:00-04:00 UTC); dispatch resumes at 22:00 UTC
        > tick at 21:59:00
        waiting run-1 all pending [maintenance_window]: outside every maintenance window (22:00-04:00 UTC); dispatch resumes at 22:00 UTC
        > tick at 22:00:00
        claim run-1:r1 (lease until 2026-01-05T22:00:30Z)
        claim run-1:r2 (lease until 2026-01-05T22:00:30Z)
        "#,
    );
}

#[test]
fn component_in_rma_is_skipped() {
    let mut sim = Sim::new(racks(3));
    let mut t = Transcript::default();
    t.step("operator moves r2-c1 to maintenance, then rma");
    sim.service("r2-c1", "maintenance");
    sim.service("r2-c1", "rma");
    let policy = RunPolicy { max_parallel_racks: 3, ..RunPolicy::default() };
    sim.create_and_start("run-1", firmware(&all(3), policy));
    t.tick(&mut sim);
    t.note(&sim.statuses("run-1"));
    check(
        &t.text(),
        r#"
        > operator moves r2-c1 to maintenance, then rma
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        skip run-1:r2: component r2-c1 (compute) is in service state rma, which the run's policy does not allow (allowed: all but rma, decommissioned); skipped
        claim run-1:r3 (lease until 2026-01-05T12:00:30Z)
        run-1:r1 claimed
        run-1:r2 skipped
        run-1:r3 claimed
        "#,
    );
}

#[test]
fn unknown_component_holds_its_rack_until_observed_ready() {
    let mut sim = Sim::new(racks(1));
    let mut t = Transcript::default();
    t.step("rack r9 is imported; Core has not reported its components yet");
    sim.apply(FleetEvent::InventoryUpserted {
        initiator: String::new(),
        racks: vec![rack("r9", None, &[Compute, Nvswitch])],
    });
    sim.create_and_start("run-1", firmware(&["r9"], RunPolicy::default()));
    t.tick(&mut sim);
    t.tick(&mut sim);
    t.step("core reports r9-c1 HostInitializing/Discovery and r9-c2 ready");
    sim.observe("r9-c1", "HostInitializing/Discovery");
    sim.observe("r9-c2", r#"{"state":"ready"}"#);
    t.tick(&mut sim);
    t.note(&format!("stored hold: {}", sim.hold_of("run-1:r9")));
    t.step("core reports r9-c1 Ready");
    sim.observe("r9-c1", "Ready");
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > rack r9 is imported; Core has not reported its components yet
        > tick at 12:00:00
        hold run-1:r9 [readiness]: component r9-c1 (compute) has no status yet (never observed); waits until Core reports it ready (the run pauses after 1800s of waiting)
        > tick at 12:00:00
        (nothing)
        > core reports r9-c1 HostInitializing/Discovery and r9-c2 ready
        > tick at 12:00:00
        hold run-1:r9 [readiness]: component r9-c1 (compute) is initializing (Core: HostInitializing/Discovery), which blocks firmware_control; waits until ready (the run pauses after 1800s of waiting)
        stored hold: readiness: component r9-c1 (compute) is initializing (Core: HostInitializing/Discovery), which blocks firmware_control; waits until ready (the run pauses after 1800s of waiting)
        > core reports r9-c1 Ready
        > tick at 12:00:00
        claim run-1:r9 (lease until 2026-01-05T12:00:30Z)
        "#,
    );
}

#[test]
fn readiness_fast_path_trusts_the_hold_component_never_its_message() {
    let mut sim = Sim::new(racks(1));
    let mut t = Transcript::default();
    let target = TargetId::new("run-1:r1");
    let stored = |sim: &Sim| sim.fleet.targets[&target].hold.clone().unwrap();
    sim.observe("r1-c1", "HostInitializing/Discovery");
    sim.create_and_start("run-1", firmware(&["r1"], RunPolicy::default()));
    t.tick(&mut sim);
    assert_eq!(stored(&sim).component, Some(ComponentId::new("r1-c1")));

    t.step("the stored message is garbled (it names r1-c2); the component field still says r1-c1");
    let garbled = Hold { message: "component r1-c2 is fine".into(), ..stored(&sim) };
    sim.apply(FleetEvent::TargetHeld { target_id: target.clone(), hold: Some(garbled) });
    t.tick(&mut sim);

    t.step("r1-c2 goes to rma: the fast path sees r1-c1 unchanged and does not re-read the rack");
    sim.service("r1-c2", "maintenance");
    sim.service("r1-c2", "rma");
    t.tick(&mut sim);

    t.step("the same hold without its component field (as stored before the field existed)");
    let legacy = Hold { component: None, ..stored(&sim) };
    sim.apply(FleetEvent::TargetHeld { target_id: target.clone(), hold: Some(legacy) });
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        hold run-1:r1 [readiness]: component r1-c1 (compute) is initializing (Core: HostInitializing/Discovery), which blocks firmware_control; waits until ready (the run pauses after 1800s of waiting)
        > the stored message is garbled (it names r1-c2); the component field still says r1-c1
        > tick at 12:00:00
        hold run-1:r1 [readiness]: component r1-c1 (compute) is initializing (Core: HostInitializing/Discovery), which blocks firmware_control; waits until ready (the run pauses after 1800s of waiting)
        > r1-c2 goes to rma: the fast path sees r1-c1 unchanged and does not re-read the rack
        > tick at 12:00:00
        (nothing)
        > the same hold without its component field (as stored before the field existed)
        > tick at 12:00:00
        skip run-1:r1: component r1-c2 (nvswitch) is in service state rma, which the run's policy does not allow (allowed: all but rma, decommissioned); skipped
        "#,
    );
}

#[test]
fn readiness_wait_turns_into_a_pause_after_max_wait() {
    let mut sim = Sim::new(racks(2));
    let mut t = Transcript::default();
    sim.observe("r1-c2", r#"{"state":"configuring"}"#);
    let policy =
        RunPolicy { max_parallel_racks: 1, max_wait_seconds: Some(600), ..RunPolicy::default() };
    sim.create_and_start("run-1", firmware(&all(2), policy));
    t.tick(&mut sim);
    t.step("core submits and completes r2");
    sim.submit_claimed();
    sim.finish("run-1:r2", Completed);
    sim.advance(300);
    t.tick(&mut sim);
    sim.advance(300);
    t.tick(&mut sim);
    t.note(&format!("stored hold: {}", sim.hold_of("run-1:r1")));
    t.tick(&mut sim);
    t.step("operator resumes: the wait starts over");
    sim.apply(FleetEvent::RunResumed { run_id: RunId::new("run-1"), initiator: "op".into() });
    sim.advance(60);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        hold run-1:r1 [readiness]: component r1-c2 (nvswitch) is initializing (Core: {"state":"configuring"}), which blocks firmware_control; waits until ready (the run pauses after 600s of waiting)
        claim run-1:r2 (lease until 2026-01-05T12:00:30Z)
        > core submits and completes r2
        > tick at 12:05:00
        (nothing)
        > tick at 12:10:00
        pause run-1 [readiness_timeout]: target run-1:r1 (rack r1) has waited for readiness since 2026-01-05T12:00:00Z and max_wait_seconds 600 ran out: component r1-c2 (nvswitch) is initializing (Core: {"state":"configuring"}), which blocks firmware_control; waits until ready; fix the component and resume (the wait starts over), or cancel the run
        clear hold run-1:r1
        waiting run-1 all pending [run_status]: run run-1 is being paused (readiness_timeout): target run-1:r1 (rack r1) has waited for readiness since 2026-01-05T12:00:00Z and max_wait_seconds 600 ran out: component r1-c2 (nvswitch) is initializing (Core: {"state":"configuring"}), which blocks firmware_control; waits until ready; fix the component and resume (the wait starts over), or cancel the run
        stored hold: -
        > tick at 12:10:00
        waiting run-1 all pending [run_status]: run run-1 is paused (readiness_timeout): target run-1:r1 (rack r1) has waited for readiness since 2026-01-05T12:00:00Z and max_wait_seconds 600 ran out: component r1-c2 (nvswitch) is initializing (Core: {"state":"configuring"}), which blocks firmware_control; waits until ready; fix the component and resume (the wait starts over), or cancel the run
        > operator resumes: the wait starts over
        > tick at 12:11:00
        hold run-1:r1 [readiness]: component r1-c2 (nvswitch) is initializing (Core: {"state":"configuring"}), which blocks firmware_control; waits until ready (the run pauses after 600s of waiting)
        "#,
    );
}

#[test]
fn not_ready_with_on_not_ready_skip_is_skipped_but_unknown_still_holds() {
    let mut sim = Sim::new(racks(2));
    let mut t = Transcript::default();
    sim.observe("r1-c1", "Assigned/Ready");
    sim.fleet.forget_observation_times();
    sim.observe("r1-c1", "Assigned/Ready");
    sim.observe("r1-c2", r#"{"state":"ready"}"#);
    t.step("after a restart only r1's components were re-observed; r1-c1 is in use");
    let policy =
        RunPolicy { max_parallel_racks: 2, on_not_ready: OnNotReady::Skip, ..RunPolicy::default() };
    sim.create_and_start("run-1", firmware(&all(2), policy));
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > after a restart only r1's components were re-observed; r1-c1 is in use
        > tick at 12:00:00
        skip run-1:r1: component r1-c1 (compute) is in_use (Core: Assigned/Ready), which blocks firmware_control; skipped (on_not_ready skip)
        hold run-1:r2 [readiness]: component r2-c1 (compute) has no fresh status (not re-observed since restart); waits until Core reports it ready (the run pauses after 1800s of waiting)
        "#,
    );
}

#[test]
fn auto_advance_waits_out_the_soak() {
    let mut sim = Sim::new(racks(2));
    let mut t = Transcript::default();
    let policy = RunPolicy {
        waves: WaveSpec::Equal { count: 2 },
        auto_advance: true,
        soak_seconds: 600,
        ..RunPolicy::default()
    };
    sim.create_and_start("run-1", firmware(&all(2), policy));
    t.tick(&mut sim);
    sim.submit_claimed();
    sim.finish("run-1:r1", Completed);
    t.step("r1 completed");
    t.tick(&mut sim);
    sim.advance(600);
    t.tick(&mut sim);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        waiting run-1 pending from wave 2 #0 [wave]: waits for wave 1 to finish (1 of 1 targets not finished); wave 2 then opens after the 600s soak
        > r1 completed
        > tick at 12:00:00
        waiting run-1 all pending [wave]: wave 1 finished (1 completed, 0 failed, 0 terminated, 0 skipped) at 2026-01-05T12:00:00Z; wave 2 opens at 2026-01-05T12:10:00Z after the 600s soak
        > tick at 12:10:00
        advance run-1 to wave 2
        waiting run-1 all pending [wave]: wave 1 finished (1 completed, 0 failed, 0 terminated, 0 skipped); wave 2 is opening now
        > tick at 12:10:00
        claim run-1:r2 (lease until 2026-01-05T12:10:30Z)
        "#,
    );
}

#[test]
fn failed_attempt_waits_out_the_retry_backoff() {
    let mut sim = Sim::new(racks(1));
    let mut t = Transcript::default();
    let policy = RunPolicy { max_attempts: 2, retry_backoff_seconds: 60, ..RunPolicy::default() };
    sim.create_and_start("run-1", firmware(&["r1"], policy));
    t.tick(&mut sim);
    sim.submit_claimed();
    t.step("attempt 1 fails");
    sim.finish("run-1:r1", Failed);
    t.tick(&mut sim);
    sim.advance(60);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        > attempt 1 fails
        > tick at 12:00:00
        hold run-1:r1 [retry_backoff]: attempt 1 failed; attempt 2 may start at 2026-01-05T12:01:00Z (retry_backoff_seconds 60)
        > tick at 12:01:00
        claim run-1:r1 (lease until 2026-01-05T12:01:30Z)
        "#,
    );
}

#[test]
fn claim_lease_expires_when_nothing_was_submitted() {
    let mut sim = Sim::new(racks(1));
    let mut t = Transcript::default();
    sim.create_and_start("run-1", firmware(&["r1"], RunPolicy::default()));
    t.tick(&mut sim);
    sim.advance(29);
    t.tick(&mut sim);
    sim.advance(1);
    t.tick(&mut sim);
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:00
        claim run-1:r1 (lease until 2026-01-05T12:00:30Z)
        > tick at 12:00:29
        (nothing)
        > tick at 12:00:30
        expire lease run-1:r1
        > tick at 12:00:30
        claim run-1:r1 (lease until 2026-01-05T12:01:00Z)
        "#,
    );
}

#[test]
fn global_limit_is_shared_by_runs_oldest_first() {
    let mut sim = Sim::new(racks(4));
    sim.config.global_max_parallel = Some(3);
    let mut t = Transcript::default();
    let policy = RunPolicy { max_parallel_racks: 2, ..RunPolicy::default() };
    sim.create_and_start("run-b", firmware(&["r1", "r2"], policy.clone()));
    sim.advance(1);
    sim.create_and_start("run-a", firmware(&["r3", "r4"], policy));
    t.tick(&mut sim);
    check(
        &t.text(),
        r#"
        > tick at 12:00:01
        claim run-b:r1 (lease until 2026-01-05T12:00:31Z)
        claim run-b:r2 (lease until 2026-01-05T12:00:31Z)
        claim run-a:r3 (lease until 2026-01-05T12:00:31Z)
        waiting run-a pending from wave 1 #1 [concurrency]: the global limit of 3 racks in flight is reached (3 active over all runs); the next target starts when a slot frees
        "#,
    );
}

#[test]
fn extreme_policy_values_are_refused_and_never_panic() {
    let mut sim = Sim::new(racks(2));
    let policy = RunPolicy {
        max_parallel_racks: u32::MAX,
        waves: WaveSpec::Equal { count: 2 },
        auto_advance: true,
        soak_seconds: u64::MAX,
        claim_lease_seconds: u64::MAX,
        max_wait_seconds: Some(u64::MAX),
        ..RunPolicy::default()
    };
    let refused = steward_planner::plan_run(
        &sim.fleet,
        &firmware(&all(2), policy.clone()),
        RunId::new("run-1"),
        "op",
        sim.now,
    );
    let Err(steward_planner::CreateError::Invalid(errors)) = refused else {
        panic!("durations over the bound must be refused: {refused:?}")
    };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["policy.soak_seconds", "policy.max_wait_seconds", "policy.claim_lease_seconds"]
    );
    // A run logged before the bound existed still replays and plans without panicking.
    let mut new_run = steward_planner::plan_run(
        &sim.fleet,
        &firmware(
            &all(2),
            RunPolicy { waves: WaveSpec::Equal { count: 2 }, ..RunPolicy::default() },
        ),
        RunId::new("run-1"),
        "op",
        sim.now,
    )
    .unwrap();
    new_run.run.policy = policy;
    sim.apply(FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets });
    sim.apply(FleetEvent::RunStarted { run_id: RunId::new("run-1") });
    sim.config.global_max_parallel = Some(u32::MAX);
    let first = sim.tick();
    assert!(first.starts_with("claim run-1:r1 (lease until +262142-12-31T23:59:59Z)"), "{first}");
    sim.submit_claimed();
    sim.finish("run-1:r1", Completed);
    let soak = sim.tick();
    assert!(soak.contains("wave 2 opens at +262142-12-31T23:59:59Z"), "{soak}");
}

#[test]
fn a_default_policy_run_on_a_failed_component_ends_paused_instead_of_hanging() {
    let mut sim = Sim::new(racks(1));
    sim.observe("r1-c1", "Failed/FirmwareUpdate");
    sim.create_and_start("run-1", firmware(&all(1), RunPolicy::default()));
    let first = sim.tick();
    assert!(first.contains("error phase"), "the hold names the error phase: {first}");
    assert!(first.contains("pauses after 1800s"), "the hold names the default limit: {first}");
    sim.advance(1799);
    sim.tick();
    assert_eq!(sim.run_status("run-1"), "running (none) wave 1");
    sim.advance(1);
    sim.tick();
    assert_eq!(sim.run_status("run-1"), "paused (readiness_timeout) wave 1");
}
