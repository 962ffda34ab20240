//! Property tests of the planner invariants (DESIGN §3.6, issue 3 item 5) over random fleets,
//! runs, policies, clocks and scripts of Core and operator events.
//!
//! Each case builds a fleet through `Fleet::apply`, then runs a random script: planner ticks
//! (whose actions are applied and must never be refused), Core outcomes, operator pauses,
//! resumes and advances, observations and clock jumps. Every plan is checked against the
//! fleet it was computed from; every state after a tick is checked for the state invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Duration;
use common::{rack, t0};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use steward_planner::conflict::{Decision, KindSet, TaskFacts};
use steward_planner::{Action, Plan, PlannerConfig, plan, plan_run};
use steward_proto::{
    ComponentKind, CreateRunRequest, FailureCount, Gate, GateScope, MaintenanceWindow, OnNotReady,
    Operation, Ordering, RackId, RunId, RunPolicy, RunStatus, SafetyGate, Selector, ServiceState,
    Target, TargetId, TargetStatus, TaskId, TaskStatus, Timestamp, WaveSpec,
};
use steward_state_machine::{Fleet, FleetConfig, FleetEvent};

const KINDS: [ComponentKind; 4] = [
    ComponentKind::Compute,
    ComponentKind::Nvswitch,
    ComponentKind::PowerShelf,
    ComponentKind::Node,
];

/// Raw states per kind: ready, not ready, error, unknown-ish.
fn raw_state(kind: ComponentKind, pick: u8) -> Option<String> {
    let compute = ["Ready", "HostInitializing", "Assigned/Ready", "Failed", "", "Ready"];
    let json = [
        r#"{"state":"ready"}"#,
        r#"{"state":"configuring"}"#,
        r#"{"state":"error"}"#,
        r#"{"state":"mystery"}"#,
        "not json",
        r#"{"state":"ready"}"#,
    ];
    let index = usize::from(pick % 7);
    if index == 6 {
        return None; // never observed
    }
    Some(match kind {
        ComponentKind::Compute => compute[index].to_string(),
        ComponentKind::Node if index == 0 => "ready".to_string(),
        _ => json[index].to_string(),
    })
}

#[derive(Clone, Debug)]
struct ComponentGen {
    kind: u8,
    state: u8,
    age: u16,
    service: u8,
}

#[derive(Clone, Debug)]
struct RunGen {
    op: u8,
    racks: Vec<u8>,
    max_parallel: u32,
    waves: u8,
    on_not_ready_skip: bool,
    allowed_narrow: bool,
    window: bool,
    gate: u8,
    auto_advance: bool,
    soak: u8,
    max_wait: bool,
    max_attempts: u32,
    ordering: u8,
    start: bool,
}

#[derive(Clone, Debug)]
enum Step {
    Tick,
    Submit(u8),
    Finish(u8, u8),
    Conflict(u8),
    Reject(u8),
    Clock(u16),
    Pause(u8),
    Resume(u8),
    Advance(u8),
    Observe(u8, u8),
    Start(u8),
}

#[derive(Clone, Debug)]
struct Case {
    racks: Vec<(u8, Vec<ComponentGen>)>,
    runs: Vec<RunGen>,
    steps: Vec<Step>,
    global: Option<u32>,
}

fn component_gen() -> impl Strategy<Value = ComponentGen> {
    (0u8..4, any::<u8>(), 0u16..900, 0u8..8).prop_map(|(kind, state, age, service)| ComponentGen {
        kind,
        state,
        age,
        service,
    })
}

fn run_gen() -> impl Strategy<Value = RunGen> {
    (
        (0u8..4, prop::collection::vec(0u8..8, 1..6), 1u32..4, 0u8..4, any::<bool>()),
        (any::<bool>(), 0u8..6, 0u8..5, any::<bool>(), 0u8..3),
        (any::<bool>(), 1u32..3, 0u8..3, 0u8..5),
    )
        .prop_map(
            |(
                (op, racks, max_parallel, waves, on_not_ready_skip),
                (allowed_narrow, window, gate, auto_advance, soak),
                (max_wait, max_attempts, ordering, start),
            )| RunGen {
                op,
                racks,
                max_parallel,
                waves,
                on_not_ready_skip,
                allowed_narrow,
                window: window == 0,
                gate,
                auto_advance,
                soak,
                max_wait,
                max_attempts,
                ordering,
                start: start != 0,
            },
        )
}

fn step_gen() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Tick),
        3 => any::<u8>().prop_map(Step::Submit),
        3 => (any::<u8>(), 0u8..4).prop_map(|(t, s)| Step::Finish(t, s)),
        1 => any::<u8>().prop_map(Step::Conflict),
        1 => any::<u8>().prop_map(Step::Reject),
        2 => (0u16..2000).prop_map(Step::Clock),
        1 => any::<u8>().prop_map(Step::Pause),
        1 => any::<u8>().prop_map(Step::Resume),
        1 => any::<u8>().prop_map(Step::Advance),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(c, s)| Step::Observe(c, s)),
        1 => any::<u8>().prop_map(Step::Start),
    ]
}

fn case_gen() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0u8..3, prop::collection::vec(component_gen(), 1..5)), 1..8),
        prop::collection::vec(run_gen(), 1..4),
        prop::collection::vec(step_gen(), 0..40),
        prop::option::of(1u32..6),
    )
        .prop_map(|(racks, runs, steps, global)| Case { racks, runs, steps, global })
}

fn policy_of(g: &RunGen) -> RunPolicy {
    RunPolicy {
        max_parallel_racks: g.max_parallel,
        waves: match g.waves {
            0 => WaveSpec::Equal { count: 1 },
            1 => WaveSpec::Equal { count: 2 },
            2 => WaveSpec::Count(vec![1]),
            _ => WaveSpec::Percentage(vec![50, 50]),
        },
        ordering: match g.ordering {
            0 => Ordering::AsGiven,
            1 => Ordering::Random { seed: 7 },
            _ => Ordering::OnePerRowRoundRobin,
        },
        auto_advance: g.auto_advance,
        soak_seconds: u64::from(g.soak) * 300,
        safety_gates: match g.gate {
            1 => vec![SafetyGate {
                failure_count: Some(FailureCount { max: 1 }),
                failure_rate: None,
                scope: GateScope::CurrentWave,
            }],
            2 => vec![SafetyGate {
                failure_count: None,
                failure_rate: Some(steward_proto::FailureRate { percent: 30.0 }),
                scope: GateScope::Run,
            }],
            _ => Vec::new(),
        },
        on_not_ready: if g.on_not_ready_skip { OnNotReady::Skip } else { OnNotReady::Wait },
        max_wait_seconds: g.max_wait.then_some(900),
        allowed_service_states: g
            .allowed_narrow
            .then(|| vec![ServiceState::new("in_service"), ServiceState::new("maintenance")]),
        maintenance_windows: if g.window {
            vec![MaintenanceWindow { start: "12:10".into(), end: "12:40".into() }]
        } else {
            Vec::new()
        },
        max_attempts: g.max_attempts,
        retry_backoff_seconds: 60,
        claim_lease_seconds: 120,
        ..RunPolicy::default()
    }
}

fn operation_of(op: u8) -> Operation {
    match op {
        0 => Operation::PowerOn,
        1 => Operation::PowerCycle,
        _ => Operation::FirmwareUpdate { version: "9.9".into(), components: Vec::new() },
    }
}

struct World {
    fleet: Fleet,
    config: PlannerConfig,
    now: Timestamp,
    tasks: u32,
}

impl World {
    fn try_apply(&mut self, event: FleetEvent) -> bool {
        self.fleet.apply(&event, self.now).is_ok()
    }

    fn must(&mut self, event: FleetEvent) -> Result<(), TestCaseError> {
        let text = format!("{event:?}");
        self.fleet
            .apply(&event, self.now)
            .map(|_| ())
            .map_err(|e| TestCaseError::fail(format!("refused: {e}: {text}")))
    }

    fn targets_in(&self, status: TargetStatus) -> Vec<TargetId> {
        self.fleet.targets.values().filter(|t| t.status == status).map(|t| t.id.clone()).collect()
    }

    fn run_ids(&self) -> Vec<RunId> {
        self.fleet.runs.keys().cloned().collect()
    }
}

fn pick<T: Clone>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}

fn build(case: &Case) -> World {
    let config =
        FleetConfig { status_max_age: Some(Duration::seconds(600)), ..FleetConfig::default() };
    let mut world = World {
        fleet: Fleet::new(config),
        config: PlannerConfig { global_max_parallel: case.global, ..PlannerConfig::default() },
        now: t0(),
        tasks: 0,
    };
    let specs: Vec<_> = case
        .racks
        .iter()
        .enumerate()
        .map(|(i, (row, comps))| {
            let kinds: Vec<ComponentKind> =
                comps.iter().map(|c| KINDS[usize::from(c.kind)]).collect();
            let row = ["a", "b", ""][usize::from(*row)];
            rack(&format!("r{i}"), (!row.is_empty()).then_some(row), &kinds)
        })
        .collect();
    assert!(world.try_apply(FleetEvent::InventoryUpserted {
        initiator: String::new(),
        racks: specs.clone()
    }));
    for (spec, (_, comps)) in specs.iter().zip(&case.racks) {
        for (component, g) in spec.components.iter().zip(comps) {
            if let Some(raw) = raw_state(component.kind, g.state) {
                let at = world.now;
                world.now = t0() - Duration::seconds(i64::from(g.age));
                world.try_apply(FleetEvent::ComponentObserved {
                    initiator: String::new(),
                    component_id: component.id.clone(),
                    controller_state: raw,
                    power_state: None,
                    firmware_version: None,
                    observed_at: None,
                });
                world.now = at;
            }
            let path: &[&str] = match g.service {
                0 => &["maintenance"],
                1 => &["maintenance", "rma"],
                2 => &["maintenance", "firmware_update"],
                _ => &[],
            };
            for to in path {
                assert!(world.try_apply(FleetEvent::ServiceStateChanged {
                    component_id: component.id.clone(),
                    to: ServiceState::new(*to),
                    initiator: "op".into(),
                    note: None,
                }));
            }
        }
    }
    for (i, g) in case.runs.iter().enumerate() {
        let rack_count = case.racks.len();
        let racks: BTreeSet<usize> = g.racks.iter().map(|r| usize::from(*r) % rack_count).collect();
        let request = CreateRunRequest {
            name: None,
            operation: operation_of(g.op),
            selector: Selector {
                racks: Some(racks.iter().map(|r| RackId::new(format!("r{r}"))).collect()),
                ..Selector::default()
            },
            policy: policy_of(g),
            dry_run: false,
        };
        let run_id = RunId::new(format!("run-{i}"));
        world.now += Duration::seconds(1);
        if let Ok(new_run) = plan_run(&world.fleet, &request, run_id.clone(), "op", world.now) {
            assert!(world.try_apply(FleetEvent::RunCreated {
                run: Box::new(new_run.run),
                targets: new_run.targets
            }));
            if g.start {
                assert!(world.try_apply(FleetEvent::RunStarted { run_id }));
            }
        }
    }
    world
}

/// The facts the conflict rules read, for a target of `fleet`.
fn facts<'a>(fleet: &'a Fleet, target: &Target) -> (TaskFacts<'a>, &'a Operation) {
    let operation = &fleet.runs[&target.run_id].operation;
    let mut kinds = KindSet::default();
    let mut known = true;
    for c in target.components.iter() {
        match fleet.components.get(c) {
            Some(e) => kinds.insert(e.component.kind),
            None => known = false,
        }
    }
    (TaskFacts { operation: operation.kind().as_str(), kinds: known.then_some(kinds) }, operation)
}

fn compatible(fleet: &Fleet, config: &PlannerConfig, a: &Target, b: &Target) -> bool {
    let (fa, _) = facts(fleet, a);
    let (fb, _) = facts(fleet, b);
    let overlap = a.components.iter().any(|c| b.components.contains(c));
    config.conflict_rules.decide(&fa, &fb, overlap) == Decision::Compatible
        && config.conflict_rules.decide(&fb, &fa, overlap) == Decision::Compatible
}

/// Checks one plan against the fleet it was computed from.
fn check_plan(
    fleet: &Fleet,
    config: &PlannerConfig,
    now: Timestamp,
    p: &Plan,
) -> Result<(), TestCaseError> {
    // Determinism: the same inputs give the same plan, in the same order.
    prop_assert_eq!(p, &plan(fleet, config, now));
    prop_assert_eq!(p, &plan(&fleet.clone(), config, now));

    let mut claims_by_run: BTreeMap<RunId, u32> = BTreeMap::new();
    let mut new_claims = 0u32;
    let mut per_target: BTreeMap<TargetId, u32> = BTreeMap::new();
    let mut claimed: Vec<&Target> = Vec::new();
    for action in &p.actions {
        match action {
            Action::Claim { target_id, lease_until } => {
                let t = &fleet.targets[target_id];
                let run = &fleet.runs[&t.run_id];
                prop_assert_eq!(run.status, RunStatus::Running, "claimed for a non-running run");
                prop_assert!(
                    t.wave <= run.current_wave,
                    "claimed wave {} before it opened",
                    t.wave
                );
                prop_assert!(*lease_until > now);
                for c in t.components.iter() {
                    let status = fleet.effective_status(c, now);
                    prop_assert!(
                        !status.blocked_operations.contains(run.operation.class()),
                        "claimed {} although {} is {:?}",
                        target_id,
                        c,
                        status
                    );
                    let entry = &fleet.components[c];
                    prop_assert!(run.policy.allows_service_state(&entry.service_state));
                }
                if t.status == TargetStatus::Pending {
                    *claims_by_run.entry(t.run_id.clone()).or_default() += 1;
                    new_claims += 1;
                    claimed.push(t);
                } else {
                    prop_assert_eq!(t.status, TargetStatus::Blocked);
                }
                *per_target.entry(target_id.clone()).or_default() += 1;
            }
            Action::Skip { target_id, .. } => {
                prop_assert_eq!(fleet.targets[target_id].status, TargetStatus::Pending);
                *per_target.entry(target_id.clone()).or_default() += 1;
            }
            Action::Hold { target_id, hold } => {
                let t = &fleet.targets[target_id];
                prop_assert_eq!(t.status, TargetStatus::Pending);
                prop_assert!(t.hold != *hold, "hold emitted although unchanged");
                if hold.is_some() {
                    *per_target.entry(target_id.clone()).or_default() += 1;
                }
            }
            Action::ExpireLease { target_id } => {
                let t = &fleet.targets[target_id];
                prop_assert_eq!(t.status, TargetStatus::Claimed);
                prop_assert!(t.lease_until.is_none_or(|l| l <= now));
            }
            Action::Advance { run_id, wave } => {
                let run = &fleet.runs[run_id];
                prop_assert_eq!(*wave, run.current_wave + 1);
                for w in &run.waves[..run.current_wave as usize] {
                    prop_assert!(w.counts.all_terminal(), "advanced past an unfinished wave");
                }
            }
            Action::Finish { run_id } => {
                prop_assert!(fleet.runs[run_id].counts.all_terminal());
            }
            Action::Pause { run_id, .. } => {
                prop_assert_eq!(fleet.runs[run_id].status, RunStatus::Running);
                prop_assert!(
                    !claims_by_run.contains_key(run_id),
                    "a run paused in this plan also claimed"
                );
            }
        }
    }
    // Concurrency per run and globally.
    for (run_id, claims) in &claims_by_run {
        let active = fleet.run_active.get(run_id).map_or(0, |s| s.len() as u32);
        let max = fleet.runs[run_id].policy.max_parallel_racks;
        prop_assert!(active + claims <= max.max(active), "run {} over max_parallel", run_id);
    }
    if let Some(limit) = config.global_max_parallel {
        prop_assert!(fleet.active_total + new_claims <= limit.max(fleet.active_total));
        check_fair_share(fleet, p, &claims_by_run)?;
    }
    // Conflicts: every new claim is compatible with every active or newly claimed target on
    // its rack.
    for (i, c) in claimed.iter().enumerate() {
        for other in fleet.rack_active.get(&c.rack_id).into_iter().flatten() {
            let o = &fleet.targets[other];
            prop_assert!(compatible(fleet, config, c, o), "{} conflicts with {}", c.id, o.id);
        }
        for o in &claimed[..i] {
            if o.rack_id == c.rack_id {
                prop_assert!(compatible(fleet, config, c, o), "{} conflicts with {}", c.id, o.id);
            }
        }
    }
    // Every pending target of a non-terminal run: exactly one claim, skip, individual hold or
    // covering run hold; or, examined and unchanged, its stored hold.
    for (run_id, pending) in &fleet.run_pending {
        let run = &fleet.runs[run_id];
        if run.status.is_terminal() {
            continue;
        }
        for key in pending {
            let id = &fleet.run_targets[run_id][key.1 as usize];
            let t = &fleet.targets[id];
            prop_assert_eq!(t.status, TargetStatus::Pending);
            let actions = per_target.get(id).copied().unwrap_or(0);
            let covered = u32::from(p.run_hold_for(run_id, *key).is_some());
            match actions + covered {
                1 => {}
                0 => prop_assert!(t.hold.is_some(), "pending {} has no hold and no action", id),
                n => prop_assert!(false, "pending {} has {} holds/actions", id, n),
            }
            if run.status != RunStatus::Running {
                prop_assert_eq!(covered, 1, "target of a non-running run not covered");
            }
        }
    }
    Ok(())
}

/// Fair share under the global limit: a run the global limit stopped (a concurrency run hold
/// while it still had slots of its own) has at least as many targets in flight as any run that
/// claimed in this plan, less one; not less at all when it is the older run (ties go to the
/// oldest).
fn check_fair_share(
    fleet: &Fleet,
    p: &Plan,
    claims_by_run: &BTreeMap<RunId, u32>,
) -> Result<(), TestCaseError> {
    let in_flight = |run: &RunId| {
        fleet.run_active.get(run).map_or(0, |s| s.len() as u32)
            + claims_by_run.get(run).copied().unwrap_or(0)
    };
    let age = |run: &RunId| (fleet.runs[run].created_at, run.clone());
    for hold in p.run_holds.iter().filter(|h| h.gate == Gate::Concurrency) {
        let stopped = &hold.run_id;
        if in_flight(stopped) >= fleet.runs[stopped].policy.max_parallel_racks {
            continue; // its own limit, not the global one
        }
        for claimer in claims_by_run.keys().filter(|r| *r != stopped) {
            let (x, y) = (in_flight(stopped), in_flight(claimer));
            let older = age(stopped) < age(claimer);
            prop_assert!(
                x + 1 >= y && (!older || x >= y),
                "unfair: {} stopped by the global limit with {} in flight while {} got a slot \
                 and has {}",
                stopped,
                x,
                claimer,
                y
            );
        }
    }
    Ok(())
}

/// State invariants after a tick was applied.
fn check_state(world: &World) -> Result<(), TestCaseError> {
    let fleet = &world.fleet;
    fleet.check_invariants().map_err(TestCaseError::fail)?;
    for (rack, active) in &fleet.rack_active {
        let targets: Vec<&Target> = active.iter().map(|id| &fleet.targets[id]).collect();
        for (i, a) in targets.iter().enumerate() {
            for b in &targets[..i] {
                prop_assert!(
                    compatible(fleet, &world.config, a, b),
                    "rack {} has conflicting active targets {} and {}",
                    rack,
                    a.id,
                    b.id
                );
            }
        }
    }
    for (run_id, active) in &fleet.run_active {
        let max = fleet.runs[run_id].policy.max_parallel_racks as usize;
        prop_assert!(active.len() <= max, "run {} has {} active > {}", run_id, active.len(), max);
    }
    if let Some(limit) = world.config.global_max_parallel {
        prop_assert!(fleet.active_total <= limit);
    }
    Ok(())
}

fn tick(world: &mut World) -> Result<(), TestCaseError> {
    let p = plan(&world.fleet, &world.config, world.now);
    check_plan(&world.fleet, &world.config, world.now, &p)?;
    for action in p.actions {
        let text = action.to_string();
        let event = action.into_event();
        if let Err(e) = world.fleet.apply(&event, world.now) {
            return Err(TestCaseError::fail(format!("planner action refused: {text}: {e}")));
        }
    }
    check_state(world)
}

fn run_step(world: &mut World, step: &Step) -> Result<(), TestCaseError> {
    match step {
        Step::Tick => tick(world)?,
        Step::Submit(i) => {
            if let Some(id) = pick(&world.targets_in(TargetStatus::Claimed), *i) {
                world.tasks += 1;
                let task_id = TaskId::new(format!("task-{}", world.tasks));
                world.must(FleetEvent::TargetSubmitted { target_id: id, task_id })?;
            }
        }
        Step::Finish(i, s) => {
            if let Some(id) = pick(&world.targets_in(TargetStatus::Submitted), *i) {
                let status = [
                    TaskStatus::Completed,
                    TaskStatus::Failed,
                    TaskStatus::Terminated,
                    TaskStatus::Completed,
                ][usize::from(*s)];
                let task_id = world.fleet.targets[&id].task_id.clone().unwrap();
                world.must(FleetEvent::TaskObserved {
                    task_id,
                    target_id: id,
                    status,
                    message: String::new(),
                    component_results: BTreeMap::new(),
                })?;
            }
        }
        Step::Conflict(i) => {
            if let Some(id) = pick(&world.targets_in(TargetStatus::Claimed), *i) {
                world.try_apply(FleetEvent::TargetConflict {
                    target_id: id,
                    message: "busy".into(),
                });
            }
        }
        Step::Reject(i) => {
            if let Some(id) = pick(&world.targets_in(TargetStatus::Claimed), *i) {
                world.try_apply(FleetEvent::TargetSubmitRejected {
                    target_id: id,
                    message: "no".into(),
                });
            }
        }
        Step::Clock(s) => world.now += Duration::seconds(i64::from(*s)),
        Step::Pause(i) => {
            if let Some(run_id) = pick(&world.run_ids(), *i) {
                world.try_apply(FleetEvent::RunPaused {
                    run_id,
                    reason: steward_proto::RunStatusReason::OperatorPaused,
                    message: "op".into(),
                    initiator: "op".into(),
                });
            }
        }
        Step::Resume(i) => {
            if let Some(run_id) = pick(&world.run_ids(), *i) {
                world.try_apply(FleetEvent::RunResumed { run_id, initiator: "op".into() });
            }
        }
        Step::Advance(i) => {
            if let Some(run_id) = pick(&world.run_ids(), *i) {
                world.try_apply(FleetEvent::RunAdvanced {
                    run_id,
                    expected_wave: None,
                    initiator: "op".into(),
                });
            }
        }
        Step::Start(i) => {
            if let Some(run_id) = pick(&world.run_ids(), *i) {
                world.try_apply(FleetEvent::RunStarted { run_id });
            }
        }
        Step::Observe(c, s) => {
            let ids: Vec<_> = world.fleet.components.keys().cloned().collect();
            if let Some(id) = pick(&ids, *c) {
                let kind = world.fleet.components[&id].component.kind;
                if let Some(raw) = raw_state(kind, *s) {
                    world.try_apply(FleetEvent::ComponentObserved {
                        initiator: String::new(),
                        component_id: id,
                        controller_state: raw,
                        power_state: None,
                        firmware_version: None,
                        observed_at: None,
                    });
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every plan obeys the invariants, every planner action is accepted by the state machines,
    /// and the state after each tick has no conflicting or over-limit active targets.
    #[test]
    fn planner_invariants_hold_over_random_scripts(case in case_gen()) {
        let mut world = build(&case);
        tick(&mut world)?;
        for step in &case.steps {
            run_step(&mut world, step)?;
        }
        tick(&mut world)?;
    }

    /// Driving every run with ticks and immediate Core success finishes every started run:
    /// the planner never wedges a run whose components are all ready.
    #[test]
    fn runs_with_ready_components_finish(case in case_gen()) {
        let mut world = build(&case);
        // Everything ready, in service, fresh; no maintenance window trouble.
        let ids: Vec<_> = world.fleet.components.keys().cloned().collect();
        for id in ids {
            let kind = world.fleet.components[&id].component.kind;
            let raw = raw_state(kind, 0).unwrap();
            world.must(FleetEvent::ComponentObserved { initiator: String::new(),
                component_id: id, controller_state: raw, power_state: None, firmware_version: None, observed_at: None })?;
        }
        let runs = world.run_ids();
        for run_id in &runs {
            world.try_apply(FleetEvent::RunStarted { run_id: run_id.clone() });
        }
        for _ in 0..1000 {
            tick(&mut world)?;
            for id in world.targets_in(TargetStatus::Claimed) {
                world.tasks += 1;
                let task_id = TaskId::new(format!("task-{}", world.tasks));
                world.must(FleetEvent::TargetSubmitted { target_id: id.clone(), task_id: task_id.clone() })?;
                world.must(FleetEvent::TaskObserved {
                    task_id, target_id: id, status: TaskStatus::Completed,
                    message: String::new(), component_results: BTreeMap::new(),
                })?;
            }
            // Operators advance wave gates; the clock moves so soaks and windows pass.
            for run_id in &runs {
                if world.fleet.runs[run_id].status == RunStatus::Paused {
                    world.try_apply(FleetEvent::RunAdvanced { run_id: run_id.clone(), expected_wave: None, initiator: "op".into() });
                }
            }
            world.now += Duration::seconds(300);
            let ids: Vec<_> = world.fleet.components.keys().cloned().collect();
            for id in ids {
                let kind = world.fleet.components[&id].component.kind;
                world.try_apply(FleetEvent::ComponentObserved { initiator: String::new(),
                    component_id: id, controller_state: raw_state(kind, 0).unwrap(), power_state: None, firmware_version: None, observed_at: None });
            }
            if world.fleet.runs.values().all(|r| r.status.is_terminal()) {
                break;
            }
        }
        for run in world.fleet.runs.values() {
            prop_assert!(run.status.is_terminal(), "run {} stuck in {} ({}): {}", run.id, run.status, run.status_reason, run.status_message);
        }
    }
}
