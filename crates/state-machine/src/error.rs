//! `Rejected`: why a machine refused an event. A rejected event changes nothing.

use steward_proto::ServiceState;

/// A refused event, naming the machine, the state and what would have been allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The (state, event) pair is not in the machine's transition table.
    #[error("{machine}: event {event} is not allowed in status {from}; allowed events: {}", .allowed.join(", "))]
    IllegalTransition {
        /// Machine name (`run`, `target`, `task`, `component_status`).
        machine: &'static str,
        /// Current status.
        from: &'static str,
        /// The event kind.
        event: &'static str,
        /// Event kinds the table allows from `from` (empty for terminal states).
        allowed: Vec<&'static str>,
    },
    /// A service-state transition the site table does not allow.
    #[error("service state cannot go from {from} to {to}; allowed: {}", join_states(.allowed))]
    IllegalServiceTransition {
        /// Current state.
        from: ServiceState,
        /// Requested state.
        to: ServiceState,
        /// States reachable from `from`.
        allowed: Vec<ServiceState>,
    },
    /// The pair is in the table, but a guard on the event's data refused it (lease not expired,
    /// retry time not reached, wrong expected wave, ...).
    #[error("{machine}: event {event} refused in status {from}: {why}")]
    Guard {
        /// Machine name.
        machine: &'static str,
        /// Current status.
        from: &'static str,
        /// The event kind.
        event: &'static str,
        /// What the guard checked.
        why: String,
    },
    /// The event names something that does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing (`run`, `target`, `component`, ...).
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The event's data is invalid (e.g. an unknown service-state name).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn join_states(states: &[ServiceState]) -> String {
    if states.is_empty() {
        return "none".to_string();
    }
    states.iter().map(ServiceState::as_str).collect::<Vec<_>>().join(", ")
}
