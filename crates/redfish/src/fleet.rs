//! Discovery and observation: every endpoint's `ComputerSystem`s become components of its rack;
//! one sync reads every system (bounded by the client's semaphore), with per-endpoint backoff.
//!
//! An endpoint that cannot be read (unreachable, 401, in backoff) produces observations that
//! map to `unknown` for every system it had, with the reason, so its components never keep their
//! last good status; a 401 is logged once per episode, not every poll.

use crate::client::{Bmc, BmcError, Collection, ComputerSystem, ServiceRoot};
use crate::config::Endpoint;
use crate::mapping::{Facts, StateTable, unknown_state};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use steward_proto::{ComponentId, ComponentKind, ComponentSpec, Observation, RackId};

/// Longest backoff between attempts on an unreachable endpoint.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A discovered system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemRef {
    /// Index of its endpoint.
    pub endpoint: usize,
    /// The system's resource path.
    pub path: String,
    /// Redfish `Id`.
    pub system_id: String,
    /// Rack.
    pub rack: RackId,
    /// Kind.
    pub kind: ComponentKind,
    /// Inventory facts.
    pub spec: ComponentSpec,
}

/// An endpoint with its client and health.
#[derive(Debug)]
pub struct EndpointState {
    /// Config.
    pub config: Endpoint,
    /// Client.
    pub bmc: Bmc,
    health: Mutex<Health>,
    systems_path: Mutex<Option<String>>,
    update_service: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    auth_logged: bool,
}

/// The stable component id of system `system_id` in `rack`: `{rack}-{id}` with every character
/// outside `[A-Za-z0-9._-]` replaced by `-`.
pub fn component_id(rack: &RackId, system_id: &str) -> ComponentId {
    let clean: String = system_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    ComponentId::new(format!("{rack}-{clean}"))
}

impl EndpointState {
    /// A fresh endpoint.
    pub fn new(config: Endpoint, bmc: Bmc) -> EndpointState {
        EndpointState {
            config,
            bmc,
            health: Mutex::default(),
            systems_path: Mutex::default(),
            update_service: Mutex::default(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the endpoint is skipped now (in backoff), if it is.
    fn backoff_reason(&self, now: Instant) -> Option<String> {
        let health = self.health();
        match health.retry_at {
            Some(at) if at > now => Some(format!(
                "unreachable: {} (retry in {} s)",
                health.last_error.clone().unwrap_or_default(),
                (at - now).as_secs() + 1
            )),
            _ => None,
        }
    }

    fn record_success(&self) {
        let mut health = self.health();
        if health.failures > 0 || health.auth_logged {
            tracing::info!(endpoint = %self.config.url, "BMC endpoint reachable again");
        }
        *health = Health::default();
    }

    /// Records a failure; returns the reason the endpoint's components carry.
    fn record_failure(&self, error: &BmcError) -> String {
        let mut health = self.health();
        if let BmcError::Auth(code) = error {
            if !health.auth_logged {
                tracing::warn!(endpoint = %self.config.url, code, "BMC authentication failed");
                health.auth_logged = true;
            }
            return "authentication failed".to_string();
        }
        if error.is_unreachable() {
            health.failures += 1;
            let exponent = health.failures.saturating_sub(1).min(5);
            let delay = Duration::from_secs(1 << exponent).min(MAX_BACKOFF);
            health.retry_at = Some(Instant::now() + delay);
            tracing::warn!(endpoint = %self.config.url, %error, failures = health.failures,
                backoff_s = delay.as_secs(), "BMC endpoint unreachable");
        }
        health.last_error = Some(error.to_string());
        format!("unreachable: {error}")
    }

    /// The service root's links, read once.
    async fn root(&self) -> Result<(String, Option<String>), BmcError> {
        let cached = self.systems_path.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(path) = cached {
            let update = self.update_service.lock().unwrap_or_else(|p| p.into_inner()).clone();
            return Ok((path, update));
        }
        let root: ServiceRoot = self.bmc.get("/redfish/v1").await?;
        let systems = root.systems.map_or("/redfish/v1/Systems".to_string(), |l| l.odata_id);
        let update = root.update_service.map(|l| l.odata_id);
        *self.systems_path.lock().unwrap_or_else(|p| p.into_inner()) = Some(systems.clone());
        *self.update_service.lock().unwrap_or_else(|p| p.into_inner()) = update.clone();
        Ok((systems, update))
    }

    /// The update service path (reads the root when not known yet).
    pub async fn update_service(&self) -> Result<String, BmcError> {
        let (_, update) = self.root().await?;
        update.ok_or_else(|| BmcError::Unsupported("the service root has no UpdateService".into()))
    }

    /// Lists and reads every system of the endpoint.
    async fn read_systems(&self) -> Result<Vec<Result<ComputerSystem, BmcError>>, BmcError> {
        let (systems_path, _) = self.root().await?;
        let collection: Collection = self.bmc.get(&systems_path).await?;
        let reads = futures_util::stream::iter(collection.members)
            .map(|member| async move { self.bmc.get::<ComputerSystem>(&member.odata_id).await })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        // A failed read of one system is an endpoint failure when it is a transport failure.
        if let Some(Err(error)) = reads
            .iter()
            .find(|r| matches!(r, Err(e) if e.is_unreachable() || matches!(e, BmcError::Auth(_))))
        {
            return Err(error.clone());
        }
        Ok(reads)
    }
}

/// The result of syncing one endpoint.
#[derive(Debug, Default)]
pub struct EndpointSync {
    /// Observations to report.
    pub observations: Vec<Observation>,
    /// Systems found (all of them, for the inventory).
    pub found: Vec<SystemRef>,
}

/// Syncs endpoint `index`: observations for every system it has (or had, when it fails).
pub async fn sync_endpoint(
    index: usize,
    endpoint: &EndpointState,
    known: &BTreeMap<ComponentId, SystemRef>,
    table: &StateTable,
    now: chrono::DateTime<chrono::Utc>,
) -> EndpointSync {
    let kind = endpoint.config.kind;
    let unknown_all = |reason: &str| EndpointSync {
        observations: known
            .iter()
            .filter(|(_, s)| s.endpoint == index)
            .map(|(id, _)| observation(id, unknown_state(kind, reason), None, None, now))
            .collect(),
        found: Vec::new(),
    };
    if let Some(reason) = endpoint.backoff_reason(Instant::now()) {
        return unknown_all(&reason);
    }
    let reads = match endpoint.read_systems().await {
        Ok(reads) => reads,
        Err(error) => return unknown_all(&endpoint.record_failure(&error)),
    };
    endpoint.record_success();
    let mut sync = EndpointSync::default();
    for read in reads {
        match read {
            Ok(system) => {
                let system_ref = system_ref(index, endpoint, &system);
                let facts = Facts {
                    power_state: system.power_state.clone(),
                    state: system.status.state.clone(),
                    health: system.status.health.clone(),
                };
                sync.observations.push(observation(
                    &system_ref.spec.id,
                    table.controller_state(kind, &facts),
                    system.power_state.clone(),
                    system.bios_version.clone(),
                    now,
                ));
                sync.found.push(system_ref);
            }
            Err(error) => {
                tracing::debug!(endpoint = %endpoint.config.url, %error, "system read failed")
            }
        }
    }
    // Known systems that did not answer (vanished, 404, unreadable) go unknown.
    let seen: std::collections::BTreeSet<_> =
        sync.found.iter().map(|s| s.spec.id.clone()).collect();
    for (id, _) in known.iter().filter(|(id, s)| s.endpoint == index && !seen.contains(*id)) {
        let state = unknown_state(kind, "system vanished or unreadable (not in the BMC's Systems)");
        sync.observations.push(observation(id, state, None, None, now));
    }
    sync
}

fn system_ref(index: usize, endpoint: &EndpointState, system: &ComputerSystem) -> SystemRef {
    let rack = endpoint.config.rack.clone();
    let id = component_id(&rack, &system.id);
    let spec = ComponentSpec {
        id,
        kind: endpoint.config.kind,
        name: system.name.clone().unwrap_or_else(|| system.id.clone()),
        manufacturer: system.manufacturer.clone(),
        model: system.model.clone(),
        serial: system.serial_number.clone(),
        position: Default::default(),
        firmware_version: system.bios_version.clone(),
        power_state: system.power_state.clone(),
        labels: BTreeMap::from([
            ("redfish.endpoint".to_string(), endpoint.config.url.clone()),
            ("redfish.system".to_string(), system.id.clone()),
        ]),
    };
    SystemRef {
        endpoint: index,
        path: format!("/redfish/v1/Systems/{}", system.id),
        system_id: system.id.clone(),
        rack,
        kind: endpoint.config.kind,
        spec,
    }
}

fn observation(
    id: &ComponentId,
    controller_state: String,
    power_state: Option<String>,
    firmware_version: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Observation {
    Observation {
        component_id: id.clone(),
        controller_state,
        power_state,
        firmware_version,
        observed_at: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids_are_stable_and_clean() {
        let rack = RackId::new("rack-001");
        assert_eq!(component_id(&rack, "abc-1").as_str(), "rack-001-abc-1");
        assert_eq!(component_id(&rack, "a b/c").as_str(), "rack-001-a-b-c");
    }
}
