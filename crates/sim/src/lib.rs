//! `steward-sim`: the simulated Core and the deterministic simulation harness.
//!
//! [`SimCore`] is a product feature: the `steward` binary drives it by default, the demo runs on
//! it, and every black-box test uses it. [`Simulation`] steps the real engine (reducer, planner,
//! SQLite store) and a `SimCore` in one thread on a manual clock, so a whole run over hundreds of
//! racks replays exactly from its seed; the simulation proptest and the engine's benchmarks use
//! it. This crate depends on the engine, never the other way round.

pub mod core;
pub mod simulation;

pub use core::{ExternalJournal, FailureRates, LatencyRange, SimConfig, SimCore};
pub use simulation::Simulation;
