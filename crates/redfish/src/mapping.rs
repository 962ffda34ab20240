//! Redfish state to Steward phase: a data table of rules over (`PowerState`, `Status.State`,
//! `Status.Health`), first match wins, config rules before the defaults; no match is `unknown`.
//!
//! The engine derives a component's status from a raw controller string through its per-kind
//! word tables, so the adapter writes the phase as the word those default tables already know
//! (compute `Ready/...`, JSON kinds `{"state":"ready",...}`) followed by the Redfish facts, which
//! become the status reason. `unknown` is written so that every kind's table reads it as unknown
//! (compute: nothing before the `/`; JSON kinds: an unrecognized tag).

use serde::{Deserialize, Serialize};
use steward_proto::{ComponentKind, Phase};

/// One row of the table; a missing field matches anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRule {
    /// `PowerState` (On, Off, PoweringOn, PoweringOff, Paused).
    pub power_state: Option<String>,
    /// `Status.State` (Enabled, Absent, Updating, ...).
    pub state: Option<String>,
    /// `Status.Health` (OK, Warning, Critical).
    pub health: Option<String>,
    /// The phase.
    pub phase: Phase,
}

impl StateRule {
    /// A rule that never matches anything (all fields empty strings) is refused.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [&self.power_state, &self.state, &self.health];
        if fields.iter().any(|f| f.as_deref().is_some_and(|v| v.trim().is_empty())) {
            return Err("a field is an empty string; omit it to match anything".into());
        }
        Ok(())
    }

    fn matches(&self, facts: &Facts) -> bool {
        let field = |rule: &Option<String>, fact: &Option<String>| match rule {
            None => true,
            Some(want) => fact.as_deref() == Some(want.as_str()),
        };
        field(&self.power_state, &facts.power_state)
            && field(&self.state, &facts.state)
            && field(&self.health, &facts.health)
    }
}

/// What a system reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `PowerState`.
    pub power_state: Option<String>,
    /// `Status.State`.
    pub state: Option<String>,
    /// `Status.Health`.
    pub health: Option<String>,
}

impl Facts {
    fn describe(&self) -> String {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        format!(
            "redfish PowerState={} State={} Health={}",
            show(&self.power_state),
            show(&self.state),
            show(&self.health)
        )
    }
}

fn rule(power: Option<&str>, state: Option<&str>, health: Option<&str>, phase: Phase) -> StateRule {
    StateRule {
        power_state: power.map(str::to_string),
        state: state.map(str::to_string),
        health: health.map(str::to_string),
        phase,
    }
}

/// The default rules, in order (README "Real BMCs" lists them).
pub fn default_rules() -> Vec<StateRule> {
    use Phase::{Error, Initializing, Ready, Unknown};
    let mut rules = vec![
        rule(None, Some("Absent"), None, Unknown),
        rule(Some("Paused"), None, None, Unknown),
        rule(None, None, Some("Critical"), Error),
    ];
    for state in ["Updating", "Starting", "InTest", "Deferring", "Quiesced", "Disabled"] {
        rules.push(rule(None, Some(state), None, Initializing));
    }
    for state in ["StandbyOffline", "UnavailableOffline"] {
        rules.push(rule(None, Some(state), None, Initializing));
    }
    for power in ["PoweringOn", "PoweringOff"] {
        rules.push(rule(Some(power), None, None, Initializing));
    }
    for power in ["On", "Off"] {
        rules.push(rule(Some(power), Some("Enabled"), Some("OK"), Ready));
        rules.push(rule(Some(power), Some("Enabled"), Some("Warning"), Ready));
    }
    rules
}

/// The table: config rules, then the defaults.
#[derive(Clone, Debug)]
pub struct StateTable {
    rules: Vec<StateRule>,
}

impl StateTable {
    /// `overrides` first, then [`default_rules`].
    pub fn new(overrides: &[StateRule]) -> StateTable {
        let mut rules = overrides.to_vec();
        rules.extend(default_rules());
        StateTable { rules }
    }

    /// The phase of `facts` (no matching rule: unknown).
    pub fn phase(&self, facts: &Facts) -> Phase {
        self.rules.iter().find(|r| r.matches(facts)).map_or(Phase::Unknown, |r| r.phase)
    }

    /// The controller string for a reachable system.
    pub fn controller_state(&self, kind: ComponentKind, facts: &Facts) -> String {
        encode(kind, self.phase(facts), &facts.describe())
    }
}

/// The controller string of a system Steward could not read (unreachable, 401, 404): unknown.
pub fn unknown_state(kind: ComponentKind, reason: &str) -> String {
    encode(kind, Phase::Unknown, reason)
}

/// The word the engine's default table of `kind` maps to `phase` (None: written as unknown).
fn word(kind: ComponentKind, phase: Phase) -> Option<&'static str> {
    match (kind, phase) {
        (_, Phase::Unknown) => None,
        (ComponentKind::Compute, Phase::Ready) => Some("Ready"),
        (ComponentKind::Compute, Phase::Initializing) => Some("HostInitializing"),
        (ComponentKind::Compute, Phase::InUse) => Some("Assigned"),
        (ComponentKind::Compute, Phase::Error) => Some("Failed"),
        (ComponentKind::Compute, Phase::Deleting) => Some("ForceDeletion"),
        (ComponentKind::PowerShelf, Phase::InUse) => Some("maintenance"),
        (_, Phase::InUse) => Some("reprovisioning"),
        (_, Phase::Ready) => Some("ready"),
        (_, Phase::Initializing) => Some("initializing"),
        (_, Phase::Error) => Some("error"),
        (_, Phase::Deleting) => Some("deleting"),
    }
}

fn encode(kind: ComponentKind, phase: Phase, detail: &str) -> String {
    let detail = detail.replace('/', " ");
    match kind {
        ComponentKind::Compute => format!("{}/{detail}", word(kind, phase).unwrap_or("")),
        _ => serde_json::json!({
            "state": word(kind, phase).unwrap_or("redfish-unknown"),
            "redfish": detail,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(power: &str, state: &str, health: &str) -> Facts {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Facts { power_state: some(power), state: some(state), health: some(health) }
    }

    #[test]
    fn default_table_maps_the_issue_examples() {
        let table = StateTable::new(&[]);
        assert_eq!(table.phase(&facts("On", "Enabled", "OK")), Phase::Ready);
        assert_eq!(table.phase(&facts("Off", "Enabled", "OK")), Phase::Ready);
        assert_eq!(table.phase(&facts("On", "Updating", "OK")), Phase::Initializing);
        assert_eq!(table.phase(&facts("On", "Enabled", "Critical")), Phase::Error);
        assert_eq!(table.phase(&facts("On", "Absent", "OK")), Phase::Unknown);
        assert_eq!(table.phase(&facts("Weird", "", "")), Phase::Unknown);
    }

    #[test]
    fn overrides_come_first() {
        let table = StateTable::new(&[rule(None, None, Some("Warning"), Phase::Error)]);
        assert_eq!(table.phase(&facts("On", "Enabled", "Warning")), Phase::Error);
    }

    #[test]
    fn engine_tables_read_the_encoding() {
        let mapper = steward_state_machine::StatusMapper::default();
        for kind in ComponentKind::ALL {
            for phase in Phase::ALL {
                let raw = encode(kind, phase, "redfish PowerState=On");
                assert_eq!(mapper.derive(kind, &raw).phase, phase, "{kind} {phase} {raw}");
            }
        }
    }
}
