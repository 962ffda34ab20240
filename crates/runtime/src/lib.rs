//! `steward-runtime`: Steward's engine, the thin shell around the pure core.
//!
//! The reducer thread owns all mutation; the store persists state rows and the event log in one
//! SQLite transaction per batch; the applier executes Core calls only after their intent is
//! durable; pollers feed Core's view back in. Everything talks to the reducer through the
//! [`protocol`] (a [`Handle`] wraps it). No HTTP server, CLI or terminal UI lives here: the
//! `steward` binary (crate `steward-app`) and embedding daemons sit on top of the same `Handle`.
//!
//! Cargo features (both default on): `webhooks` (signed delivery from the outbox) and `metrics`
//! (Prometheus). With them off the engine depends on neither reqwest nor prometheus-client.

pub mod adapter;
mod applier;
pub mod clock;
pub mod core;
pub mod handle;
pub mod health;
pub mod hooks;
pub mod manual;
pub mod metrics;
mod pollers;
pub mod protocol;
mod reducer;
pub mod runtime;
pub mod store;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use handle::Handle;
pub use health::{Health, ReducerState};
pub use manual::ManualReducer;
pub use metrics::Metrics;
pub use protocol::{
    CommandError, ComponentFilter, CreateRunOutcome, DryRun, EventsPage, InventorySummary,
    RackDetail, WebhookView,
};
pub use reducer::SYSTEM_INITIATOR;
pub use runtime::{Runtime, RuntimeConfig, StartError};
