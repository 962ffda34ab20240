//! `steward-runtime`: the thin shell around Steward's pure core.
//!
//! The reducer task owns all mutation; the store persists state rows and the event log in one
//! SQLite transaction per batch; Core adapters execute tasks; the HTTP API and CLI sit on top of
//! the same [`reducer::Handle`] an embedding daemon uses.

pub mod clock;
pub mod core;
pub mod store;
