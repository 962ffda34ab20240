//! `BatchBuilder`: turns accepted events and the persist effects they produced into one
//! [`WriteBatch`], the way the reducer's group commit needs it.
//!
//! Each row is written once per batch with its latest value (read from the fleet when the batch
//! is finished), in the order its first effect named it. That order matters for components: the
//! store numbers new components in write order to rebuild each rack's inventory order, and
//! `Fleet::apply` emits `PersistComponent` effects in that order.

use super::codec::to_json;
use super::error::StoreError;
use super::{ComponentRow, OutboxRow, WriteBatch};
use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use steward_proto::{
    ComponentId, EventRecord, HistoryEntry, RackId, RunId, TargetId, TaskId, Timestamp,
};
use steward_state_machine::{Effect, Fleet, FleetEvent};

/// Ids in first-mention order, without repeats.
#[derive(Debug)]
struct Ordered<T> {
    order: Vec<T>,
    seen: HashSet<T>,
}

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self { order: Vec::new(), seen: HashSet::new() }
    }
}

impl<T: Clone + Eq + Hash> Ordered<T> {
    fn push(&mut self, id: &T) {
        if self.seen.insert(id.clone()) {
            self.order.push(id.clone());
        }
    }
}

/// Collects one group commit: event rows plus the state rows their effects name.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    events: Vec<EventRecord>,
    racks: Ordered<RackId>,
    components: Ordered<ComponentId>,
    component_updated_at: BTreeMap<ComponentId, Timestamp>,
    runs: Ordered<RunId>,
    targets: Ordered<TargetId>,
    tasks: Ordered<TaskId>,
    history: Vec<HistoryEntry>,
    outbox: Vec<OutboxRow>,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.racks.order.is_empty()
            && self.components.order.is_empty()
            && self.runs.order.is_empty()
            && self.targets.order.is_empty()
            && self.tasks.order.is_empty()
            && self.history.is_empty()
            && self.outbox.is_empty()
    }

    /// Adds the event-log row for an accepted event: `data` is the event's JSON, `kind` its tag.
    pub fn event(&mut self, seq: u64, at: Timestamp, event: &FleetEvent) -> Result<(), StoreError> {
        let data = serde_json::to_value(event).map_err(|err| StoreError::Encode {
            what: format!("event seq {seq}"),
            message: err.to_string(),
        })?;
        let kind = match data.get("kind") {
            Some(serde_json::Value::String(kind)) => kind.clone(),
            _ => {
                return Err(StoreError::Encode {
                    what: format!("event seq {seq}"),
                    message: format!("no kind tag in {}", to_json(&data, String::new)?),
                });
            }
        };
        self.events.push(EventRecord { seq, at, kind, data });
        Ok(())
    }

    /// Notes the rows that `effects` (returned by `Fleet::apply` at `at`) ask to persist, and
    /// the history entries they append. Effects that run after commit are ignored here.
    pub fn effects(&mut self, effects: &[Effect], at: Timestamp) {
        for effect in effects {
            match effect {
                Effect::PersistRack(id) => self.racks.push(id),
                Effect::PersistComponent(id)
                | Effect::PersistComponentStatus(id)
                | Effect::PersistServiceState(id) => {
                    self.components.push(id);
                    self.component_updated_at.insert(id.clone(), at);
                }
                Effect::PersistRun(id) => self.runs.push(id),
                Effect::PersistTarget(id) => self.targets.push(id),
                Effect::PersistTask(id) => self.tasks.push(id),
                Effect::AppendHistory(entry) => self.history.push(entry.clone()),
                Effect::SubmitTask(_) | Effect::CancelTask { .. } | Effect::Notify(_) => {}
            }
        }
    }

    /// Adds an outbox row (a webhook delivery recorded with the event that caused it).
    pub fn outbox(&mut self, row: OutboxRow) {
        self.outbox.push(row);
    }

    /// The batch, with every noted row read from `fleet` (the state after the batch's events).
    /// A row whose record no longer exists in the fleet is left out.
    pub fn finish(self, fleet: &Fleet) -> WriteBatch {
        let components = self
            .components
            .order
            .iter()
            .filter_map(|id| {
                let entry = fleet.components.get(id)?;
                let updated_at = self.component_updated_at.get(id).copied()?;
                Some(ComponentRow {
                    component: entry.component.clone(),
                    raw_state: entry.raw_state.clone(),
                    status: entry.status.clone(),
                    service_state: entry.service_state.clone(),
                    updated_at,
                })
            })
            .collect();
        WriteBatch {
            events: self.events,
            racks: self.racks.order.iter().filter_map(|id| fleet.racks.get(id).cloned()).collect(),
            components,
            runs: self.runs.order.iter().filter_map(|id| fleet.runs.get(id).cloned()).collect(),
            targets: self
                .targets
                .order
                .iter()
                .filter_map(|id| {
                    let target = fleet.targets.get(id)?;
                    let position = fleet.target_positions.get(id).copied()?;
                    Some((target.clone(), position))
                })
                .collect(),
            tasks: self.tasks.order.iter().filter_map(|id| fleet.tasks.get(id).cloned()).collect(),
            history: self.history,
            outbox: self.outbox,
        }
    }
}
