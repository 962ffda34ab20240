//! The service-state machine: a site-configurable transition table with history and notifications.
//!
//! Owns the default table of DESIGN §3.3, loading and validating a site table (TOML or JSON
//! [`ServiceTableDoc`]), and the transition step: an accepted transition yields the new state, a
//! history entry and a notification; an illegal one is rejected naming from, to and the allowed
//! targets, and changes nothing.

use crate::effect::{Effect, Notification};
use crate::error::Rejected;
use crate::table::{Transition, TransitionTable};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use steward_proto::{ComponentId, HistoryEntry, ServiceState, ServiceTableDoc, Timestamp};

/// Machine name used in rendered tables.
pub const MACHINE: &str = "service";

/// Why a site service-state table was refused at load. Each variant names the culprit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceTableError {
    /// The table lists no states at all.
    #[error("service table: `states` is empty; list at least the initial state")]
    EmptyStates,
    /// A state name is empty or not snake_case (`[a-z0-9_]+`).
    #[error("service table: state name {name:?} is invalid; use lowercase letters, digits and '_'")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// A state is listed twice.
    #[error("service table: state {name:?} is listed twice in `states`")]
    DuplicateState {
        /// The repeated name.
        name: String,
    },
    /// The initial state is not among the states.
    #[error("service table: initial state {initial:?} is not listed in `states`")]
    MissingInitial {
        /// The initial state named by the document.
        initial: String,
    },
    /// A transition names a state that is not among the states.
    #[error("service table: transition {from_or_to} state {name:?} is not listed in `states`")]
    UnknownState {
        /// Which side of the transition: `from` or `to`.
        from_or_to: &'static str,
        /// The unknown name.
        name: String,
    },
    /// A transition is listed twice.
    #[error("service table: transition {from:?} -> {to:?} is listed twice")]
    DuplicateTransition {
        /// From state.
        from: String,
        /// To state.
        to: String,
    },
    /// A state cannot be reached from the initial state.
    #[error("service table: state {state:?} is unreachable from the initial state {initial:?}")]
    Unreachable {
        /// The unreachable state.
        state: String,
        /// The initial state.
        initial: String,
    },
    /// The document did not parse.
    #[error("service table: cannot parse {format} document: {message}")]
    Parse {
        /// `toml` or `json`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
}

/// A validated service-state table.
///
/// In config it is written as a [`ServiceTableDoc`] (serde goes through the document, so a
/// deserialized table is always validated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ServiceTableDoc", into = "ServiceTableDoc")]
pub struct ServiceTable {
    initial: ServiceState,
    states: Vec<ServiceState>,
    transitions: BTreeMap<ServiceState, Vec<ServiceState>>,
}

/// The default states of DESIGN §3.3, in order.
pub const DEFAULT_STATES: [&str; 5] =
    ["in_service", "maintenance", "firmware_update", "rma", "decommissioned"];

/// The default transitions of DESIGN §3.3: (from, [to]).
pub const DEFAULT_TRANSITIONS: [(&str, &[&str]); 4] = [
    ("in_service", &["maintenance"]),
    ("maintenance", &["in_service", "firmware_update", "rma", "decommissioned"]),
    ("firmware_update", &["maintenance", "in_service"]),
    ("rma", &["maintenance", "decommissioned"]),
];

/// The default table as a document (what a site would write to get the defaults).
pub fn default_doc() -> ServiceTableDoc {
    ServiceTableDoc {
        initial: "in_service".to_string(),
        states: DEFAULT_STATES.iter().map(|s| (*s).to_string()).collect(),
        transitions: DEFAULT_TRANSITIONS
            .iter()
            .map(|(from, to)| ((*from).to_string(), to.iter().map(|s| (*s).to_string()).collect()))
            .collect(),
    }
}

impl Default for ServiceTable {
    fn default() -> Self {
        Self {
            initial: ServiceState::new(DEFAULT_STATES[0]),
            states: DEFAULT_STATES.iter().map(ServiceState::new).collect(),
            transitions: DEFAULT_TRANSITIONS
                .iter()
                .map(|(from, to)| {
                    (ServiceState::new(from), to.iter().map(ServiceState::new).collect())
                })
                .collect(),
        }
    }
}

impl TryFrom<ServiceTableDoc> for ServiceTable {
    type Error = ServiceTableError;

    fn try_from(doc: ServiceTableDoc) -> Result<Self, Self::Error> {
        Self::from_doc(&doc)
    }
}

impl From<ServiceTable> for ServiceTableDoc {
    fn from(table: ServiceTable) -> Self {
        table.to_doc()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl ServiceTable {
    /// Validates a site document: states non-empty, valid and unique; the initial state listed;
    /// every transition between listed states, listed once; every state reachable from initial.
    pub fn from_doc(doc: &ServiceTableDoc) -> Result<Self, ServiceTableError> {
        if doc.states.is_empty() {
            return Err(ServiceTableError::EmptyStates);
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for name in &doc.states {
            if !valid_name(name) {
                return Err(ServiceTableError::InvalidName { name: name.clone() });
            }
            if !seen.insert(name) {
                return Err(ServiceTableError::DuplicateState { name: name.clone() });
            }
        }
        if !seen.contains(doc.initial.as_str()) {
            return Err(ServiceTableError::MissingInitial { initial: doc.initial.clone() });
        }
        let mut transitions: BTreeMap<ServiceState, Vec<ServiceState>> = BTreeMap::new();
        for (from, targets) in &doc.transitions {
            if !seen.contains(from.as_str()) {
                return Err(ServiceTableError::UnknownState {
                    from_or_to: "from",
                    name: from.clone(),
                });
            }
            let mut list: Vec<ServiceState> = Vec::with_capacity(targets.len());
            for to in targets {
                if !seen.contains(to.as_str()) {
                    return Err(ServiceTableError::UnknownState {
                        from_or_to: "to",
                        name: to.clone(),
                    });
                }
                if list.iter().any(|s| s.as_str() == to) {
                    return Err(ServiceTableError::DuplicateTransition {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
                list.push(ServiceState::new(to));
            }
            if !list.is_empty() {
                transitions.insert(ServiceState::new(from), list);
            }
        }
        let table = Self {
            initial: ServiceState::new(&doc.initial),
            states: doc.states.iter().map(ServiceState::new).collect(),
            transitions,
        };
        let reachable = table.reachable();
        if let Some(state) = table.states.iter().find(|s| !reachable.contains(*s)) {
            return Err(ServiceTableError::Unreachable {
                state: state.to_string(),
                initial: doc.initial.clone(),
            });
        }
        Ok(table)
    }

    /// Parses and validates a TOML document (`initial`, `states`, `[transitions]`).
    pub fn from_toml_str(s: &str) -> Result<Self, ServiceTableError> {
        let doc: ServiceTableDoc = toml::from_str(s)
            .map_err(|e| ServiceTableError::Parse { format: "toml", message: e.to_string() })?;
        Self::from_doc(&doc)
    }

    /// Parses and validates a JSON document.
    pub fn from_json_str(s: &str) -> Result<Self, ServiceTableError> {
        let doc: ServiceTableDoc = serde_json::from_str(s)
            .map_err(|e| ServiceTableError::Parse { format: "json", message: e.to_string() })?;
        Self::from_doc(&doc)
    }

    /// The table as a document (round-trips through [`ServiceTable::from_doc`]).
    pub fn to_doc(&self) -> ServiceTableDoc {
        ServiceTableDoc {
            initial: self.initial.to_string(),
            states: self.states.iter().map(ToString::to_string).collect(),
            transitions: self
                .transitions
                .iter()
                .map(|(from, to)| (from.to_string(), to.iter().map(ToString::to_string).collect()))
                .collect(),
        }
    }

    /// States reachable from the initial state (the initial state included).
    fn reachable(&self) -> BTreeSet<ServiceState> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.initial.clone()];
        while let Some(state) = stack.pop() {
            if !seen.insert(state.clone()) {
                continue;
            }
            for next in self.allowed_from(&state) {
                if !seen.contains(next) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    }

    /// The state a new component starts in.
    pub fn initial(&self) -> &ServiceState {
        &self.initial
    }

    /// Every state, in table order.
    pub fn states(&self) -> &[ServiceState] {
        &self.states
    }

    /// Whether `s` is a state of the table.
    pub fn contains(&self, s: &ServiceState) -> bool {
        self.states.contains(s)
    }

    /// States reachable in one transition from `from` (empty if none or `from` is unknown).
    pub fn allowed_from(&self, from: &ServiceState) -> &[ServiceState] {
        self.transitions.get(from).map_or(&[], Vec::as_slice)
    }

    /// Whether `from -> to` is a transition of the table.
    pub fn allows(&self, from: &ServiceState, to: &ServiceState) -> bool {
        self.allowed_from(from).contains(to)
    }

    /// The table as data: machine `service`, events `to_<state>`, terminal states are those
    /// with no outgoing transition.
    pub fn to_table(&self) -> TransitionTable {
        let names = |states: &[ServiceState]| -> Vec<String> {
            states.iter().map(ToString::to_string).collect()
        };
        let terminal: Vec<ServiceState> =
            self.states.iter().filter(|s| self.allowed_from(s).is_empty()).cloned().collect();
        let transitions = self
            .states
            .iter()
            .flat_map(|from| {
                self.allowed_from(from).iter().map(move |to| Transition {
                    from: from.to_string(),
                    event: format!("to_{to}"),
                    to: to.to_string(),
                })
            })
            .collect();
        TransitionTable {
            machine: MACHINE.to_string(),
            initial: self.initial.to_string(),
            states: names(&self.states),
            terminal: names(&terminal),
            events: self.states.iter().map(|s| format!("to_{s}")).collect(),
            transitions,
        }
    }

    /// One transition of component `id` from `from` to `to`. On success: the new state and
    /// `[PersistServiceState(id), AppendHistory(entry), Notify(ServiceStateChanged(entry))]`.
    /// An illegal transition (unknown `to`, not listed from `from`, or `to == from` unless
    /// listed) is rejected naming from, to and the allowed targets; nothing changes.
    pub fn step(
        &self,
        id: &ComponentId,
        from: &ServiceState,
        to: &ServiceState,
        initiator: &str,
        note: Option<&str>,
        now: Timestamp,
    ) -> Result<(ServiceState, Vec<Effect>), Rejected> {
        let allowed = self.allowed_from(from);
        if !allowed.contains(to) {
            return Err(Rejected::IllegalServiceTransition {
                from: from.clone(),
                to: to.clone(),
                allowed: allowed.to_vec(),
            });
        }
        let entry = HistoryEntry {
            component_id: id.clone(),
            from: from.clone(),
            to: to.clone(),
            at: now,
            initiator: initiator.to_string(),
            note: note.map(str::to_string),
        };
        let effects = vec![
            Effect::PersistServiceState(id.clone()),
            Effect::AppendHistory(entry.clone()),
            Effect::Notify(Notification::ServiceStateChanged(entry)),
        ];
        Ok((to.clone(), effects))
    }
}
