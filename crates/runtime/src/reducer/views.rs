//! Reads: answered after the batch they arrived in has committed, from the committed state,
//! at that batch's `now`.

use super::Reducer;
use super::commands::not_found;
use crate::protocol::{CommandError, ComponentFilter, EventsPage, Query, QueryReply, RackDetail};
use steward_proto::{ComponentId, ComponentView, Run, RunId, Target, TargetStatus, Timestamp};

impl Reducer {
    pub(super) fn query(&self, query: Query, now: Timestamp) -> Result<QueryReply, CommandError> {
        match query {
            Query::Racks => Ok(QueryReply::Racks(self.fleet.racks.values().cloned().collect())),
            Query::Rack(id) => {
                let rack =
                    self.fleet.racks.get(&id).cloned().ok_or_else(|| not_found("rack", &id))?;
                let ids = self.fleet.rack_components.get(&id).cloned().unwrap_or_default();
                let components =
                    ids.iter().filter_map(|c| self.component_view(c, now).ok()).collect();
                Ok(QueryReply::Rack(Box::new(RackDetail { rack, components })))
            }
            Query::Components(filter) => Ok(QueryReply::Components(self.components(&filter, now))),
            Query::Component(id) => {
                self.component_view(&id, now).map(|v| QueryReply::Component(Box::new(v)))
            }
            Query::History(id) => {
                if !self.fleet.components.contains_key(&id) {
                    return Err(not_found("component", &id));
                }
                self.store
                    .history(&id)
                    .map(QueryReply::History)
                    .map_err(|e| CommandError::Store(e.to_string()))
            }
            Query::Runs => {
                let mut runs: Vec<Run> = self.fleet.runs.values().cloned().collect();
                runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
                Ok(QueryReply::Runs(runs))
            }
            Query::Run(id) => self.run_view(&id).map(|r| QueryReply::Run(Box::new(r))),
            Query::Targets(id) => self.targets_view(&id).map(QueryReply::Targets),
            Query::Events { after, limit } => {
                let events = self
                    .store
                    .events_after(after, limit)
                    .map_err(|e| CommandError::Store(e.to_string()))?;
                let next = events.last().map(|e| e.seq).unwrap_or(after);
                Ok(QueryReply::Events(EventsPage { events, next }))
            }
            Query::SubmittedTasks => Ok(QueryReply::SubmittedTasks(
                self.fleet
                    .run_active
                    .values()
                    .flatten()
                    .filter_map(|id| self.fleet.targets.get(id))
                    .filter(|t| t.status == TargetStatus::Submitted)
                    .filter_map(|t| Some((t.task_id.clone()?, t.id.clone())))
                    .collect(),
            )),
            Query::Webhooks => self.webhooks_view(),
            Query::OutboxDue { webhook, limit } => self
                .store
                .outbox_pending(&webhook, limit)
                .map(QueryReply::Outbox)
                .map_err(|e| CommandError::Store(e.to_string())),
        }
    }

    pub(super) fn component_view(
        &self,
        id: &ComponentId,
        now: Timestamp,
    ) -> Result<ComponentView, CommandError> {
        let entry = self.fleet.components.get(id).ok_or_else(|| not_found("component", id))?;
        Ok(ComponentView {
            component: entry.component.clone(),
            status: self.fleet.effective_status(id, now),
            service_state: entry.service_state.clone(),
        })
    }

    fn components(&self, filter: &ComponentFilter, now: Timestamp) -> Vec<ComponentView> {
        let ids: Vec<&ComponentId> = match &filter.rack {
            Some(rack) => {
                self.fleet.rack_components.get(rack).map(|c| c.iter().collect()).unwrap_or_default()
            }
            None => self.fleet.components.keys().collect(),
        };
        ids.into_iter()
            .filter_map(|id| self.component_view(id, now).ok())
            .filter(|view| filter.kind.is_none_or(|k| view.component.kind == k))
            .filter(|view| filter.phase.is_none_or(|p| view.status.phase == p))
            .filter(|view| filter.service_state.as_ref().is_none_or(|s| &view.service_state == s))
            .collect()
    }

    pub(super) fn run_view(&self, id: &RunId) -> Result<Run, CommandError> {
        self.fleet.runs.get(id).cloned().ok_or_else(|| not_found("run", id))
    }

    fn targets_view(&self, id: &RunId) -> Result<Vec<Target>, CommandError> {
        let ids = self.fleet.run_targets.get(id).ok_or_else(|| not_found("run", id))?;
        let run_holds = self.run_holds.get(id).map(Vec::as_slice).unwrap_or_default();
        Ok(ids
            .iter()
            .filter_map(|t| self.fleet.targets.get(t))
            .map(|target| {
                let mut target = target.clone();
                if target.status == TargetStatus::Pending {
                    let key = (
                        target.wave,
                        self.fleet.target_positions.get(&target.id).copied().unwrap_or(0),
                    );
                    let covering = run_holds
                        .iter()
                        .filter(|(from, _)| *from <= key)
                        .max_by_key(|(from, _)| *from);
                    if let Some((_, hold)) = covering {
                        target.hold = Some(hold.clone());
                    }
                } else if !matches!(target.status, TargetStatus::Blocked) {
                    target.hold = None;
                }
                target
            })
            .collect())
    }
}
