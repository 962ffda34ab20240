//! Run policy: every knob of API.md's policy JSON, its defaults, and validation that reports
//! every problem with its field path.

use crate::error::{FieldError, ValidationErrors};
use crate::hooks::HookRefs;
use crate::ids::ServiceState;
use serde::{Deserialize, Serialize};

/// How targets are split into waves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WaveSpec {
    /// `count` waves of (nearly) equal size.
    Equal {
        /// Number of waves.
        count: u32,
    },
    /// Waves sized by percentages that sum to 100.
    Percentage(Vec<u32>),
    /// Waves of fixed sizes; the remainder becomes a last wave.
    Count(Vec<u32>),
}

impl Default for WaveSpec {
    fn default() -> Self {
        WaveSpec::Equal { count: 1 }
    }
}

/// Order of targets before they are split into waves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ordering {
    /// The order of the selector (rack id order for label and all selectors).
    #[default]
    AsGiven,
    /// A shuffle that is the same for the same seed on any machine.
    Random {
        /// The seed, stored with the run.
        seed: u64,
    },
    /// Spread across rows: one rack per row in turn.
    OnePerRowRoundRobin,
}

/// Which failures a safety gate counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GateScope {
    /// Failures in the wave being dispatched.
    #[default]
    CurrentWave,
    /// Failures over the whole run.
    Run,
}

impl GateScope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            GateScope::CurrentWave => "current_wave",
            GateScope::Run => "run",
        }
    }
}

/// Trips when more than `max` targets failed... precisely: when failures reach `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailureCount {
    /// Failures (failed + terminated, unacknowledged) at which the gate trips.
    pub max: u32,
}

/// Trips when the failure percentage of the scope's targets reaches `percent`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailureRate {
    /// Percentage (0 < percent <= 100) of the scope's targets.
    pub percent: f64,
}

/// A safety gate: exactly one of `failure_count` or `failure_rate`, with a scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SafetyGate {
    /// Count threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_count: Option<FailureCount>,
    /// Rate threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<FailureRate>,
    /// What the gate counts over.
    #[serde(default)]
    pub scope: GateScope,
}

/// What to do with a target whose components are not ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnNotReady {
    /// Hold it until ready (or `max_wait_seconds`, then pause the run).
    #[default]
    Wait,
    /// Skip it.
    Skip,
}

/// A daily UTC window, `HH:MM` to `HH:MM`; may wrap past midnight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Start, `HH:MM` UTC.
    pub start: String,
    /// End, `HH:MM` UTC (exclusive).
    pub end: String,
}

impl MaintenanceWindow {
    /// Start and end as minutes after midnight, if both parse.
    pub fn minutes(&self) -> Option<(u32, u32)> {
        Some((parse_hhmm(&self.start)?, parse_hhmm(&self.end)?))
    }

    /// Whether `minute_of_day` (0..1440) falls inside the window. Unparsable windows never match.
    pub fn contains(&self, minute_of_day: u32) -> bool {
        match self.minutes() {
            Some((start, end)) if start < end => (start..end).contains(&minute_of_day),
            Some((start, end)) if start > end => minute_of_day >= start || minute_of_day < end,
            Some(_) => true,
            None => false,
        }
    }
}

/// Parses `HH:MM` (00:00 to 23:59) into minutes after midnight.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u32 = hours.parse().ok()?;
    let minutes: u32 = minutes.parse().ok()?;
    (hours < 24 && minutes < 60).then_some(hours * 60 + minutes)
}

/// Backoff and timeout for targets blocked by rack conflicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ConflictRetry {
    /// After this long blocked, the run pauses with `conflict_retry_timeout`.
    pub timeout_seconds: u64,
    /// First backoff.
    pub initial_delay_seconds: u64,
    /// Backoff cap.
    pub max_delay_seconds: u64,
}

impl Default for ConflictRetry {
    fn default() -> Self {
        Self { timeout_seconds: 3600, initial_delay_seconds: 30, max_delay_seconds: 300 }
    }
}

/// The policy a run dispatches under. Every field is optional in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RunPolicy {
    /// Racks in flight at once for this run.
    pub max_parallel_racks: u32,
    /// Wave split.
    pub waves: WaveSpec,
    /// Target order.
    pub ordering: Ordering,
    /// Open the next wave by itself after the soak (otherwise pause at a wave gate).
    pub auto_advance: bool,
    /// Seconds between a wave finishing and the next opening.
    pub soak_seconds: u64,
    /// Safety gates, OR-combined.
    pub safety_gates: Vec<SafetyGate>,
    /// Hold or skip targets that are not ready.
    pub on_not_ready: OnNotReady,
    /// Longest readiness hold before the run pauses (`None`: wait forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wait_seconds: Option<u64>,
    /// Service states a component may be in (`None`: all but `rma` and `decommissioned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_service_states: Option<Vec<ServiceState>>,
    /// Daily UTC windows in which dispatch may start (empty: always).
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Attempts per target (first try included).
    pub max_attempts: u32,
    /// Wait before a failed target is retried.
    pub retry_backoff_seconds: u64,
    /// Claim lease length.
    pub claim_lease_seconds: u64,
    /// Conflict backoff and timeout.
    pub conflict_retry: ConflictRetry,
    /// Hooks (names from the server's config) before and after each rack's task.
    #[serde(skip_serializing_if = "HookRefs::is_empty")]
    pub hooks: HookRefs,
    /// `firmware_update`: skip racks whose selected components already report the version.
    pub skip_if_current: bool,
}

impl Default for RunPolicy {
    fn default() -> Self {
        Self {
            max_parallel_racks: 1,
            waves: WaveSpec::default(),
            ordering: Ordering::default(),
            auto_advance: false,
            soak_seconds: 0,
            safety_gates: Vec::new(),
            on_not_ready: OnNotReady::default(),
            max_wait_seconds: None,
            allowed_service_states: None,
            maintenance_windows: Vec::new(),
            max_attempts: 1,
            retry_backoff_seconds: 60,
            claim_lease_seconds: 30,
            conflict_retry: ConflictRetry::default(),
            hooks: HookRefs::default(),
            skip_if_current: true,
        }
    }
}

/// How long a readiness hold lasts when the policy sets no `max_wait_seconds` (30 minutes):
/// then the run pauses with `readiness_timeout`, so a default run never waits for ever.
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 30 * 60;

/// Upper bound of every duration in a policy, in seconds (30 days): a longer soak, wait, backoff
/// or lease is a mistake, and unbounded values overflow date arithmetic.
pub const MAX_POLICY_SECONDS: u64 = 30 * 24 * 60 * 60;

/// Service states a run may touch when the policy does not say.
pub const DEFAULT_DISALLOWED_SERVICE_STATES: [&str; 2] = ["rma", "decommissioned"];

impl RunPolicy {
    /// The readiness wait after which the run pauses: `max_wait_seconds`, or
    /// [`DEFAULT_MAX_WAIT_SECONDS`] when unset.
    pub fn effective_max_wait(&self) -> u64 {
        self.max_wait_seconds.unwrap_or(DEFAULT_MAX_WAIT_SECONDS)
    }

    /// Whether a component in `state` may be operated on under this policy.
    pub fn allows_service_state(&self, state: &ServiceState) -> bool {
        match &self.allowed_service_states {
            Some(allowed) => allowed.contains(state),
            None => !DEFAULT_DISALLOWED_SERVICE_STATES.contains(&state.as_str()),
        }
    }

    /// Checks every field; returns every problem, each naming its path under `prefix`
    /// (e.g. `policy.waves.percentage`).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        let path = |field: &str| format!("{prefix}.{field}");
        if self.max_parallel_racks == 0 {
            errors.push(FieldError::new(path("max_parallel_racks"), "must be at least 1"));
        }
        validate_waves(&self.waves, &path("waves"), &mut errors);
        for (field, name) in self.hooks.named(&path("hooks")) {
            if name.is_empty() {
                errors.push(FieldError::new(field, "a hook name must not be empty"));
            }
        }
        for (index, gate) in self.safety_gates.iter().enumerate() {
            validate_gate(gate, &path(&format!("safety_gates[{index}]")), &mut errors);
        }
        if self.max_wait_seconds == Some(0) {
            errors.push(FieldError::new(
                path("max_wait_seconds"),
                "must be at least 1 (omit it for the default of 30 minutes)",
            ));
        }
        if matches!(&self.allowed_service_states, Some(states) if states.is_empty()) {
            errors.push(FieldError::new(
                path("allowed_service_states"),
                "must name at least one state (omit it for the default)",
            ));
        }
        for (index, window) in self.maintenance_windows.iter().enumerate() {
            validate_window(window, &path(&format!("maintenance_windows[{index}]")), &mut errors);
        }
        if self.max_attempts == 0 {
            errors.push(FieldError::new(path("max_attempts"), "must be at least 1"));
        }
        if self.claim_lease_seconds == 0 {
            errors.push(FieldError::new(path("claim_lease_seconds"), "must be at least 1"));
        }
        validate_conflict_retry(&self.conflict_retry, &path("conflict_retry"), &mut errors);
        ValidationErrors::from_vec(errors)
    }

    /// Checks the documented upper bound of every duration ([`MAX_POLICY_SECONDS`]). Checked
    /// when a run is created, not when a logged run is replayed, so logs written before the
    /// bound existed still replay.
    pub fn validate_bounds(&self, prefix: &str) -> Result<(), ValidationErrors> {
        let errors = self
            .durations()
            .into_iter()
            .filter(|(_, seconds)| *seconds > MAX_POLICY_SECONDS)
            .map(|(field, seconds)| {
                FieldError::new(
                    format!("{prefix}.{field}"),
                    format!(
                        "{seconds} is over the limit of {MAX_POLICY_SECONDS} seconds (30 days)"
                    ),
                )
            })
            .collect();
        ValidationErrors::from_vec(errors)
    }

    /// Every duration of the policy with its field path (relative to the policy).
    fn durations(&self) -> [(&'static str, u64); 7] {
        [
            ("soak_seconds", self.soak_seconds),
            ("max_wait_seconds", self.max_wait_seconds.unwrap_or(0)),
            ("retry_backoff_seconds", self.retry_backoff_seconds),
            ("claim_lease_seconds", self.claim_lease_seconds),
            ("conflict_retry.timeout_seconds", self.conflict_retry.timeout_seconds),
            ("conflict_retry.initial_delay_seconds", self.conflict_retry.initial_delay_seconds),
            ("conflict_retry.max_delay_seconds", self.conflict_retry.max_delay_seconds),
        ]
    }

    /// Checks `allowed_service_states` against the states a site's table knows: a name the
    /// table lacks is a typo that would silently skip every component.
    pub fn validate_service_states(
        &self,
        prefix: &str,
        known: impl Fn(&ServiceState) -> bool,
    ) -> Result<(), ValidationErrors> {
        let errors = self
            .allowed_service_states
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, state)| !known(state))
            .map(|(index, state)| {
                FieldError::new(
                    format!("{prefix}.allowed_service_states[{index}]"),
                    format!("unknown service state {state}"),
                )
            })
            .collect();
        ValidationErrors::from_vec(errors)
    }
}

fn validate_window(window: &MaintenanceWindow, path: &str, errors: &mut Vec<FieldError>) {
    let mut times = Vec::new();
    for (name, value) in [("start", &window.start), ("end", &window.end)] {
        match parse_hhmm(value) {
            Some(minutes) => times.push(minutes),
            None => errors.push(FieldError::new(
                format!("{path}.{name}"),
                format!("{value:?} is not a time of day as HH:MM (00:00 to 23:59, UTC)"),
            )),
        }
    }
    if let [start, end] = times[..]
        && start == end
    {
        errors.push(FieldError::new(
            format!("{path}.end"),
            "must differ from start (a window whose start equals its end would be always open)",
        ));
    }
}

fn validate_waves(waves: &WaveSpec, path: &str, errors: &mut Vec<FieldError>) {
    match waves {
        WaveSpec::Equal { count } if *count == 0 => {
            errors.push(FieldError::new(format!("{path}.equal.count"), "must be at least 1"));
        }
        WaveSpec::Percentage(parts) => {
            let sum: u64 = parts.iter().map(|p| u64::from(*p)).sum();
            if parts.is_empty() || parts.contains(&0) || sum != 100 {
                errors.push(FieldError::new(
                    format!("{path}.percentage"),
                    format!(
                        "must be positive percentages summing to 100 (got {parts:?}, sum {sum})"
                    ),
                ));
            }
        }
        WaveSpec::Count(sizes) if sizes.is_empty() || sizes.contains(&0) => {
            errors.push(FieldError::new(
                format!("{path}.count"),
                format!("must be positive wave sizes (got {sizes:?})"),
            ));
        }
        _ => {}
    }
}

fn validate_gate(gate: &SafetyGate, path: &str, errors: &mut Vec<FieldError>) {
    match (&gate.failure_count, &gate.failure_rate) {
        (Some(_), Some(_)) | (None, None) => errors.push(FieldError::new(
            path.to_string(),
            "must have exactly one of failure_count or failure_rate",
        )),
        (Some(count), None) if count.max == 0 => {
            errors.push(FieldError::new(format!("{path}.failure_count.max"), "must be at least 1"));
        }
        (None, Some(rate)) if !(rate.percent > 0.0 && rate.percent <= 100.0) => {
            errors.push(FieldError::new(
                format!("{path}.failure_rate.percent"),
                format!("must be above 0 and at most 100 (got {})", rate.percent),
            ));
        }
        _ => {}
    }
}

fn validate_conflict_retry(retry: &ConflictRetry, path: &str, errors: &mut Vec<FieldError>) {
    if retry.initial_delay_seconds == 0 {
        errors.push(FieldError::new(format!("{path}.initial_delay_seconds"), "must be at least 1"));
    }
    if retry.max_delay_seconds < retry.initial_delay_seconds {
        errors.push(FieldError::new(
            format!("{path}.max_delay_seconds"),
            format!("must be at least initial_delay_seconds ({})", retry.initial_delay_seconds),
        ));
    }
    if retry.timeout_seconds == 0 {
        errors.push(FieldError::new(format!("{path}.timeout_seconds"), "must be at least 1"));
    }
}
