//! `BatchBuilder`: the one write path. It turns accepted events, the rows their effects name,
//! outbox rows and webhook acknowledgements into one [`WriteBatch`]; the reducer's group commit
//! and the store's own tests both go through it.
//!
//! Each row is written once per batch with its latest value (read from the fleet when the batch
//! is finished), in the order its first effect named it. That order matters for components: the
//! store numbers new components in write order to rebuild each rack's inventory order, and
//! `Fleet::apply` emits `PersistComponent` effects in that order.

use super::codec::to_json;
use super::error::StoreError;
use super::{ComponentRow, OutboxAck, OutboxRow, WriteBatch};
use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use steward_proto::{
    ComponentId, EventRecord, HistoryEntry, RackId, RunId, TargetId, TaskId, Timestamp,
};
use steward_state_machine::{Fleet, FleetEvent, Write};

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
    outbox_acks: Vec<OutboxAck>,
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
            && self.outbox_acks.is_empty()
    }

    /// Number of event-log rows so far.
    pub fn event_count(&self) -> usize {
        self.events.len()
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

    /// Notes the rows an accepted event's `writes` (from `Fleet::apply` at `at`) name, and the
    /// history entries they append.
    pub fn writes(&mut self, writes: &[Write], at: Timestamp) {
        for write in writes {
            match write {
                Write::Rack(id) => self.racks.push(id),
                Write::Component(id) => {
                    self.components.push(id);
                    self.component_updated_at.insert(id.clone(), at);
                }
                Write::Run(id) => self.runs.push(id),
                Write::Target(id) => self.targets.push(id),
                Write::Task(id) => self.tasks.push(id),
                Write::History(entry) => self.history.push(entry.clone()),
            }
        }
    }

    /// Records a webhook acknowledgement (delivered, or failed with a next attempt) in the batch's
    /// transaction.
    pub fn outbox_ack(&mut self, ack: OutboxAck) {
        self.outbox_acks.push(ack);
    }

    /// How many rows of `webhook` this batch parks so far (a requeue in the same batch, written
    /// after them, requeues them too).
    pub fn parked_in_batch(&self, webhook: &str) -> u64 {
        let parked = self.outbox_acks.iter().filter(
            |ack| matches!(ack, OutboxAck::Parked { webhook: name, .. } if name == webhook),
        );
        u64::try_from(parked.count()).unwrap_or(u64::MAX)
    }

    /// Adds an outbox row (a webhook delivery recorded with the event that caused it).
    pub fn outbox(&mut self, row: OutboxRow) {
        self.outbox.push(row);
    }

    /// The batch, with every noted row read from `fleet` (the state after the batch's events).
    /// A row whose record no longer exists in the fleet is left out; a target without a
    /// position in its run is an error (the fleet's indexes are broken), never a silent 0.
    pub fn finish(self, fleet: &Fleet) -> Result<WriteBatch, StoreError> {
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
        let mut targets = Vec::with_capacity(self.targets.order.len());
        for id in &self.targets.order {
            let Some(target) = fleet.targets.get(id) else { continue };
            let position =
                fleet.target_positions.get(id).copied().ok_or_else(|| StoreError::Encode {
                    what: format!("target {id}"),
                    message: "the fleet has no position for it".into(),
                })?;
            targets.push((target.clone(), position));
        }
        Ok(WriteBatch {
            events: self.events,
            racks: self.racks.order.iter().filter_map(|id| fleet.racks.get(id).cloned()).collect(),
            components,
            runs: self.runs.order.iter().filter_map(|id| fleet.runs.get(id).cloned()).collect(),
            targets,
            tasks: self.tasks.order.iter().filter_map(|id| fleet.tasks.get(id).cloned()).collect(),
            history: self.history,
            outbox: self.outbox,
            outbox_acks: self.outbox_acks,
        })
    }
}
