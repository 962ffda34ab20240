//! `steward-redfish`: the Redfish Core adapter. It discovers the `ComputerSystem`s behind each
//! configured BMC endpoint (every system a component of the endpoint's rack), observes them with
//! bounded concurrency and per-endpoint backoff, maps their state to a phase through a data
//! table, and runs power and firmware operations, each step journaled in Steward's own database
//! before its request leaves and done only when the BMC shows the result. In HA mode that
//! journal is in PostgreSQL and every write is fenced by the leader's epoch
//! ([`RedfishCore::start_with_journal`]), so a deposed leader journals no step and sends nothing.
//!
//! Modules: [`config`] (the `[core.redfish]` table), [`mapping`] (the state table), [`client`]
//! (reqwest and typed resources), [`fleet`] (discovery, observation, backoff), [`ops`] (one
//! step: send once, verify), [`core`] (the `Core` trait: tasks, kind order, journal).

pub mod client;
pub mod config;
pub mod core;
pub mod fleet;
pub mod mapping;
pub mod ops;

pub use crate::config::{RedfishConfig, Settings};
pub use crate::core::RedfishCore;
