//! The simulated Core: a generated fleet, seeded task outcomes, controller-state evolution and
//! an append-only journal, so simulations, demos and crash tests run without hardware.
//!
//! Everything is computed lazily from the clock: a task is `pending` for the first tenth of its
//! drawn duration, then `running`, then `completed` or `failed` at `submitted_at + duration`
//! (or `terminated` when cancelled). There are no background tasks; every call first *settles*
//! the tasks whose end has passed, in end-time order, applying their effects to the components
//! (firmware version, power state, a `Failed/...` controller state on failure).
//!
//! Determinism: every random draw comes from a hand-written splitmix64 generator seeded with
//! `(seed, idempotency key, purpose)`, so a task's duration and outcome do not depend on how
//! calls for different keys interleave. Task ids are derived from the key as well.
//!
//! Durability: with `journal` set, every submit call, cancel and controller-state override is
//! appended as one JSON line and fsynced before the call answers; [`SimCore::new`] replays the
//! file, so a restarted process sees the same tasks (in-flight ones resume on the clock) and
//! the same submission counters. A torn last line (a crash mid-append) is dropped on load.
//! With an external journal ([`SimCore::with_external_journal`], e.g. a table in Steward's own
//! PostgreSQL database) the same records go there instead, so whichever instance leads sees
//! every task the previous leader submitted.
//! Injected failures ([`SimCore::inject_failures`], [`SimCore::fail_next`]) are not journaled;
//! their effect is, because the drawn outcome is part of each submission record.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use steward_proto::{
    ComponentId, ComponentKind, ComponentPosition, ComponentSpec, IdempotencyKey, InventoryUpsert,
    Location, Observation, Operation, OperationKind, RackId, RackSpec, TaskId, TaskStatus,
};
use steward_runtime::clock::SharedClock;
use steward_runtime::core::{Core, CoreError, SubmitOutcome, TaskReport, TaskRequest};

/// Configuration of the simulated Core (`[core.sim]` in the config file).
///
/// The default is a small fleet: 8 racks in 2 rows, each with 4 compute trays, 2 NVLink
/// switches, 1 power shelf and 1 node; tasks take 1–5 s and never fail unless told to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of racks generated.
    pub racks: u32,
    /// Number of rows the racks are spread over (contiguously: the first racks fill row a).
    pub rows: u32,
    /// Compute trays per rack (a real GB200 NVL72 rack has 18).
    pub compute_per_rack: u32,
    /// NVLink switch trays per rack.
    pub nvswitch_per_rack: u32,
    /// Power shelves per rack.
    pub power_shelf_per_rack: u32,
    /// Plain nodes per rack.
    pub node_per_rack: u32,
    /// Firmware version every component starts with.
    pub initial_firmware: String,
    /// Task duration range, drawn per task.
    pub latency: LatencyRange,
    /// Probability that a task fails, per operation.
    pub failure_rate: FailureRates,
    /// Probability that a submit call returns a rack conflict.
    pub conflict_rate: f64,
    /// Whether a submit on a rack with an unfinished task returns a conflict (as a real Core
    /// does); on by default.
    pub rack_exclusive: bool,
    /// Components left in an error state by a failed task return to ready this long after the
    /// failure (an automatic repair, as a site's remediation would do). Default 30 seconds, so
    /// the demo and a default `serve` never wait for ever on a failed component; `0` (or no
    /// value) keeps failed components failed.
    pub recover_after_ms: Option<u64>,
    /// Journal file standing for Core's own durable state; none keeps everything in memory.
    pub journal: Option<PathBuf>,
}

/// Default of [`SimConfig::recover_after_ms`]: a failed component recovers after 30 seconds.
pub const DEFAULT_RECOVER_AFTER_MS: u64 = 30_000;

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            racks: 8,
            rows: 2,
            compute_per_rack: 4,
            nvswitch_per_rack: 2,
            power_shelf_per_rack: 1,
            node_per_rack: 1,
            initial_firmware: "1.0.0".to_owned(),
            latency: LatencyRange::default(),
            failure_rate: FailureRates::default(),
            conflict_rate: 0.0,
            rack_exclusive: true,
            recover_after_ms: Some(DEFAULT_RECOVER_AFTER_MS),
            journal: None,
        }
    }
}

/// A duration range in milliseconds (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyRange {
    /// Shortest task.
    pub min_ms: u64,
    /// Longest task.
    pub max_ms: u64,
}

impl Default for LatencyRange {
    fn default() -> Self {
        Self { min_ms: 1_000, max_ms: 5_000 }
    }
}

impl LatencyRange {
    /// Every task takes exactly `ms`.
    pub fn fixed(ms: u64) -> Self {
        Self { min_ms: ms, max_ms: ms }
    }
}

/// Failure probability per operation kind, each in `[0, 1]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureRates {
    /// power_on.
    pub power_on: f64,
    /// power_off.
    pub power_off: f64,
    /// power_cycle.
    pub power_cycle: f64,
    /// firmware_update.
    pub firmware_update: f64,
}

impl FailureRates {
    /// The same rate for every operation.
    pub fn all(rate: f64) -> Self {
        Self { power_on: rate, power_off: rate, power_cycle: rate, firmware_update: rate }
    }

    /// The rate for `kind`.
    pub fn get(&self, kind: OperationKind) -> f64 {
        match kind {
            OperationKind::PowerOn => self.power_on,
            OperationKind::PowerOff => self.power_off,
            OperationKind::PowerCycle => self.power_cycle,
            OperationKind::FirmwareUpdate => self.firmware_update,
        }
    }
}

/// The simulated Core. Cheap to clone: clones share one fleet.
///
/// ```
/// use std::sync::Arc;
/// use steward_runtime::clock::ManualClock;
/// use steward_runtime::core::{Core, SubmitOutcome, TaskRequest};
/// use steward_sim::{LatencyRange, SimConfig, SimCore};
/// use steward_proto::{IdempotencyKey, Operation, RunId, TargetId, TaskStatus};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
/// let config = SimConfig { latency: LatencyRange::fixed(1_000), ..SimConfig::default() };
/// let core = SimCore::new(config, Arc::new(clock.clone()))?;
/// let rack = core.inventory().racks[0].clone();
/// let (run, target) = (RunId::new("run-1"), TargetId::new("run-1:rack-001"));
/// let request = TaskRequest {
///     idempotency_key: IdempotencyKey::for_attempt(&run, &target, 1),
///     run_id: run,
///     target_id: target,
///     rack_id: rack.id.clone(),
///     operation: Operation::PowerCycle,
///     components: rack.components.iter().map(|c| c.id.clone()).collect(),
/// };
/// let SubmitOutcome::Accepted { task_id } = core.submit(&request).await? else { panic!() };
/// clock.advance(chrono::Duration::seconds(1));
/// assert_eq!(core.task_status(&task_id).await?.status, TaskStatus::Completed);
/// # Ok::<(), steward_runtime::core::CoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SimCore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCore").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    config: SimConfig,
    clock: SharedClock,
    inventory: InventoryUpsert,
    state: Mutex<State>,
}

/// A journal kept outside the sim (a database table): it must make each record durable before
/// `append` returns, and may refuse it (a deposed leader's journal refuses every append, so the
/// call fails and the sim creates nothing).
pub trait ExternalJournal: Send {
    /// Appends one record: `kind` is its tag, `key` the idempotency key it is about (if any),
    /// `line` the record's JSON as [`SimCore::with_external_journal`] reads it back.
    fn append(&mut self, kind: &str, key: Option<&str>, line: &str) -> Result<(), String>;
}

impl SimCore {
    /// Like [`SimCore::new`] with the journal outside: replays `records` (the lines appended
    /// so far, oldest first) and appends every new record to `journal`. `config.journal` is
    /// ignored.
    pub fn with_external_journal(
        config: SimConfig,
        clock: SharedClock,
        records: &[String],
        journal: Box<dyn ExternalJournal>,
    ) -> Result<Self, CoreError> {
        validate(&config)?;
        let (inventory, components) = generate(&config);
        let mut state = State::new(components);
        state.recover_after_ms = config.recover_after_ms;
        for (number, line) in records.iter().enumerate() {
            let record: Record = serde_json::from_str(line).map_err(|e| CoreError::Journal {
                path: "external journal".into(),
                message: format!("record {}: {e}", number + 1),
            })?;
            state.apply(record);
        }
        state.external = Some(journal);
        Ok(Self { inner: Arc::new(Inner { config, clock, inventory, state: Mutex::new(state) }) })
    }

    /// Generates the fleet and, if a journal is configured, replays it (creating the file if it
    /// does not exist).
    pub fn new(config: SimConfig, clock: SharedClock) -> Result<Self, CoreError> {
        validate(&config)?;
        let (inventory, components) = generate(&config);
        let mut state = State::new(components);
        state.recover_after_ms = config.recover_after_ms;
        if let Some(path) = &config.journal {
            state.journal = Some(Journal::open(path, &mut state)?);
        }
        Ok(Self { inner: Arc::new(Inner { config, clock, inventory, state: Mutex::new(state) }) })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The generated fleet: racks `rack-001`, ... in rows `row-a`, ... (label `row` and
    /// `location.row`), components `rack-001-compute-01`, `rack-001-nvswitch-01`,
    /// `rack-001-power-shelf-01`, `rack-001-node-01`, ...
    pub fn inventory(&self) -> InventoryUpsert {
        self.inner.inventory.clone()
    }

    /// How many times `submit` was called with `key` (accepted, duplicate, conflict or rejected).
    pub fn submissions(&self, key: &IdempotencyKey) -> u32 {
        self.lock().submissions.get(key).copied().unwrap_or(0)
    }

    /// The largest per-key submit count (0 if nothing was submitted).
    pub fn max_submissions_per_key(&self) -> u32 {
        self.lock().submissions.values().copied().max().unwrap_or(0)
    }

    /// How many submit calls named a key that already had a task (each answered with the
    /// existing task). A runtime that recovers through `find_task` keeps this at zero.
    pub fn duplicate_submits(&self) -> u64 {
        self.lock().duplicate_submits
    }

    /// Number of tasks created.
    pub fn task_count(&self) -> usize {
        self.lock().tasks.len()
    }

    /// The raw controller state a component reports now (None for an unknown component).
    pub fn controller_state(&self, component: &ComponentId) -> Option<String> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        let index = *state.component_index.get(component)?;
        let overlay = state.overlay(now);
        Some(
            overlay
                .get(&index)
                .map(|s| (*s).to_owned())
                .unwrap_or_else(|| state.components[index].controller.clone()),
        )
    }

    /// Test hook: sets a component's settled controller state (journaled). A task running on
    /// the component still shows its transient state until it finishes, and a finishing task
    /// overwrites it.
    pub fn set_controller_state(
        &self,
        component: &ComponentId,
        raw: impl Into<String>,
    ) -> Result<(), CoreError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        if !state.component_index.contains_key(component) {
            return Err(CoreError::UnknownComponent { component: component.clone() });
        }
        let record =
            Record::ControllerState { at: now, component: component.clone(), raw: raw.into() };
        state.append(&record)?;
        state.apply(record);
        Ok(())
    }

    /// Every task submitted from now on for one of `racks` fails (until cleared).
    pub fn inject_failures(&self, racks: impl IntoIterator<Item = RackId>) {
        self.lock().failing_racks.extend(racks);
    }

    /// Stops failing the racks named by [`SimCore::inject_failures`] and forgets `fail_next`.
    pub fn clear_injected_failures(&self) {
        let mut state = self.lock();
        state.failing_racks.clear();
        state.fail_next = 0;
    }

    /// The next `n` tasks created fail (in submission order).
    pub fn fail_next(&self, n: u32) {
        let mut state = self.lock();
        state.fail_next = state.fail_next.saturating_add(n);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn observe_now(&self) -> Vec<Observation> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        let overlay = state.overlay(now);
        state
            .components
            .iter()
            .enumerate()
            .map(|(index, c)| Observation {
                component_id: c.id.clone(),
                controller_state: overlay
                    .get(&index)
                    .map(|s| (*s).to_owned())
                    .unwrap_or_else(|| c.controller.clone()),
                power_state: Some(c.power.clone()),
                firmware_version: Some(c.firmware.clone()),
                observed_at: Some(now),
            })
            .collect()
    }

    fn submit_now(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        let now = self.inner.clock.now();
        let config = &self.inner.config;
        let mut state = self.lock();
        state.settle(now);
        let key = &request.idempotency_key;
        if let Some(&index) = state.by_key.get(key) {
            let task_id = state.tasks[index].id.clone();
            state.call(now, key, CallOutcome::Duplicate)?;
            return Ok(SubmitOutcome::Accepted { task_id });
        }
        if let Err(message) = state.check(request) {
            state.call(now, key, CallOutcome::Rejected)?;
            return Ok(SubmitOutcome::Rejected { message });
        }
        let earlier_calls = state.submissions.get(key).copied().unwrap_or(0);
        let mut conflict = Draw::new(config.seed, key.as_str(), PURPOSE_CONFLICT, earlier_calls);
        if config.conflict_rate > 0.0 && conflict.unit() < config.conflict_rate {
            state.call(now, key, CallOutcome::Conflict)?;
            return Ok(SubmitOutcome::Conflict {
                message: format!(
                    "simulated rack conflict on {} (conflict_rate {})",
                    request.rack_id, config.conflict_rate
                ),
            });
        }
        if config.rack_exclusive {
            let busy = state.active_by_rack.get(&request.rack_id).and_then(|s| s.first().copied());
            if let Some(index) = busy {
                let other = &state.tasks[index];
                let message = format!(
                    "rack {} has an unfinished task {} ({}, key {})",
                    request.rack_id,
                    other.id,
                    other.request.operation,
                    other.request.idempotency_key
                );
                state.call(now, key, CallOutcome::Conflict)?;
                return Ok(SubmitOutcome::Conflict { message });
            }
        }
        let record = state.draw_task(config, request, now);
        let task_id = match &record {
            Record::Submitted { task_id, .. } => task_id.clone(),
            _ => return Err(CoreError::Protocol("sim drew a non-submission record".to_owned())),
        };
        state.append(&record)?;
        state.apply(record);
        Ok(SubmitOutcome::Accepted { task_id })
    }

    fn status_now(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        let index =
            *state.by_id.get(task).ok_or_else(|| CoreError::NotFound { task: task.clone() })?;
        Ok(state.tasks[index].report(now))
    }

    fn find_now(&self, key: &IdempotencyKey) -> Option<TaskReport> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        let index = *state.by_key.get(key)?;
        Some(state.tasks[index].report(now))
    }

    fn cancel_now(&self, task: &TaskId) -> Result<(), CoreError> {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        state.settle(now);
        let index =
            *state.by_id.get(task).ok_or_else(|| CoreError::NotFound { task: task.clone() })?;
        if state.tasks[index].status_at(now).is_terminal() {
            return Ok(());
        }
        let record = Record::Cancelled { at: now, task_id: task.clone() };
        state.append(&record)?;
        state.apply(record);
        Ok(())
    }
}

// The sim answers synchronously under one mutex; the journal's fsync is the only slow part.
#[async_trait::async_trait]
impl Core for SimCore {
    async fn observe(&self) -> Result<Vec<Observation>, CoreError> {
        Ok(self.observe_now())
    }

    async fn submit(&self, request: &TaskRequest) -> Result<SubmitOutcome, CoreError> {
        self.submit_now(request)
    }

    async fn task_status(&self, task: &TaskId) -> Result<TaskReport, CoreError> {
        self.status_now(task)
    }

    async fn find_task(&self, key: &IdempotencyKey) -> Result<Option<TaskReport>, CoreError> {
        Ok(self.find_now(key))
    }

    async fn cancel(&self, task: &TaskId) -> Result<(), CoreError> {
        self.cancel_now(task)
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and fleet generation.

fn validate(config: &SimConfig) -> Result<(), CoreError> {
    let invalid = |field: &str, message: String| CoreError::InvalidConfig {
        field: format!("core.sim.{field}"),
        message,
    };
    if config.latency.min_ms > config.latency.max_ms {
        return Err(invalid(
            "latency.min_ms",
            format!(
                "min_ms {} is greater than max_ms {}",
                config.latency.min_ms, config.latency.max_ms
            ),
        ));
    }
    let rates = [
        ("failure_rate.power_on", config.failure_rate.power_on),
        ("failure_rate.power_off", config.failure_rate.power_off),
        ("failure_rate.power_cycle", config.failure_rate.power_cycle),
        ("failure_rate.firmware_update", config.failure_rate.firmware_update),
        ("conflict_rate", config.conflict_rate),
    ];
    for (field, rate) in rates {
        if !(0.0..=1.0).contains(&rate) {
            return Err(invalid(field, format!("{rate} is not a probability in [0, 1]")));
        }
    }
    if config.racks > 0 && config.rows == 0 {
        return Err(invalid("rows", format!("0 rows cannot hold {} racks", config.racks)));
    }
    Ok(())
}

/// `0 -> a`, `25 -> z`, `26 -> aa`, ...
fn row_letters(mut index: u32) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(char::from(b'a' + (index % 26) as u8));
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.iter().rev().collect()
}

fn kind_slug(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Compute => "compute",
        ComponentKind::Nvswitch => "nvswitch",
        ComponentKind::PowerShelf => "power-shelf",
        ComponentKind::Node => "node",
    }
}

fn kind_model(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Compute => "GB200 compute tray (sim)",
        ComponentKind::Nvswitch => "NVLink switch tray (sim)",
        ComponentKind::PowerShelf => "power shelf (sim)",
        ComponentKind::Node => "node (sim)",
    }
}

fn generate(config: &SimConfig) -> (InventoryUpsert, Vec<SimComponent>) {
    let mut racks = Vec::new();
    let mut components = Vec::new();
    let mut per_row: BTreeMap<u32, u32> = BTreeMap::new();
    for r in 0..config.racks {
        let rack_id = RackId::new(format!("rack-{:03}", r + 1));
        let row_index =
            u32::try_from(u64::from(r) * u64::from(config.rows) / u64::from(config.racks))
                .unwrap_or(0);
        let row = format!("row-{}", row_letters(row_index));
        let position = per_row.entry(row_index).or_insert(0);
        *position += 1;
        let counts = [
            (ComponentKind::Compute, config.compute_per_rack),
            (ComponentKind::Nvswitch, config.nvswitch_per_rack),
            (ComponentKind::PowerShelf, config.power_shelf_per_rack),
            (ComponentKind::Node, config.node_per_rack),
        ];
        let mut specs = Vec::new();
        let mut slot = 0;
        for (kind, count) in counts {
            for n in 1..=count {
                slot += 1;
                let id = ComponentId::new(format!("{rack_id}-{}-{n:02}", kind_slug(kind)));
                specs.push(ComponentSpec {
                    id: id.clone(),
                    kind,
                    name: format!("{}-{n:02}", kind_slug(kind)),
                    manufacturer: Some("NVIDIA".to_owned()),
                    model: Some(kind_model(kind).to_owned()),
                    serial: Some(format!("SIM{:05}{:03}", r + 1, slot)),
                    position: ComponentPosition { slot: Some(slot), tray_index: Some(n) },
                    firmware_version: Some(config.initial_firmware.clone()),
                    power_state: Some("on".to_owned()),
                    labels: BTreeMap::new(),
                });
                components.push(SimComponent {
                    id,
                    rack: rack_id.clone(),
                    kind,
                    controller: ready_state(kind).to_owned(),
                    power: "on".to_owned(),
                    firmware: config.initial_firmware.clone(),
                });
            }
        }
        racks.push(RackSpec {
            id: rack_id.clone(),
            name: rack_id.to_string(),
            location: Location {
                region: Some("sim".to_owned()),
                datacenter: Some("sim-dc1".to_owned()),
                room: None,
                row: Some(row.clone()),
                position: Some(position.to_string()),
            },
            labels: BTreeMap::from([("row".to_owned(), row)]),
            components: specs,
        });
    }
    (InventoryUpsert { racks }, components)
}

// ---------------------------------------------------------------------------------------------
// Controller-state vocabulary (DESIGN §3.2): compute speaks host-state display strings, the
// other kinds a JSON object tagged by "state".

fn ready_state(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::Compute => "Ready",
        _ => r#"{"state":"ready"}"#,
    }
}

fn error_state(kind: ComponentKind, op: OperationKind) -> &'static str {
    match (kind, op) {
        (ComponentKind::Compute, OperationKind::FirmwareUpdate) => "Failed/FirmwareUpdate",
        (ComponentKind::Compute, OperationKind::PowerOn) => "Failed/PowerOn",
        (ComponentKind::Compute, OperationKind::PowerOff) => "Failed/PowerOff",
        (ComponentKind::Compute, OperationKind::PowerCycle) => "Failed/PowerCycle",
        _ => r#"{"state":"error"}"#,
    }
}

/// The state a component shows while a task works on it, `progress` in `[0, 1)`.
fn transient_state(kind: ComponentKind, op: OperationKind, progress: f64) -> &'static str {
    let late = progress >= 0.7;
    match (op, kind, late) {
        (OperationKind::FirmwareUpdate, ComponentKind::Compute, false) => {
            "Reprovisioning/FirmwareUpdate"
        }
        (OperationKind::FirmwareUpdate, ComponentKind::Compute, true) => {
            "HostInitializing/WaitingForFirmwareActivation"
        }
        (OperationKind::FirmwareUpdate, ComponentKind::PowerShelf, false) => {
            r#"{"state":"maintenance"}"#
        }
        (OperationKind::FirmwareUpdate, _, false) => r#"{"state":"reprovisioning"}"#,
        (OperationKind::FirmwareUpdate, _, true) => r#"{"state":"configuring"}"#,
        (_, ComponentKind::Compute, _) => "HostInitializing/PowerControl",
        (_, ComponentKind::PowerShelf, _) => r#"{"state":"configuring"}"#,
        (_, _, _) => r#"{"state":"initializing"}"#,
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness.

const PURPOSE_CONFLICT: u64 = 1;
const PURPOSE_TASK: u64 = 2;
const PURPOSE_TASK_ID: u64 = 3;

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A splitmix64 stream for one (seed, key, purpose, index).
struct Draw(u64);

impl Draw {
    fn new(seed: u64, key: &str, purpose: u64, index: u32) -> Self {
        let mut state = seed;
        let mut mixed = splitmix64(&mut state) ^ fnv1a(key);
        mixed ^= splitmix64(&mut mixed) ^ purpose.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        mixed ^= u64::from(index).wrapping_mul(0xA076_1D64_78BD_642F);
        Self(splitmix64(&mut mixed))
    }

    fn next(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high]`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        let span = high.saturating_sub(low);
        if span == u64::MAX { self.next() } else { low + self.next() % (span + 1) }
    }
}

// ---------------------------------------------------------------------------------------------
// State, tasks and the journal.

struct SimComponent {
    id: ComponentId,
    rack: RackId,
    kind: ComponentKind,
    controller: String,
    power: String,
    firmware: String,
}

struct SimTask {
    id: TaskId,
    request: TaskRequest,
    submitted_at: DateTime<Utc>,
    duration_ms: u64,
    failed_components: BTreeSet<ComponentId>,
    cancelled_at: Option<DateTime<Utc>>,
}

fn millis(ms: u64) -> Duration {
    Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
}

impl SimTask {
    fn start(&self) -> DateTime<Utc> {
        self.submitted_at + millis(self.duration_ms / 10)
    }

    fn end(&self) -> DateTime<Utc> {
        self.submitted_at + millis(self.duration_ms)
    }

    fn status_at(&self, now: DateTime<Utc>) -> TaskStatus {
        if self.cancelled_at.is_some() {
            TaskStatus::Terminated
        } else if now >= self.end() {
            if self.failed_components.is_empty() {
                TaskStatus::Completed
            } else {
                TaskStatus::Failed
            }
        } else if now < self.start() {
            TaskStatus::Pending
        } else {
            TaskStatus::Running
        }
    }

    /// Fraction of the running phase elapsed, in `[0, 1]`.
    fn progress(&self, now: DateTime<Utc>) -> f64 {
        let total = (self.end() - self.start()).num_milliseconds();
        if total <= 0 {
            return 1.0;
        }
        let done = (now - self.start()).num_milliseconds().clamp(0, total);
        done as f64 / total as f64
    }

    fn report(&self, now: DateTime<Utc>) -> TaskReport {
        let status = self.status_at(now);
        let op = &self.request.operation;
        let rack = &self.request.rack_id;
        let component_results = self
            .request
            .components
            .iter()
            .map(|c| {
                let result = match status {
                    TaskStatus::Failed if !self.failed_components.contains(c) => {
                        TaskStatus::Completed
                    }
                    other => other,
                };
                (c.clone(), result)
            })
            .collect();
        let message = match status {
            TaskStatus::Pending | TaskStatus::Waiting => format!("{op} on {rack}: queued"),
            TaskStatus::Running => format!("{op} on {rack}: running"),
            TaskStatus::Completed => {
                format!("{op} on {rack}: completed on {} components", self.request.components.len())
            }
            TaskStatus::Failed => {
                let failed: Vec<&str> =
                    self.failed_components.iter().map(ComponentId::as_str).collect();
                format!("{op} on {rack}: failed on {} (simulated)", failed.join(", "))
            }
            TaskStatus::Terminated => format!("{op} on {rack}: cancelled"),
        };
        TaskReport {
            task_id: self.id.clone(),
            idempotency_key: self.request.idempotency_key.clone(),
            status,
            message,
            component_results,
        }
    }
}

/// What a counted submit call that created no task ended as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CallOutcome {
    Duplicate,
    Conflict,
    Rejected,
}

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    /// A submit call that created a task, with everything drawn for it.
    Submitted {
        at: DateTime<Utc>,
        task_id: TaskId,
        request: TaskRequest,
        duration_ms: u64,
        failed_components: BTreeSet<ComponentId>,
    },
    /// A submit call that created nothing (it still counts).
    Call { at: DateTime<Utc>, key: IdempotencyKey, outcome: CallOutcome },
    /// A task cancelled before it finished.
    Cancelled { at: DateTime<Utc>, task_id: TaskId },
    /// A controller state set through the test hook.
    ControllerState { at: DateTime<Utc>, component: ComponentId, raw: String },
}

impl Record {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Record::Submitted { at, .. }
            | Record::Call { at, .. }
            | Record::Cancelled { at, .. }
            | Record::ControllerState { at, .. } => *at,
        }
    }
}

/// What settling does at a point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Settle {
    Finish,
    Recover,
}

struct State {
    components: Vec<SimComponent>,
    component_index: HashMap<ComponentId, usize>,
    racks: HashSet<RackId>,
    tasks: Vec<SimTask>,
    by_id: HashMap<TaskId, usize>,
    by_key: HashMap<IdempotencyKey, usize>,
    submissions: HashMap<IdempotencyKey, u32>,
    duplicate_submits: u64,
    /// Tasks neither finished (settled) nor cancelled.
    active: BTreeSet<usize>,
    active_by_rack: HashMap<RackId, BTreeSet<usize>>,
    timeline: BinaryHeap<Reverse<(DateTime<Utc>, usize, Settle)>>,
    fail_next: u32,
    failing_racks: BTreeSet<RackId>,
    recover_after_ms: Option<u64>,
    journal: Option<Journal>,
    external: Option<Box<dyn ExternalJournal>>,
}

impl State {
    fn new(components: Vec<SimComponent>) -> Self {
        let component_index =
            components.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let racks = components.iter().map(|c| c.rack.clone()).collect();
        Self {
            components,
            component_index,
            racks,
            tasks: Vec::new(),
            by_id: HashMap::new(),
            by_key: HashMap::new(),
            submissions: HashMap::new(),
            duplicate_submits: 0,
            active: BTreeSet::new(),
            active_by_rack: HashMap::new(),
            timeline: BinaryHeap::new(),
            fail_next: 0,
            failing_racks: BTreeSet::new(),
            recover_after_ms: None,
            journal: None,
            external: None,
        }
    }

    fn append(&mut self, record: &Record) -> Result<(), CoreError> {
        if let Some(external) = &mut self.external {
            return append_external(external.as_mut(), record);
        }
        match &mut self.journal {
            Some(journal) => journal.append(record),
            None => Ok(()),
        }
    }

    /// Records and counts a submit call that created nothing.
    fn call(
        &mut self,
        at: DateTime<Utc>,
        key: &IdempotencyKey,
        outcome: CallOutcome,
    ) -> Result<(), CoreError> {
        let record = Record::Call { at, key: key.clone(), outcome };
        self.append(&record)?;
        self.apply(record);
        Ok(())
    }

    /// Why Core would refuse `request`, if it would.
    fn check(&self, request: &TaskRequest) -> Result<(), String> {
        if !self.racks.contains(&request.rack_id) {
            return Err(format!("unknown rack {}", request.rack_id));
        }
        if request.components.is_empty() {
            return Err(format!("no components selected on rack {}", request.rack_id));
        }
        for component in &request.components {
            let Some(&index) = self.component_index.get(component) else {
                return Err(format!("unknown component {component}"));
            };
            let rack = &self.components[index].rack;
            if *rack != request.rack_id {
                return Err(format!(
                    "component {component} is on rack {rack}, not on {}",
                    request.rack_id
                ));
            }
        }
        Ok(())
    }

    /// Draws a new task's id, duration and outcome (consuming injected failures).
    fn draw_task(
        &mut self,
        config: &SimConfig,
        request: &TaskRequest,
        now: DateTime<Utc>,
    ) -> Record {
        let key = request.idempotency_key.as_str();
        let mut draw = Draw::new(config.seed, key, PURPOSE_TASK, 0);
        let duration_ms = draw.between(config.latency.min_ms, config.latency.max_ms);
        let op = &request.operation;
        let affected: Vec<&ComponentId> = request
            .components
            .iter()
            .filter(|c| {
                self.component_index
                    .get(*c)
                    .is_some_and(|&i| op.applies_to(self.components[i].kind))
            })
            .collect();
        let rate = config.failure_rate.get(op.kind());
        let drawn_failure = draw.unit() < rate && rate > 0.0;
        let injected = self.failing_racks.contains(&request.rack_id)
            || (self.fail_next > 0 && !affected.is_empty());
        if self.fail_next > 0 && !affected.is_empty() {
            self.fail_next -= 1;
        }
        let mut failed_components = BTreeSet::new();
        if (drawn_failure || injected) && !affected.is_empty() {
            for component in &affected {
                if draw.unit() < 0.5 {
                    failed_components.insert((*component).clone());
                }
            }
            if failed_components.is_empty() {
                let pick = draw.between(0, affected.len() as u64 - 1);
                let pick = usize::try_from(pick).unwrap_or(0);
                failed_components.insert(affected[pick].clone());
            }
        }
        // The id is derived from the key; the (unlikely) collision gets a suffix.
        let mut id_draw = Draw::new(0, key, PURPOSE_TASK_ID, 0);
        let mut task_id = TaskId::new(format!("task-{:016x}", id_draw.next()));
        let mut suffix = 2;
        while self.by_id.contains_key(&task_id) {
            task_id = TaskId::new(format!("{task_id}-{suffix}"));
            suffix += 1;
        }
        Record::Submitted {
            at: now,
            task_id,
            request: request.clone(),
            duration_ms,
            failed_components,
        }
    }

    /// Applies one record (live or replayed) after settling everything due before it.
    fn apply(&mut self, record: Record) {
        self.settle(record.at());
        match record {
            Record::Submitted { at, task_id, request, duration_ms, failed_components } => {
                *self.submissions.entry(request.idempotency_key.clone()).or_insert(0) += 1;
                let index = self.tasks.len();
                let task = SimTask {
                    id: task_id.clone(),
                    request,
                    submitted_at: at,
                    duration_ms,
                    failed_components,
                    cancelled_at: None,
                };
                self.timeline.push(Reverse((task.end(), index, Settle::Finish)));
                self.active.insert(index);
                self.active_by_rack.entry(task.request.rack_id.clone()).or_default().insert(index);
                self.by_id.insert(task_id, index);
                self.by_key.insert(task.request.idempotency_key.clone(), index);
                self.tasks.push(task);
            }
            Record::Call { key, outcome, .. } => {
                *self.submissions.entry(key).or_insert(0) += 1;
                if outcome == CallOutcome::Duplicate {
                    self.duplicate_submits += 1;
                }
            }
            Record::Cancelled { at, task_id } => {
                if let Some(&index) = self.by_id.get(&task_id) {
                    self.tasks[index].cancelled_at = Some(at);
                    self.deactivate(index);
                }
            }
            Record::ControllerState { component, raw, .. } => {
                if let Some(&index) = self.component_index.get(&component) {
                    self.components[index].controller = raw;
                }
            }
        }
    }

    fn deactivate(&mut self, index: usize) {
        self.active.remove(&index);
        let rack = &self.tasks[index].request.rack_id;
        if let Some(set) = self.active_by_rack.get_mut(rack) {
            set.remove(&index);
            if set.is_empty() {
                self.active_by_rack.remove(rack);
            }
        }
    }

    /// Applies the effects of every task end (and repair) due at or before `now`.
    fn settle(&mut self, now: DateTime<Utc>) {
        while let Some(Reverse((at, index, what))) = self.timeline.peek().copied() {
            if at > now {
                break;
            }
            self.timeline.pop();
            match what {
                Settle::Finish => self.finish(index),
                Settle::Recover => self.recover(index),
            }
        }
    }

    fn finish(&mut self, index: usize) {
        if self.tasks[index].cancelled_at.is_some() {
            return;
        }
        self.deactivate(index);
        let task = &self.tasks[index];
        let op = &task.request.operation;
        let kind = op.kind();
        for component in &task.request.components {
            let Some(&ci) = self.component_index.get(component) else { continue };
            let c = &mut self.components[ci];
            if !op.applies_to(c.kind) {
                continue;
            }
            if task.failed_components.contains(component) {
                c.controller = error_state(c.kind, kind).to_owned();
                continue;
            }
            c.controller = ready_state(c.kind).to_owned();
            match op {
                Operation::PowerOn | Operation::PowerCycle => c.power = "on".to_owned(),
                Operation::PowerOff => c.power = "off".to_owned(),
                Operation::FirmwareUpdate { version, .. } => c.firmware = version.clone(),
            }
        }
        let recover_after = self.recover_after_ms.filter(|ms| *ms > 0);
        if let (Some(ms), false) = (recover_after, task.failed_components.is_empty()) {
            self.timeline.push(Reverse((task.end() + millis(ms), index, Settle::Recover)));
        }
    }

    fn recover(&mut self, index: usize) {
        let task = &self.tasks[index];
        let kind = task.request.operation.kind();
        for component in &task.failed_components {
            let Some(&ci) = self.component_index.get(component) else { continue };
            let c = &mut self.components[ci];
            if c.controller == error_state(c.kind, kind) {
                c.controller = ready_state(c.kind).to_owned();
            }
        }
    }

    /// Transient controller states of components under a running task (later tasks win).
    fn overlay(&self, now: DateTime<Utc>) -> HashMap<usize, &'static str> {
        let mut overlay = HashMap::new();
        for &index in &self.active {
            let task = &self.tasks[index];
            if task.status_at(now) != TaskStatus::Running {
                continue;
            }
            let op = &task.request.operation;
            let progress = task.progress(now);
            for component in &task.request.components {
                let Some(&ci) = self.component_index.get(component) else { continue };
                let kind = self.components[ci].kind;
                if op.applies_to(kind) {
                    overlay.insert(ci, transient_state(kind, op.kind(), progress));
                }
            }
        }
        overlay
    }
}

/// Appends `record` to an external journal with its kind tag and idempotency key.
fn append_external(journal: &mut dyn ExternalJournal, record: &Record) -> Result<(), CoreError> {
    let error = |message: String| CoreError::Journal { path: "external journal".into(), message };
    let line = serde_json::to_string(record).map_err(|e| error(format!("cannot encode: {e}")))?;
    let (kind, key) = match record {
        Record::Submitted { request, .. } => ("submitted", Some(&request.idempotency_key)),
        Record::Call { key, outcome, .. } => match outcome {
            CallOutcome::Duplicate => ("duplicate", Some(key)),
            CallOutcome::Conflict => ("conflict", Some(key)),
            CallOutcome::Rejected => ("rejected", Some(key)),
        },
        Record::Cancelled { .. } => ("cancelled", None),
        Record::ControllerState { .. } => ("controller_state", None),
    };
    journal.append(kind, key.map(|k| k.as_str()), &line).map_err(error)
}

struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Replays `path` into `state` (if it exists), drops a torn last line, and opens the file
    /// for appending.
    fn open(path: &Path, state: &mut State) -> Result<Self, CoreError> {
        let error =
            |message: String| CoreError::Journal { path: path.display().to_string(), message };
        let existed = path.exists();
        let mut good_len = 0u64;
        let mut torn = false;
        if existed {
            let text =
                std::fs::read_to_string(path).map_err(|e| error(format!("cannot read: {e}")))?;
            for (number, line) in text.split_inclusive('\n').enumerate() {
                if !line.ends_with('\n') {
                    // A crash mid-append: the call never answered, so the line never counted.
                    torn = true;
                    break;
                }
                let body = line.trim_end();
                if !body.is_empty() {
                    let record: Record = serde_json::from_str(body)
                        .map_err(|e| error(format!("line {}: {e}", number + 1)))?;
                    state.apply(record);
                }
                good_len += line.len() as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| error(format!("cannot open for append: {e}")))?;
        if torn {
            file.set_len(good_len).map_err(|e| error(format!("cannot drop torn line: {e}")))?;
            file.sync_all().map_err(|e| error(format!("cannot sync: {e}")))?;
        }
        if !existed {
            // Make the new file's directory entry durable too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
                && let Ok(dir) = File::open(dir)
            {
                let _ = dir.sync_all();
            }
        }
        Ok(Self { path: path.to_owned(), file })
    }

    fn append(&mut self, record: &Record) -> Result<(), CoreError> {
        let error =
            |message: String| CoreError::Journal { path: self.path.display().to_string(), message };
        let mut line = serde_json::to_string(record)
            .map_err(|e| error(format!("cannot encode record: {e}")))?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| error(format!("cannot append: {e}")))?;
        self.file.sync_data().map_err(|e| error(format!("cannot sync: {e}")))
    }
}
