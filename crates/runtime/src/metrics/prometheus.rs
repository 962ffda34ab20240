//! Prometheus metrics (prometheus-client): events applied, plan duration, runs and targets by
//! status, Core call latency, and the store's health (commit latency, commit failures by cause,
//! reducer queue depth, time of the last successful commit). The reducer and applier update
//! them; `/metrics` encodes them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;
use steward_proto::{RunStatus, TargetStatus};
use steward_state_machine::Fleet;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

/// Every metric Steward exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    events_applied: Counter,
    plan_duration: Histogram,
    runs: Family<StatusLabel, Gauge>,
    targets: Family<StatusLabel, Gauge>,
    run_transitions: Family<StatusLabel, Counter>,
    core_calls: Family<CallLabel, Histogram>,
    commit_duration: Histogram,
    commit_failures: Family<CauseLabel, Counter>,
    queue_depth: Gauge,
    last_commit: Gauge,
    components: Family<PhaseLabel, Gauge>,
    observations_ignored: Family<ReasonLabel, Counter>,
    webhook_failures: Family<WebhookLabel, Counter>,
    webhook_backlog: Family<WebhookLabel, Gauge>,
    webhook_parked: Family<WebhookLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `steward` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let events_applied = Counter::default();
        registry.register(
            "events_applied",
            "Events accepted and logged by the reducer",
            events_applied.clone(),
        );
        let plan_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "plan_duration_seconds",
            "Time spent in one plan() call",
            plan_duration.clone(),
        );
        let runs = Family::<StatusLabel, Gauge>::default();
        registry.register("runs", "Runs by status", runs.clone());
        let targets = Family::<StatusLabel, Gauge>::default();
        registry.register("targets", "Targets by status over all runs", targets.clone());
        let run_transitions = Family::<StatusLabel, Counter>::default();
        registry.register(
            "run_status_changes",
            "Run status changes by new status",
            run_transitions.clone(),
        );
        let core_calls = Family::<CallLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 18))
        });
        registry.register(
            "core_call_duration_seconds",
            "Core call latency by call",
            core_calls.clone(),
        );
        let commit_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 20));
        registry.register(
            "commit_duration_seconds",
            "Time to make one batch durable, retries of a busy store included",
            commit_duration.clone(),
        );
        let commit_failures = Family::<CauseLabel, Counter>::default();
        registry.register(
            "commit_failures",
            "Failed commit attempts by cause (retried ones included)",
            commit_failures.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "reducer_queue_depth",
            "Inputs waiting for the reducer after its last drain",
            queue_depth.clone(),
        );
        let last_commit = Gauge::default();
        registry.register(
            "last_commit_timestamp_seconds",
            "Unix time of the last successful commit (0: none since start)",
            last_commit.clone(),
        );
        let components = Family::<PhaseLabel, Gauge>::default();
        registry.register(
            "components",
            "Components by effective phase (stale: observation older than status_max_age)",
            components.clone(),
        );
        let observations_ignored = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "observations_ignored",
            "Observations not applied, by reason (out_of_order, future)",
            observations_ignored.clone(),
        );
        let webhook_failures = Family::<WebhookLabel, Counter>::default();
        registry.register(
            "webhook_failures",
            "Failed webhook delivery attempts by webhook",
            webhook_failures.clone(),
        );
        let webhook_backlog = Family::<WebhookLabel, Gauge>::default();
        registry.register(
            "webhook_backlog",
            "Undelivered webhook deliveries still being tried, by webhook",
            webhook_backlog.clone(),
        );
        let webhook_parked = Family::<WebhookLabel, Gauge>::default();
        registry.register(
            "webhook_parked",
            "Webhook deliveries parked after too many attempts, by webhook",
            webhook_parked.clone(),
        );
        Self {
            webhook_failures,
            webhook_backlog,
            webhook_parked,
            components,
            observations_ignored,
            registry: Mutex::new(registry),
            commit_duration,
            commit_failures,
            queue_depth,
            last_commit,
            events_applied,
            plan_duration,
            runs,
            targets,
            run_transitions,
            core_calls,
        }
    }

    /// Counts logged events.
    pub fn events_applied(&self, n: u64) {
        self.events_applied.inc_by(n);
    }

    /// Records one plan() call.
    pub fn plan_duration(&self, took: Duration) {
        self.plan_duration.observe(took.as_secs_f64());
    }

    /// Records one Core call.
    pub fn core_call(&self, call: &str, took: Duration) {
        self.core_calls
            .get_or_create(&CallLabel { call: call.to_string() })
            .observe(took.as_secs_f64());
    }

    /// Records the time one batch took to become durable.
    pub fn commit_duration(&self, took: Duration) {
        self.commit_duration.observe(took.as_secs_f64());
    }

    /// Counts one failed commit attempt by cause (see `StoreError::cause`).
    pub fn commit_failed(&self, cause: &str) {
        self.commit_failures.get_or_create(&CauseLabel { cause: cause.to_string() }).inc();
    }

    /// Records how many inputs wait for the reducer.
    pub fn queue_depth(&self, depth: usize) {
        self.queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Records the unix time (seconds) of a successful commit.
    pub fn committed_at(&self, unix_seconds: i64) {
        self.last_commit.set(unix_seconds);
    }

    /// Counts a run status change.
    pub fn run_status_changed(&self, to: RunStatus) {
        self.run_transitions.get_or_create(&StatusLabel { status: to.to_string() }).inc();
    }

    /// Refreshes the by-status gauges from the fleet's incremental counts (no target scan).
    pub fn observe_fleet(&self, fleet: &Fleet) {
        for status in RunStatus::ALL {
            let n = fleet.runs.values().filter(|r| r.status == *status).count();
            self.runs.get_or_create(&StatusLabel { status: status.to_string() }).set(n as i64);
        }
        for status in TargetStatus::ALL {
            let n: u64 = fleet.runs.values().map(|r| u64::from(r.counts.get(*status))).sum();
            self.targets.get_or_create(&StatusLabel { status: status.to_string() }).set(n as i64);
        }
    }

    /// Refreshes the components-by-phase gauge at `now` (stale counted as its own phase).
    pub fn observe_components(&self, fleet: &Fleet, now: steward_proto::Timestamp) {
        for (phase, n) in steward_state_machine::components_by_phase(fleet, now) {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.components.get_or_create(&PhaseLabel { phase: phase.to_string() }).set(n);
        }
    }

    /// Counts an observation that was not applied (`out_of_order` or `future`).
    pub fn observation_ignored(&self, reason: &str) {
        self.observations_ignored.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Counts one failed webhook delivery attempt.
    pub fn webhook_failed(&self, webhook: &str) {
        self.webhook_failures.get_or_create(&WebhookLabel { webhook: webhook.to_string() }).inc();
    }

    /// Records a webhook's backlog and parked count.
    pub fn webhook_backlog(&self, webhook: &str, backlog: u64, parked: u64) {
        let label = WebhookLabel { webhook: webhook.to_string() };
        self.webhook_backlog.get_or_create(&label).set(i64::try_from(backlog).unwrap_or(i64::MAX));
        self.webhook_parked.get_or_create(&label).set(i64::try_from(parked).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}
