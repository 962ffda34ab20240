//! `steward-planner`: Steward's pure dispatch planner (DESIGN §3.5–3.6).
//!
//! Two pure entry points, both taking `now` as an argument and never reading the clock:
//! - [`plan_run`] turns a `CreateRunRequest` into a frozen run with its targets and waves
//!   (selector resolution, ordering, wave split), or an error that says why it cannot;
//! - [`plan`] looks at the fleet and returns the actions the reducer should take now (claims,
//!   lease expiries, skips, hold changes, pauses, wave advances, finishes) plus run-level holds
//!   that explain every pending target no individual action covers.
//!
//! [`dry_run_holds`] answers "what would this run's targets wait for right now" for a run that
//! was planned but not created.
//!
//! Module graph (acyclic): `config` <- `gates` <- `plan`, and `gates` <- `dry_run`; `cause`
//! (holds, skips and pauses as facts, rendered as messages in one place) and `cursor` are
//! leaves the gates and the plan share.
//!
//! Determinism: every decision follows `BTreeMap` order or an explicit sort; random ordering
//! uses a hand-written seeded generator ([`order::SplitMix64`]). Fail closed: unknown or stale
//! component status holds a rack; a conflict no rule decides is a conflict.

mod cause;
pub mod config;
pub mod conflict;
pub mod create;
mod cursor;
pub mod dry_run;
mod gates;
pub mod order;
pub mod plan;

pub use config::PlannerConfig;
pub use conflict::{ComponentOverlap, ConflictRule, ConflictRules, TaskMatcher, Verdict};
pub use create::{CreateError, NewRun, plan_run};
pub use dry_run::dry_run_holds;
pub use plan::{Action, PLANNER_INITIATOR, PendingKey, Plan, RunHold, plan};
