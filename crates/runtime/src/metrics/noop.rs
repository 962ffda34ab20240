//! The engine's metrics with the `metrics` feature off: the same methods as the Prometheus
//! version, recording nothing.

use std::time::Duration;
use steward_proto::RunStatus;
use steward_state_machine::Fleet;

/// Metrics that record nothing (built without the `metrics` feature).
#[derive(Debug, Default)]
pub struct Metrics;

impl Metrics {
    /// A recorder that records nothing.
    pub fn new() -> Self {
        Self
    }

    /// Records nothing.
    pub fn events_applied(&self, _n: u64) {}

    /// Records nothing.
    pub fn plan_duration(&self, _took: Duration) {}

    /// Records nothing.
    pub fn core_call(&self, _call: &str, _took: Duration) {}

    /// Records nothing.
    pub fn commit_duration(&self, _took: Duration) {}

    /// Records nothing.
    pub fn commit_failed(&self, _cause: &str) {}

    /// Records nothing.
    pub fn queue_depth(&self, _depth: usize) {}

    /// Records nothing.
    pub fn committed_at(&self, _unix_seconds: i64) {}

    /// Records nothing.
    pub fn run_status_changed(&self, _to: RunStatus) {}

    /// Records nothing.
    pub fn observe_fleet(&self, _fleet: &Fleet) {}

    /// Records nothing.
    pub fn observe_components(&self, _fleet: &Fleet, _now: steward_proto::Timestamp) {}

    /// Records nothing.
    pub fn observation_ignored(&self, _reason: &str) {}

    /// Records nothing.
    pub fn webhook_failed(&self, _webhook: &str) {}

    /// Records nothing.
    pub fn webhook_backlog(&self, _webhook: &str, _backlog: u64, _parked: u64) {}

    /// An exposition that says metrics are off.
    pub fn encode(&self) -> String {
        String::from("# steward built without the metrics feature\n")
    }
}
