//! `steward-proto`: plain data shared by every Steward crate.
//!
//! Ids, enums, DTOs and the JSON shapes of `API.md`, with serde spellings exactly as the API
//! writes them. No logic beyond parsing, validation and `Display`.

pub mod component;
pub mod conflict;
pub mod error;
pub mod event;
pub mod hooks;
pub mod ids;
pub mod inventory;
pub mod mapping;
pub mod operation;
pub mod policy;
pub mod requests;
pub mod run;
pub mod service;
pub mod site;
pub mod status;

pub use component::{
    BlockedOperations, Component, ComponentKind, ComponentPosition, ComponentStatus, ComponentView,
    Location, Observation, OperationClass, Phase, Rack,
};
pub use conflict::{ComponentOverlap, ConflictRule, TaskMatcher, Verdict};
pub use error::{FieldError, ValidationErrors};
pub use event::EventRecord;
pub use hooks::{HookPhase, HookRefs, HookRun};
pub use ids::{
    ComponentId, IdempotencyKey, MAX_ID_CHARS, RackId, RunId, ServiceState, TargetId, TaskId,
    check_id, validate_id,
};
pub use inventory::{ComponentSpec, InventoryUpsert, RackSpec};
pub use mapping::PhaseMappingOverride;
pub use operation::{Operation, OperationKind};
pub use policy::{
    ConflictRetry, FailureCount, FailureRate, GateScope, MaintenanceWindow, OnNotReady, Ordering,
    RunPolicy, SafetyGate, WaveSpec,
};
pub use requests::{
    AdvanceRequest, ForceServiceStateRequest, PolicyOverrides, ReasonRequest, RerunRequest,
    RunRequest, ServiceStateRequest,
};
pub use run::{
    CreateRunRequest, Hold, HookReport, Run, Selector, StatusCounts, Target, Task, Wave,
};
pub use service::{HistoryEntry, ServiceTableDoc};
pub use site::SiteTables;
pub use status::{Gate, RunStatus, RunStatusReason, TargetStatus, TaskStatus};

/// Time as every Steward crate passes it: a UTC timestamp given by the caller.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
