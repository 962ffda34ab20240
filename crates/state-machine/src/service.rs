//! The service-state machine: a site-configurable transition table with history and notifications.

use steward_proto::ServiceState;

/// A validated service-state table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTable {}

impl ServiceTable {
    /// The state a new component starts in.
    pub fn initial(&self) -> ServiceState {
        ServiceState::new("in_service")
    }
}
