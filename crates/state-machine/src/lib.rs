//! `steward-state-machine`: Steward's pure transition functions and their tables.
//!
//! No I/O, no clock, no randomness: `now` and new ids are arguments. Every machine has the shape
//! `step(&state, &event, now) -> Result<(State, Vec<Effect>), Rejected>`; a rejected event
//! changes nothing. [`fleet::Fleet`] routes [`fleet::FleetEvent`]s (the event log) to the machines.

pub mod effect;
pub mod error;
pub mod fleet;
pub mod service;
pub mod status;
pub mod table;

pub use effect::{Effect, Notification, SubmitTask};
pub use error::Rejected;
pub use fleet::{ComponentEntry, Fleet, FleetConfig, FleetEvent};
pub use service::ServiceTable;
pub use status::StatusMapper;
pub use table::{Transition, TransitionTable};
