//! `steward-runtime`: the thin shell around Steward's pure core.
//!
//! The reducer thread owns all mutation; the store persists state rows and the event log in one
//! SQLite transaction per batch; the applier executes Core calls only after their intent is
//! durable; pollers feed Core's view back in. The HTTP API and CLI sit on top of the same
//! [`Handle`] an embedding daemon uses.

mod applier;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod demo;
pub mod handle;
pub mod http;
pub mod metrics;
mod pollers;
mod reducer;
pub mod runtime;
pub mod simulation;
pub mod store;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use handle::{
    CommandError, ComponentFilter, CreateRunOutcome, DryRun, EventsPage, Handle, InventorySummary,
    RackDetail,
};
pub use metrics::Metrics;
pub use reducer::SYSTEM_INITIATOR;
pub use runtime::{Runtime, RuntimeConfig, StartError};
