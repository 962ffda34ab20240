//! `steward-state-machine`: Steward's pure transition functions and their tables.
//!
//! No I/O, no clock, no randomness: `now` and new ids are arguments. Every machine implements
//! [`machine::Machine`]: `step(&state, &event, now) -> Result<(State, Vec<Effect>), Rejected>`,
//! with its transition table held as typed data that `step` itself consults; a rejected event
//! changes nothing. [`fleet::Fleet`] routes [`fleet::FleetEvent`]s (the event log) to the machines.

pub mod effect;
pub mod error;
pub mod fleet;
pub mod freshness;
pub mod machine;
pub mod ownership;
pub mod run;
pub mod service;
pub mod site;
pub mod status;
pub mod table;
pub mod target;
pub mod task;

pub use effect::{
    AfterCommit, EFFECT_KINDS, Effect, Effects, HookCall, Notification, SubmitTask, Write,
};
pub use error::Rejected;
pub use fleet::{
    ComponentEntry, Fleet, FleetConfig, FleetEvent, FleetSnapshot, PersistedComponent,
};
pub use freshness::{MAX_CLOCK_SKEW_SECONDS, ObservationTime, components_by_phase};
pub use machine::{Machine, Row, guard, require_pair, require_row};
pub use run::{RUN_ROWS, RunEvent, RunEventKind, RunMachine};
pub use service::{ServiceTable, ServiceTableError};
pub use site::tables_config;
pub use status::{MappingError, StatusMapper, effective_status, is_stale};
pub use table::{Transition, TransitionTable};
pub use target::{
    TARGET_ROWS, TargetEvent, TargetEventKind, TargetMachine, idempotency_key, next_conflict_delay,
    submission,
};
pub use task::{TASK_ROWS, TaskEvent, TaskEventKind, TaskMachine};
