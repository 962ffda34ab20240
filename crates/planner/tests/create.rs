//! Run creation planning: selector resolution, errors with field paths, ordering, wave split,
//! and the dry run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sim, firmware, rack, request};
use proptest::prelude::*;
use std::collections::BTreeMap;
use steward_planner::{CreateError, PlannerConfig, dry_run_holds, plan_run};
use steward_proto::{
    ComponentId, ComponentKind::*, CreateRunRequest, MaintenanceWindow, Operation, Ordering,
    RackId, RunId, RunPolicy, RunStatus, Selector, TargetStatus, WaveSpec,
};
use steward_state_machine::FleetEvent;

fn fleet_with_rows() -> Sim {
    let mut racks = Vec::new();
    for (id, row) in [
        ("r1", Some("a")),
        ("r2", Some("a")),
        ("r3", Some("b")),
        ("r4", None),
        ("r5", Some("b")),
        ("r6", Some("a")),
    ] {
        let mut spec = rack(id, row, &[Compute, Nvswitch, PowerShelf]);
        spec.labels.insert("zone".into(), if id < "r4" { "east".into() } else { "west".into() });
        racks.push(spec);
    }
    Sim::new(racks)
}

fn plan(sim: &Sim, req: &CreateRunRequest) -> Result<steward_planner::NewRun, CreateError> {
    plan_run(&sim.fleet, req, RunId::new("run-9"), "alice", sim.now)
}

fn rack_order(new_run: &steward_planner::NewRun) -> Vec<String> {
    new_run.targets.iter().map(|t| format!("{}@{}", t.rack_id, t.wave)).collect()
}

#[test]
fn explicit_racks_keep_their_order_and_split_into_waves() {
    let sim = fleet_with_rows();
    let policy = RunPolicy { waves: WaveSpec::Count(vec![1, 2]), ..RunPolicy::default() };
    let new_run = plan(&sim, &firmware(&["r5", "r1", "r3", "r2"], policy)).unwrap();
    assert_eq!(rack_order(&new_run), ["r5@1", "r1@2", "r3@2", "r2@3"]);
    let run = &new_run.run;
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.current_wave, 1);
    assert_eq!(run.counts.pending, 4);
    assert_eq!(
        run.waves.iter().map(|w| (w.number, w.size, w.counts.pending)).collect::<Vec<_>>(),
        [(1, 1, 1), (2, 2, 2), (3, 1, 1)]
    );
    assert_eq!(run.initiator, "alice");
    assert_eq!(run.name, "firmware_update 2.0 on 4 racks");
    let t = &new_run.targets[0];
    assert_eq!(t.id.as_str(), "run-9:r5");
    assert_eq!((t.status, t.attempt), (TargetStatus::Pending, 1));
    assert_eq!(t.components.len(), 3);
}

#[test]
fn labels_and_all_select_racks_in_id_order_and_kinds_narrow_components() {
    let sim = fleet_with_rows();
    let mut req = firmware(&[], RunPolicy::default());
    req.selector = Selector {
        labels: Some(BTreeMap::from([("zone".to_string(), "west".to_string())])),
        kinds: vec![PowerShelf],
        ..Selector::default()
    };
    let new_run = plan(&sim, &req).unwrap();
    assert_eq!(rack_order(&new_run), ["r4@1", "r5@1", "r6@1"]);
    assert_eq!(&*new_run.targets[0].components, &[ComponentId::new("r4-c3")]);

    req.selector = Selector { all: Some(true), ..Selector::default() };
    req.operation = Operation::FirmwareUpdate { version: "3".into(), components: vec![Nvswitch] };
    let new_run = plan(&sim, &req).unwrap();
    assert_eq!(new_run.targets.len(), 6);
    assert!(new_run.targets.iter().all(|t| t.components.len() == 1));
}

#[test]
fn components_selector_narrows_racks_to_the_named_components() {
    let sim = fleet_with_rows();
    let mut req = firmware(&[], RunPolicy::default());
    req.selector = Selector {
        components: Some(vec![
            ComponentId::new("r3-c2"),
            ComponentId::new("r1-c1"),
            ComponentId::new("r3-c1"),
        ]),
        ..Selector::default()
    };
    let new_run = plan(&sim, &req).unwrap();
    assert_eq!(rack_order(&new_run), ["r3@1", "r1@1"]);
    assert_eq!(
        &*new_run.targets[0].components,
        &[ComponentId::new("r3-c1"), ComponentId::new("r3-c2")]
    );
}

#[test]
fn exclude_runs_leaves_out_racks_covered_by_earlier_runs() {
    let mut sim = fleet_with_rows();
    sim.create("run-1", firmware(&["r1", "r2"], RunPolicy::default()));
    let mut req = firmware(&[], RunPolicy::default());
    req.selector = Selector {
        all: Some(true),
        exclude_runs: vec![RunId::new("run-1")],
        ..Selector::default()
    };
    let new_run = plan(&sim, &req).unwrap();
    assert_eq!(rack_order(&new_run), ["r3@1", "r4@1", "r5@1", "r6@1"]);

    req.selector.labels = None;
    req.selector.all = None;
    req.selector.racks = Some(vec![RackId::new("r1"), RackId::new("r2")]);
    let err = plan(&sim, &req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the selection has no targets: 2 rack(s) matched the selector, 2 already covered by the \
         excluded runs, 0 with no component the kinds and the operation apply to"
    );
    assert_eq!(err.field(), Some("selector"));
}

#[test]
fn invalid_requests_name_every_field() {
    let sim = fleet_with_rows();
    let mut req = firmware(&["r1", "r9", "r1"], RunPolicy::default());
    req.selector.exclude_runs = vec![RunId::new("run-404")];
    req.policy.max_parallel_racks = 0;
    req.policy.waves = WaveSpec::Percentage(vec![50, 40]);
    req.operation = Operation::FirmwareUpdate { version: " ".into(), components: Vec::new() };
    let CreateError::Invalid(errors) = plan(&sim, &req).unwrap_err() else { panic!("not invalid") };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "policy.max_parallel_racks",
            "policy.waves.percentage",
            "operation.version",
            "selector.exclude_runs[0]",
            "selector.racks[1]",
            "selector.racks[2]",
        ]
    );
    assert_eq!(errors.0[4].message, "unknown rack r9");
    assert_eq!(errors.0[5].message, "rack r1 is listed twice");

    let mut req = firmware(&[], RunPolicy::default());
    req.selector = Selector::default();
    let err = plan(&sim, &req).unwrap_err();
    assert_eq!(err.field(), Some("selector"));
    req.selector = Selector { all: Some(true), racks: Some(vec![]), ..Selector::default() };
    assert_eq!(plan(&sim, &req).unwrap_err().field(), Some("selector"));
    req.selector = Selector { all: Some(false), ..Selector::default() };
    assert_eq!(plan(&sim, &req).unwrap_err().field(), Some("selector.all"));
    req.selector =
        Selector { components: Some(vec![ComponentId::new("nope")]), ..Selector::default() };
    assert_eq!(plan(&sim, &req).unwrap_err().field(), Some("selector.components[0]"));
}

#[test]
fn explicit_rack_without_selected_components_is_an_error() {
    let sim = fleet_with_rows();
    let mut req = request(
        Operation::FirmwareUpdate { version: "1".into(), components: vec![Node] },
        &["r2"],
        RunPolicy::default(),
    );
    let CreateError::Invalid(errors) = plan(&sim, &req).unwrap_err() else { panic!() };
    assert_eq!(errors.0[0].field, "selector.racks[0]");
    assert!(errors.0[0].message.contains("rack r2 has no component"), "{}", errors.0[0].message);
    // Matched by `all`, such racks are simply left out, and an empty result says why.
    req.selector = Selector { all: Some(true), ..Selector::default() };
    let err = plan(&sim, &req).unwrap_err();
    assert!(err.to_string().contains("6 with no component"), "{err}");
}

#[test]
fn unsatisfiable_wave_splits_are_errors_that_say_why() {
    let sim = fleet_with_rows();
    let cases = [
        (
            WaveSpec::Equal { count: 3 },
            "policy.waves.equal.count",
            "3 equal waves need at least 3 targets, the selection has 2",
        ),
        (
            WaveSpec::Count(vec![1, 2]),
            "policy.waves.count",
            "wave sizes [1, 2] need 3 targets, the selection has 2",
        ),
        (
            WaveSpec::Percentage(vec![10, 10, 80]),
            "policy.waves.percentage",
            "percentages [10, 10, 80] of 2 targets leave wave 2 empty; use fewer waves or count sizes",
        ),
    ];
    for (waves, field, why) in cases {
        let req = firmware(&["r1", "r2"], RunPolicy { waves, ..RunPolicy::default() });
        assert_eq!(
            plan(&sim, &req).unwrap_err(),
            CreateError::Unsatisfiable { field: field.into(), why: why.into() }
        );
    }
}

#[test]
fn duplicate_run_id_is_refused() {
    let mut sim = fleet_with_rows();
    sim.create("run-9", firmware(&["r1"], RunPolicy::default()));
    assert_eq!(
        plan(&sim, &firmware(&["r2"], RunPolicy::default())).unwrap_err(),
        CreateError::DuplicateRun(RunId::new("run-9"))
    );
}

#[test]
fn one_per_row_round_robin_spreads_rows_in_row_order() {
    let sim = fleet_with_rows();
    let policy = RunPolicy { ordering: Ordering::OnePerRowRoundRobin, ..RunPolicy::default() };
    let mut req = firmware(&[], policy);
    req.selector = Selector { all: Some(true), ..Selector::default() };
    let new_run = plan(&sim, &req).unwrap();
    // Rows: "" = [r4], a = [r1, r2, r6], b = [r3, r5].
    assert_eq!(rack_order(&new_run), ["r4@1", "r1@1", "r3@1", "r2@1", "r5@1", "r6@1"]);
}

#[test]
fn random_ordering_is_fixed_for_a_seed() {
    let sim = fleet_with_rows();
    let policy = RunPolicy { ordering: Ordering::Random { seed: 42 }, ..RunPolicy::default() };
    let mut req = firmware(&[], policy);
    req.selector = Selector { all: Some(true), ..Selector::default() };
    let new_run = plan(&sim, &req).unwrap();
    // The same on every machine: SplitMix64 + Fisher–Yates, no platform randomness.
    assert_eq!(rack_order(&new_run), ["r5@1", "r4@1", "r1@1", "r3@1", "r6@1", "r2@1"]);
}

#[test]
fn dry_run_shows_the_first_holds_without_creating_anything() {
    let mut sim = fleet_with_rows();
    sim.observe("r2-c1", "HostInitializing");
    sim.create_and_start("run-1", request(Operation::PowerCycle, &["r3"], RunPolicy::default()));
    sim.tick();
    let policy = RunPolicy {
        max_parallel_racks: 2,
        waves: WaveSpec::Count(vec![5]),
        ..RunPolicy::default()
    };
    let new_run = plan(&sim, &firmware(&["r1", "r2", "r3", "r4", "r5", "r6"], policy)).unwrap();
    let holds = dry_run_holds(&sim.fleet, &new_run, &PlannerConfig::default(), sim.now);
    let text: Vec<String> =
        holds.iter().map(|(id, h)| format!("{id} [{}] {}", h.gate, h.message)).collect();
    assert_eq!(
        text,
        [
            "run-9:r2 [readiness] component r2-c1 (compute) is initializing (Core: HostInitializing), which blocks firmware_control; waits until ready (the run pauses after 1800s of waiting)",
            "run-9:r3 [conflict] rack r3 busy with run run-1 target run-1:r3 (power_cycle, claimed): firmware_update conflicts with power_cycle on the same rack (rule power_shelf_power_control); retried when that task finishes",
            "run-9:r5 [concurrency] the run would already have 2 racks in flight (max_parallel_racks 2); starts when one finishes",
            "run-9:r6 [wave] waits for wave 1 to finish, then wave 2 opens",
        ]
    );
    assert!(!sim.fleet.runs.contains_key(&RunId::new("run-9")));

    let closed = RunPolicy {
        maintenance_windows: vec![MaintenanceWindow { start: "01:00".into(), end: "02:00".into() }],
        ..RunPolicy::default()
    };
    let new_run = plan(&sim, &firmware(&["r1"], closed)).unwrap();
    let holds = dry_run_holds(&sim.fleet, &new_run, &PlannerConfig::default(), sim.now);
    assert_eq!(
        holds[0].1.message,
        "outside every maintenance window (01:00-02:00 UTC); dispatch resumes at 01:00 UTC"
    );
}

#[test]
fn a_planned_run_is_accepted_by_the_state_machine() {
    let mut sim = fleet_with_rows();
    let policy =
        RunPolicy { waves: WaveSpec::Percentage(vec![20, 30, 50]), ..RunPolicy::default() };
    let mut req = firmware(&[], policy);
    req.selector = Selector { all: Some(true), ..Selector::default() };
    let new_run = plan(&sim, &req).unwrap();
    assert_eq!(new_run.run.waves.iter().map(|w| w.size).collect::<Vec<_>>(), [2, 1, 3]);
    sim.apply(FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets });
    sim.fleet.check_invariants().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any valid wave spec either fails with Unsatisfiable or yields non-empty waves covering
    /// every target exactly once, numbered from 1, in dispatch order.
    #[test]
    fn waves_partition_the_targets(
        n in 1usize..6,
        spec in prop_oneof![
            (1u32..5).prop_map(|count| WaveSpec::Equal { count }),
            prop::collection::vec(1u32..4, 1..4).prop_map(WaveSpec::Count),
            prop::collection::vec(1u32..60, 1..4).prop_map(|mut p| {
                let sum: u32 = p.iter().sum();
                if sum < 100 { p.push(100 - sum); p } else { vec![100] }
            }).prop_map(WaveSpec::Percentage),
        ],
        ordering in prop_oneof![
            Just(Ordering::AsGiven),
            any::<u64>().prop_map(|seed| Ordering::Random { seed }),
            Just(Ordering::OnePerRowRoundRobin),
        ],
    ) {
        let sim = fleet_with_rows();
        let racks: Vec<&str> = ["r1", "r2", "r3", "r4", "r5", "r6"][..n].to_vec();
        let req = firmware(&racks, RunPolicy { waves: spec, ordering, ..RunPolicy::default() });
        match plan(&sim, &req) {
            Err(CreateError::Unsatisfiable { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected {other}"),
            Ok(new_run) => {
                prop_assert_eq!(new_run.targets.len(), n);
                let mut seen: Vec<String> = new_run.targets.iter().map(|t| t.rack_id.to_string()).collect();
                seen.sort();
                let mut expected: Vec<String> = racks.iter().map(|r| r.to_string()).collect();
                expected.sort();
                prop_assert_eq!(seen, expected);
                let waves: Vec<u32> = new_run.targets.iter().map(|t| t.wave).collect();
                prop_assert!(waves.windows(2).all(|w| w[0] <= w[1]));
                for (i, wave) in new_run.run.waves.iter().enumerate() {
                    prop_assert_eq!(wave.number as usize, i + 1);
                    prop_assert!(wave.size > 0);
                    prop_assert_eq!(wave.size as usize, waves.iter().filter(|w| **w == wave.number).count());
                }
                // Deterministic: the same request plans the same run.
                prop_assert_eq!(plan(&sim, &req).unwrap(), new_run);
            }
        }
    }
}
