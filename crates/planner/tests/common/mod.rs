//! Test support: a small fleet builder and a scripted simulation driver.
//!
//! Every state change goes through `Fleet::apply` (no index is touched by hand). `Sim::tick`
//! runs `plan`, applies each action as its event (a refused planner action fails the test),
//! and renders the actions and run holds as text lines for table-style assertions.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use chrono::{Duration, TimeZone, Utc};
use std::collections::BTreeMap;
use steward_planner::{Plan, PlannerConfig, plan, plan_run};
use steward_proto::{
    ComponentId, ComponentKind, ComponentSpec, CreateRunRequest, Location, Operation, RackId,
    RackSpec, RunId, RunPolicy, Selector, ServiceState, TargetId, TaskId, TaskStatus, Timestamp,
};
use steward_state_machine::{Fleet, FleetConfig, FleetEvent};

/// 2026-01-05 12:00:00 UTC.
pub fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).unwrap()
}

/// The raw controller state that maps to `ready` for `kind`.
pub fn ready_state(kind: ComponentKind) -> String {
    match kind {
        ComponentKind::Compute => "Ready".to_string(),
        _ => r#"{"state":"ready"}"#.to_string(),
    }
}

/// A rack spec `id` in `row` with components `{id}-c1..`, one per kind given.
pub fn rack(id: &str, row: Option<&str>, kinds: &[ComponentKind]) -> RackSpec {
    RackSpec {
        id: RackId::new(id),
        name: id.to_string(),
        location: Location { row: row.map(str::to_string), ..Location::default() },
        labels: BTreeMap::new(),
        components: kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| ComponentSpec {
                id: ComponentId::new(format!("{id}-c{}", i + 1)),
                kind: *kind,
                name: String::new(),
                manufacturer: None,
                model: None,
                serial: None,
                position: Default::default(),
                firmware_version: None,
                power_state: None,
                labels: BTreeMap::new(),
            })
            .collect(),
    }
}

/// A firmware update request over explicit racks.
pub fn firmware(racks: &[&str], policy: RunPolicy) -> CreateRunRequest {
    CreateRunRequest {
        name: None,
        operation: Operation::FirmwareUpdate { version: "2.0".into(), components: Vec::new() },
        selector: Selector {
            racks: Some(racks.iter().map(|r| RackId::new(*r)).collect()),
            ..Selector::default()
        },
        policy,
        dry_run: false,
    }
}

/// A request for `operation` over explicit racks.
pub fn request(operation: Operation, racks: &[&str], policy: RunPolicy) -> CreateRunRequest {
    CreateRunRequest { operation, ..firmware(racks, policy) }
}

/// A scripted simulation: a fleet, a clock, and the planner config.
pub struct Sim {
    pub fleet: Fleet,
    pub config: PlannerConfig,
    pub now: Timestamp,
    tasks: u32,
}

impl Sim {
    /// A fleet with `racks`, every component observed ready at `t0()`.
    pub fn new(racks: Vec<RackSpec>) -> Self {
        let mut sim = Sim {
            fleet: Fleet::new(FleetConfig::default()),
            config: PlannerConfig::default(),
            now: t0(),
            tasks: 0,
        };
        let components: Vec<(ComponentId, ComponentKind)> = racks
            .iter()
            .flat_map(|r| r.components.iter().map(|c| (c.id.clone(), c.kind)))
            .collect();
        sim.apply(FleetEvent::InventoryUpserted { initiator: String::new(), racks });
        for (id, kind) in components {
            sim.observe(id.as_str(), &ready_state(kind));
        }
        sim
    }

    /// Applies `event` at the current time; a refusal fails the test.
    pub fn apply(&mut self, event: FleetEvent) {
        let text = format!("{event:?}");
        if let Err(e) = self.fleet.apply(&event, self.now) {
            panic!("event refused: {e}\n{text}");
        }
    }

    /// Core reports `component` in raw state `raw`.
    pub fn observe(&mut self, component: &str, raw: &str) {
        let id = ComponentId::new(component);
        self.apply(FleetEvent::ComponentObserved {
            initiator: String::new(),
            component_id: id,
            controller_state: raw.to_string(),
            power_state: None,
            firmware_version: None,
            observed_at: None,
        });
    }

    /// An operator moves `component` to service state `to`.
    pub fn service(&mut self, component: &str, to: &str) {
        self.apply(FleetEvent::ServiceStateChanged {
            component_id: ComponentId::new(component),
            to: ServiceState::new(to),
            initiator: "op".into(),
            note: None,
        });
    }

    /// Plans `request` as `run_id`, creates it, and starts it.
    pub fn create_and_start(&mut self, run_id: &str, request: CreateRunRequest) {
        self.create(run_id, request);
        self.apply(FleetEvent::RunStarted { run_id: RunId::new(run_id) });
    }

    /// Plans `request` as `run_id` and creates it (pending).
    pub fn create(&mut self, run_id: &str, request: CreateRunRequest) {
        let new_run = plan_run(&self.fleet, &request, RunId::new(run_id), "op", self.now)
            .unwrap_or_else(|e| panic!("plan_run refused: {e}"));
        self.apply(FleetEvent::RunCreated { run: Box::new(new_run.run), targets: new_run.targets });
    }

    /// Moves the clock.
    pub fn advance(&mut self, seconds: i64) {
        self.now += Duration::seconds(seconds);
    }

    /// Plans once without applying anything.
    pub fn plan(&self) -> Plan {
        plan(&self.fleet, &self.config, self.now)
    }

    /// Plans, applies every action, and returns the actions and run holds as lines.
    pub fn tick(&mut self) -> String {
        let plan = self.plan();
        let mut lines: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
        lines.extend(plan.run_holds.iter().map(|h| {
            let scope = if h.from == (0, 0) {
                "all pending".to_string()
            } else {
                format!("pending from wave {} #{}", h.from.0, h.from.1)
            };
            format!("waiting {} {scope} [{}]: {}", h.run_id, h.gate, h.message)
        }));
        for action in plan.actions {
            self.apply(action.into_event());
        }
        self.fleet.check_invariants().unwrap();
        lines.join("\n")
    }

    /// Core accepts every claimed target: each becomes submitted with a new task id.
    pub fn submit_claimed(&mut self) -> Vec<String> {
        let claimed: Vec<TargetId> = self
            .fleet
            .targets
            .values()
            .filter(|t| t.status == steward_proto::TargetStatus::Claimed)
            .map(|t| t.id.clone())
            .collect();
        let mut ids = Vec::new();
        for target_id in claimed {
            self.tasks += 1;
            let task_id = TaskId::new(format!("task-{}", self.tasks));
            self.apply(FleetEvent::TargetSubmitted { target_id: target_id.clone(), task_id });
            ids.push(target_id.to_string());
        }
        ids
    }

    /// Core reports a rack conflict for the claimed target `target`.
    pub fn conflict(&mut self, target: &str, message: &str) {
        self.apply(FleetEvent::TargetConflict {
            target_id: TargetId::new(target),
            message: message.into(),
        });
    }

    /// Core finishes the task of submitted target `target` with `status`.
    pub fn finish(&mut self, target: &str, status: TaskStatus) {
        let target_id = TargetId::new(target);
        let task_id = self.fleet.targets[&target_id].task_id.clone().expect("submitted");
        self.apply(FleetEvent::TaskObserved {
            task_id,
            target_id,
            status,
            message: format!("task {status}"),
            component_results: BTreeMap::new(),
        });
    }

    /// The stored hold of `target`, as `gate: message`, or `-`.
    pub fn hold_of(&self, target: &str) -> String {
        match &self.fleet.targets[&TargetId::new(target)].hold {
            Some(h) => format!("{}: {}", h.gate, h.message),
            None => "-".into(),
        }
    }

    /// `target status` lines for a run, in dispatch order.
    pub fn statuses(&self, run: &str) -> String {
        self.fleet.run_targets[&RunId::new(run)]
            .iter()
            .map(|id| format!("{id} {}", self.fleet.targets[id].status))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The run's status and reason.
    pub fn run_status(&self, run: &str) -> String {
        let run = &self.fleet.runs[&RunId::new(run)];
        format!("{} ({}) wave {}", run.status, run.status_reason, run.current_wave)
    }
}

/// Asserts that `actual` equals the expected table, with a readable diff on failure.
#[track_caller]
pub fn check(actual: &str, expected: &str) {
    let expected = expected.trim();
    let expected: Vec<&str> = expected.lines().map(str::trim).collect();
    let actual_lines: Vec<&str> = actual.trim().lines().map(str::trim).collect();
    assert!(
        expected == actual_lines,
        "\n--- expected\n{}\n--- actual\n{}\n",
        expected.join("\n"),
        actual_lines.join("\n")
    );
}

/// A scenario transcript: script steps (`> ...`) and what each planner tick printed.
#[derive(Default)]
pub struct Transcript(pub Vec<String>);

impl Transcript {
    /// Records a script step.
    pub fn step(&mut self, text: &str) {
        self.0.push(format!("> {text}"));
    }

    /// Runs one planner tick and records its output.
    pub fn tick(&mut self, sim: &mut Sim) {
        self.0.push(format!("> tick at {}", sim.now.format("%H:%M:%S")));
        let out = sim.tick();
        if out.is_empty() {
            self.0.push("(nothing)".into());
        } else {
            self.0.extend(out.lines().map(str::to_string));
        }
    }

    /// Records free text (statuses, holds).
    pub fn note(&mut self, text: &str) {
        self.0.extend(text.lines().map(str::to_string));
    }

    /// The transcript as text.
    pub fn text(&self) -> String {
        self.0.join("\n")
    }
}
