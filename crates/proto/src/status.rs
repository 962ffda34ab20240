//! Status enums of runs, targets and tasks, with their wire names and terminal sets.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// Parses a wire name.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Status of an operation run.
    RunStatus {
        /// Created, not yet started.
        Pending => "pending",
        /// Dispatching targets.
        Running => "running",
        /// Paused by an operator or a gate; see the reason.
        Paused => "paused",
        /// Every target completed or was skipped.
        Completed => "completed",
        /// Some selected targets failed.
        CompletedWithFailures => "completed_with_failures",
        /// Every selected target failed.
        Failed => "failed",
        /// Cancelled by an operator.
        Cancelled => "cancelled",
    }
);

impl RunStatus {
    /// Whether the status absorbs every further event.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::CompletedWithFailures
                | RunStatus::Failed
                | RunStatus::Cancelled
        )
    }
}

wire_enum!(
    /// Why a run has its status (mostly: why it is paused).
    RunStatusReason {
        /// Nothing to explain.
        None => "none",
        /// An operator paused it.
        OperatorPaused => "operator_paused",
        /// A wave finished and the next one waits for an operator to advance.
        WaveGate => "wave_gate",
        /// A safety gate tripped on failures.
        SafetyGate => "safety_gate",
        /// A target stayed blocked by a rack conflict past the conflict retry timeout.
        ConflictRetryTimeout => "conflict_retry_timeout",
        /// A target waited for readiness past `max_wait_seconds`.
        ReadinessTimeout => "readiness_timeout",
    }
);

wire_enum!(
    /// Status of a target (one rack within one run).
    TargetStatus {
        /// Waiting to be claimed.
        Pending => "pending",
        /// Claimed under a lease; a task is being submitted.
        Claimed => "claimed",
        /// Core reported a rack conflict; retried after a backoff.
        Blocked => "blocked",
        /// A task is running in Core.
        Submitted => "submitted",
        /// The task completed.
        Completed => "completed",
        /// The task failed (or Core rejected it) and no attempt is left.
        Failed => "failed",
        /// The task was terminated.
        Terminated => "terminated",
        /// Skipped by policy.
        Skipped => "skipped",
        /// Claimed: the run's pre hooks run before the task is submitted.
        PreHooks => "pre_hooks",
        /// The task completed: the run's post hooks run before the target completes.
        PostHooks => "post_hooks",
    }
);

impl TargetStatus {
    /// Whether the target is finished. `failed` is terminal unless a retry re-opens it.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TargetStatus::Completed
                | TargetStatus::Failed
                | TargetStatus::Terminated
                | TargetStatus::Skipped
        )
    }

    /// Whether the target occupies its rack (a task may be live in Core).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TargetStatus::Claimed
                | TargetStatus::Blocked
                | TargetStatus::Submitted
                | TargetStatus::PreHooks
                | TargetStatus::PostHooks
        )
    }

    /// Whether the status counts as a failure for safety gates.
    pub fn is_failure(self) -> bool {
        matches!(self, TargetStatus::Failed | TargetStatus::Terminated)
    }
}

wire_enum!(
    /// Status of a task in Core.
    TaskStatus {
        /// Accepted, not started.
        Pending => "pending",
        /// Waiting on something inside Core.
        Waiting => "waiting",
        /// Running.
        Running => "running",
        /// Done.
        Completed => "completed",
        /// Failed.
        Failed => "failed",
        /// Terminated before finishing.
        Terminated => "terminated",
    }
);

impl TaskStatus {
    /// Whether the task is finished.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Terminated)
    }
}

wire_enum!(
    /// The planner gate that holds a target.
    Gate {
        /// The run is not running.
        RunStatus => "run_status",
        /// Outside every maintenance window.
        MaintenanceWindow => "maintenance_window",
        /// The target's wave is not open yet.
        Wave => "wave",
        /// No free slot (run or global limit).
        Concurrency => "concurrency",
        /// Another active task conflicts on the rack.
        Conflict => "conflict",
        /// A component's service state is not allowed by the policy.
        ServiceState => "service_state",
        /// A component's phase blocks the operation's class.
        Readiness => "readiness",
        /// A failed attempt waits out `retry_backoff_seconds` before the next attempt.
        RetryBackoff => "retry_backoff",
        /// `skip_if_current`: the rack already reports the requested firmware version.
        AlreadyCurrent => "already_current",
    }
);
