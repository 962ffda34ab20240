//! `steward-runtime`: the thin shell around Steward's pure core.
//!
//! The reducer thread owns all mutation; the store persists state rows and the event log in one
//! SQLite transaction per batch; the applier executes Core calls only after their intent is
//! durable; pollers feed Core's view back in. The HTTP API and CLI sit on top of the same
//! `Handle` an embedding daemon uses.

pub mod clock;
pub mod config;
pub mod core;
pub mod store;
