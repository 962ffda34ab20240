//! Why a target waits, why it is skipped, why a run pauses: the facts the gates found, as
//! values, and the one place that renders them as the operator-facing messages.
//!
//! The gates and the plan decide with [`HoldCause`], [`SkipCause`] and [`PauseCause`]; text is
//! produced only here, and nothing in the planner reads a message back to recover a fact. What
//! a later plan needs from a stored hold (the component a readiness hold waits for) travels in
//! a field of [`steward_proto::Hold`] ([`HoldCause::hold`] fills it).
//!
//! Every message says what blocks and what would unblock it.

use std::fmt;
use steward_proto::{
    ComponentId, ComponentKind, Gate, Hold, MaintenanceWindow, Operation, OperationClass, Phase,
    RackId, RunId, RunPolicy, RunStatus, RunStatusReason, ServiceState, StatusCounts, TargetId,
    TargetStatus, Timestamp, policy::DEFAULT_DISALLOWED_SERVICE_STATES,
};

/// Why a target (or a run's queue of pending targets) waits: one variant per situation, with
/// the facts its message names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HoldCause {
    /// Gate 1: the run is not `running`.
    NotRunning {
        /// The run.
        run: RunId,
        /// Its status.
        status: RunStatus,
        /// Why it has that status.
        reason: RunStatusReason,
        /// The run's status message (empty when it has none).
        status_message: String,
    },
    /// Gate 1: this very plan pauses the run.
    Pausing {
        /// The run.
        run: RunId,
        /// Why it pauses.
        pause: PauseCause,
    },
    /// Gate 2: `now` is outside every maintenance window.
    OutsideWindows {
        /// The policy's windows.
        windows: Vec<MaintenanceWindow>,
        /// The nearest window start after now, in minutes after midnight UTC, if any parses.
        resumes_at: Option<u32>,
    },
    /// Gate 3: wave `finished` is done and wave `next` opens in this plan.
    WaveOpening {
        /// The finished wave.
        finished: u32,
        /// Its counts, when the wave exists.
        counts: Option<StatusCounts>,
        /// The wave being opened.
        next: u32,
    },
    /// Gate 3: wave `finished` is done and wave `next` opens once the soak has elapsed.
    WaveSoaking {
        /// The finished wave.
        finished: u32,
        /// Its counts, when the wave exists.
        counts: Option<StatusCounts>,
        /// When it finished.
        finished_at: Timestamp,
        /// The next wave.
        next: u32,
        /// When it opens.
        opens_at: Timestamp,
        /// The policy's soak.
        soak_seconds: u64,
    },
    /// Gate 3: targets of a wave that is not open yet.
    LaterWave {
        /// The open wave.
        current: u32,
        /// Targets of the open waves not finished yet.
        unfinished: u32,
        /// Size of the open wave.
        size: u32,
        /// The first later wave with pending targets.
        next: u32,
        /// Whether the run advances on its own (after the soak) or waits for an operator.
        auto_advance: bool,
        /// The policy's soak.
        soak_seconds: u64,
    },
    /// Gate 3 in a dry run: a target of a wave after the first.
    AfterFirstWave {
        /// The target's wave.
        wave: u32,
    },
    /// Gate 4: the run has `max_parallel_racks` racks in flight.
    RunConcurrency {
        /// The run.
        run: RunId,
        /// Its racks in flight, this plan's claims included.
        in_flight: u32,
        /// `max_parallel_racks`.
        max: u32,
    },
    /// Gate 4: the global limit of racks in flight is reached.
    GlobalConcurrency {
        /// The limit.
        limit: u64,
        /// Racks in flight over all runs.
        in_flight: u64,
    },
    /// Gate 4 in a dry run: the run's own claims would fill its slots.
    WouldRunConcurrency {
        /// `max_parallel_racks`.
        max: u32,
    },
    /// Gate 4 in a dry run: the global limit would be reached.
    WouldGlobalConcurrency,
    /// The previous attempt failed and the retry backoff has not passed.
    RetryBackoff {
        /// The target's current attempt (the next to start).
        attempt: u32,
        /// When it may start.
        retry_after: Timestamp,
        /// The policy's backoff.
        backoff_seconds: u64,
    },
    /// Gate 5: the rack has an active target whose run or operation is unknown (fails closed).
    UnknownActive {
        /// The rack.
        rack: RackId,
        /// The active target.
        target: TargetId,
    },
    /// Gate 5: a conflicting active task on the rack.
    Conflict {
        /// The rack.
        rack: RackId,
        /// The other target's run.
        run: RunId,
        /// The other target.
        target: TargetId,
        /// The other run's operation.
        operation: Operation,
        /// The other target's status.
        status: TargetStatus,
        /// Which rule decided (from [`crate::conflict::Decision::Conflict`]).
        why: String,
    },
    /// Gate 7: a component is not ready for the operation's class.
    NotReady(NotReady),
}

impl HoldCause {
    /// The gate this cause belongs to.
    pub fn gate(&self) -> Gate {
        match self {
            HoldCause::NotRunning { .. } | HoldCause::Pausing { .. } => Gate::RunStatus,
            HoldCause::OutsideWindows { .. } => Gate::MaintenanceWindow,
            HoldCause::WaveOpening { .. }
            | HoldCause::WaveSoaking { .. }
            | HoldCause::LaterWave { .. }
            | HoldCause::AfterFirstWave { .. } => Gate::Wave,
            HoldCause::RunConcurrency { .. }
            | HoldCause::GlobalConcurrency { .. }
            | HoldCause::WouldRunConcurrency { .. }
            | HoldCause::WouldGlobalConcurrency => Gate::Concurrency,
            HoldCause::RetryBackoff { .. } => Gate::RetryBackoff,
            HoldCause::UnknownActive { .. } | HoldCause::Conflict { .. } => Gate::Conflict,
            HoldCause::NotReady(_) => Gate::Readiness,
        }
    }

    /// The component that holds the target, if one does.
    pub fn component(&self) -> Option<&ComponentId> {
        match self {
            HoldCause::NotReady(not_ready) => Some(&not_ready.component),
            _ => None,
        }
    }

    /// The message as stored on a target or run hold of a run under `policy`: a readiness hold
    /// also says when the run would pause.
    pub fn message(&self, policy: &RunPolicy) -> String {
        match (self.gate(), Some(policy.effective_max_wait())) {
            (Gate::Readiness, Some(max_wait)) => {
                format!("{self} (the run pauses after {max_wait}s of waiting)")
            }
            _ => self.to_string(),
        }
    }

    /// The hold a target of a run under `policy` gets for this cause, held since `since`.
    pub fn hold(&self, policy: &RunPolicy, since: Timestamp) -> Hold {
        Hold {
            gate: self.gate(),
            message: self.message(policy),
            since,
            component: self.component().cloned(),
        }
    }
}

impl fmt::Display for HoldCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldCause::NotRunning { run, status, reason, status_message } => match status {
                RunStatus::Pending => {
                    write!(f, "run {run} has not been started; its targets dispatch once it starts")
                }
                RunStatus::Paused => {
                    write!(f, "run {run} is ")?;
                    match reason {
                        RunStatusReason::OperatorPaused => f.write_str("paused by an operator")?,
                        reason => write!(f, "paused ({reason})")?,
                    }
                    if !status_message.is_empty() {
                        write!(f, ": {status_message}")?;
                    }
                    // The planner's own pause messages already say what unblocks the run.
                    match reason {
                        RunStatusReason::OperatorPaused | RunStatusReason::None => {
                            f.write_str("; resume it to continue")
                        }
                        _ if status_message.is_empty() => f.write_str("; resume it to continue"),
                        _ => Ok(()),
                    }
                }
                status => write!(f, "run {run} is {status}; nothing dispatches"),
            },
            HoldCause::Pausing { run, pause } => {
                write!(f, "run {run} is being paused ({}): {pause}", pause.reason())
            }
            HoldCause::OutsideWindows { windows, resumes_at } => {
                f.write_str("outside every maintenance window (")?;
                for (index, window) in windows.iter().enumerate() {
                    let separator = if index == 0 { "" } else { ", " };
                    write!(f, "{separator}{}-{}", window.start, window.end)?;
                }
                f.write_str(" UTC)")?;
                match resumes_at {
                    Some(start) => {
                        write!(f, "; dispatch resumes at {:02}:{:02} UTC", start / 60, start % 60)
                    }
                    None => Ok(()),
                }
            }
            HoldCause::WaveOpening { finished, counts, next } => {
                write!(
                    f,
                    "wave {finished} finished{}; wave {next} is opening now",
                    WaveSummary(*counts)
                )
            }
            HoldCause::WaveSoaking {
                finished,
                counts,
                finished_at,
                next,
                opens_at,
                soak_seconds,
            } => write!(
                f,
                "wave {finished} finished{} at {}; wave {next} opens at {} after the \
                 {soak_seconds}s soak",
                WaveSummary(*counts),
                fmt_time(*finished_at),
                fmt_time(*opens_at)
            ),
            HoldCause::LaterWave {
                current,
                unfinished,
                size,
                next,
                auto_advance,
                soak_seconds,
            } => {
                write!(
                    f,
                    "waits for wave {current} to finish ({unfinished} of {size} targets not \
                     finished)"
                )?;
                if *auto_advance {
                    write!(f, "; wave {next} then opens after the {soak_seconds}s soak")
                } else {
                    write!(f, " and for an operator to advance the run to wave {next}")
                }
            }
            HoldCause::AfterFirstWave { wave } => {
                write!(f, "waits for wave 1 to finish, then wave {wave} opens")
            }
            HoldCause::RunConcurrency { run, in_flight, max } => write!(
                f,
                "run {run} has {in_flight} of {max} racks in flight (max_parallel_racks {max}); \
                 the next target starts when one finishes"
            ),
            HoldCause::GlobalConcurrency { limit, in_flight } => write!(
                f,
                "the global limit of {limit} racks in flight is reached ({in_flight} active over \
                 all runs); the next target starts when a slot frees"
            ),
            HoldCause::WouldRunConcurrency { max } => write!(
                f,
                "the run would already have {max} racks in flight (max_parallel_racks {max}); \
                 starts when one finishes"
            ),
            HoldCause::WouldGlobalConcurrency => f.write_str(
                "the global limit of racks in flight would be reached; starts when a slot frees",
            ),
            HoldCause::RetryBackoff { attempt, retry_after, backoff_seconds } => write!(
                f,
                "attempt {} failed; attempt {attempt} may start at {} (retry_backoff_seconds \
                 {backoff_seconds})",
                attempt.saturating_sub(1).max(1),
                fmt_time(*retry_after)
            ),
            HoldCause::UnknownActive { rack, target } => write!(
                f,
                "rack {rack} has active target {target} whose run or operation is unknown, so it \
                 counts as a conflict; retried when that target finishes"
            ),
            HoldCause::Conflict { rack, run, target, operation, status, why } => write!(
                f,
                "rack {rack} busy with run {run} target {target} ({operation}, {status}): {why}; \
                 retried when that task finishes"
            ),
            HoldCause::NotReady(not_ready) => not_ready.fmt(f),
        }
    }
}

/// Gate 7's finding: the first component of a target that is not ready for the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotReady {
    /// The component (a target's hold names the first blocking one only).
    pub component: ComponentId,
    /// What is wrong with it.
    pub state: ComponentState,
}

/// Why a component is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ComponentState {
    /// Not in the inventory.
    Missing,
    /// In the inventory but never observed.
    NeverObserved {
        /// Its kind.
        kind: ComponentKind,
    },
    /// Its status is too old to act on.
    Stale {
        /// Its kind.
        kind: ComponentKind,
        /// Its last observation (`None`: not re-observed since the restart).
        last_observed_at: Option<Timestamp>,
    },
    /// Its phase blocks the operation's class.
    Blocked {
        /// Its kind.
        kind: ComponentKind,
        /// The phase.
        phase: Phase,
        /// Core's raw controller state, or why there is none.
        reason: String,
        /// The blocked class.
        class: OperationClass,
    },
}

impl NotReady {
    /// Whether the component is not ready for lack of a usable status: such a component always
    /// holds its target, never skips it (missing data must not decide anything).
    pub fn unknown(&self) -> bool {
        match &self.state {
            ComponentState::Blocked { phase, .. } => *phase == Phase::Unknown,
            ComponentState::Missing
            | ComponentState::NeverObserved { .. }
            | ComponentState::Stale { .. } => true,
        }
    }

    /// The component and its state, without what would unblock it.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.component;
        match &self.state {
            ComponentState::Missing => write!(f, "component {id} is not in the inventory"),
            ComponentState::NeverObserved { kind } => {
                write!(f, "component {id} ({kind}) has no status yet (never observed)")
            }
            ComponentState::Stale { kind, last_observed_at } => {
                write!(f, "component {id} ({kind}) has no fresh status (")?;
                match last_observed_at {
                    None => f.write_str("not re-observed since restart")?,
                    Some(at) => write!(f, "stale: last observed at {}", fmt_time(*at))?,
                }
                f.write_str(")")
            }
            ComponentState::Blocked { kind, phase, reason, class } => write!(
                f,
                "component {id} ({kind}) is {phase} (Core: {reason}), which blocks {class}"
            ),
        }
    }
}

/// The readiness hold's message (without the max-wait note): the component, its state, and
/// what would unblock it.
impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f)?;
        f.write_str(match self.state {
            ComponentState::Missing => "; held until it is imported",
            ComponentState::NeverObserved { .. } | ComponentState::Stale { .. } => {
                "; waits until Core reports it ready"
            }
            ComponentState::Blocked { phase: Phase::Error, .. } => {
                "; waits until Core recovers it from the error phase (a failed attempt leaves \
                 components there)"
            }
            ComponentState::Blocked { .. } => "; waits until ready",
        })
    }
}

/// Why policy skips a target instead of holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SkipCause {
    /// Gate 6: a component's service state is not allowed by the run's policy.
    ServiceState {
        /// The component.
        component: ComponentId,
        /// Its kind.
        kind: ComponentKind,
        /// Its service state.
        service_state: ServiceState,
        /// The policy's allowed states (`None`: all but the default disallowed ones).
        allowed: Option<Vec<ServiceState>>,
    },
    /// Policy `skip_if_current`: every component a firmware update covers already reports
    /// the requested version.
    AlreadyCurrent {
        /// The requested (and reported) version.
        version: String,
    },
    /// Gate 7 with `on_not_ready: skip`: a component's known phase blocks the class.
    NotReady {
        /// The first component not ready.
        not_ready: NotReady,
        /// How many more of the target's components are not ready.
        more: usize,
    },
}

impl SkipCause {
    /// The gate that decided.
    pub fn gate(&self) -> Gate {
        match self {
            SkipCause::ServiceState { .. } => Gate::ServiceState,
            SkipCause::NotReady { .. } => Gate::Readiness,
            SkipCause::AlreadyCurrent { .. } => Gate::AlreadyCurrent,
        }
    }

    /// How a dry run reports the skip (as a hold of the deciding gate).
    pub fn dry_run_message(&self) -> String {
        format!("would be skipped: {self}")
    }
}

impl fmt::Display for SkipCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipCause::ServiceState { component, kind, service_state, allowed } => {
                write!(
                    f,
                    "component {component} ({kind}) is in service state {service_state}, which \
                     the run's policy does not allow (allowed: "
                )?;
                match allowed {
                    Some(states) => {
                        for (index, state) in states.iter().enumerate() {
                            let separator = if index == 0 { "" } else { ", " };
                            write!(f, "{separator}{state}")?;
                        }
                    }
                    None => {
                        write!(f, "all but {}", DEFAULT_DISALLOWED_SERVICE_STATES.join(", "))?;
                    }
                }
                f.write_str("); skipped")
            }
            SkipCause::AlreadyCurrent { version } => write!(f, "already at {version}"),
            SkipCause::NotReady { not_ready, more } => {
                not_ready.describe(f)?;
                match more {
                    0 => {}
                    1 => f.write_str(" (1 more component not ready)")?,
                    n => write!(f, " ({n} more components not ready)")?,
                }
                f.write_str("; skipped (on_not_ready skip)")
            }
        }
    }
}

/// Why the planner pauses a running run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PauseCause {
    /// A safety gate tripped.
    SafetyGate {
        /// The threshold that tripped.
        limit: SafetyLimit,
        /// The wave number for a `current_wave` gate, `None` for a `run` gate.
        wave: Option<u32>,
        /// Unacknowledged failures in the scope.
        failures: u32,
        /// Targets in the scope.
        total: u32,
    },
    /// A blocked target kept hitting rack conflicts past `conflict_retry.timeout_seconds`.
    ConflictRetryTimeout {
        /// The target.
        target: TargetId,
        /// Its rack.
        rack: RackId,
        /// When it was first blocked.
        first: Timestamp,
        /// When the timeout started counting (the later of `first` and the run's last change).
        counted_from: Timestamp,
        /// The timeout.
        timeout_seconds: u64,
        /// The target's last message (Core's word on the last conflict; may be empty).
        last_conflict: String,
    },
    /// The open wave finished and the run does not advance on its own.
    WaveGate {
        /// The finished wave.
        finished: u32,
        /// How many waves the run has.
        waves: u32,
        /// The finished wave's counts, when it exists.
        counts: Option<StatusCounts>,
        /// The next wave.
        next: u32,
        /// Its size.
        next_size: u32,
        /// The policy's soak.
        soak_seconds: u64,
    },
    /// A readiness hold outlived `max_wait_seconds`.
    ReadinessTimeout {
        /// The target.
        target: TargetId,
        /// Its rack.
        rack: RackId,
        /// Since when it has been held by readiness.
        since: Timestamp,
        /// When the wait started counting (the later of `since` and the run's last change).
        counted_from: Timestamp,
        /// The policy's limit.
        max_wait: u64,
        /// What it waits for.
        not_ready: NotReady,
    },
}

/// The threshold of a safety gate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SafetyLimit {
    /// `failure_count.max`.
    Count(u32),
    /// `failure_rate.percent`.
    Rate(f64),
}

impl PauseCause {
    /// The run's status reason while paused for this cause.
    pub fn reason(&self) -> RunStatusReason {
        match self {
            PauseCause::SafetyGate { .. } => RunStatusReason::SafetyGate,
            PauseCause::ConflictRetryTimeout { .. } => RunStatusReason::ConflictRetryTimeout,
            PauseCause::WaveGate { .. } => RunStatusReason::WaveGate,
            PauseCause::ReadinessTimeout { .. } => RunStatusReason::ReadinessTimeout,
        }
    }
}

impl fmt::Display for PauseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseCause::SafetyGate { limit, wave, failures, total } => {
                match limit {
                    SafetyLimit::Count(max) => write!(f, "safety gate failure_count {max}")?,
                    SafetyLimit::Rate(percent) => write!(f, "safety gate failure_rate {percent}%")?,
                }
                match wave {
                    Some(number) => write!(f, " tripped in wave {number}")?,
                    None => f.write_str(" tripped in the run")?,
                }
                write!(
                    f,
                    ": {failures} of {total} target{} failed; resume to acknowledge these \
                     failures and continue, or cancel the run",
                    if *total == 1 { "" } else { "s" }
                )
            }
            PauseCause::ConflictRetryTimeout {
                target,
                rack,
                first,
                counted_from,
                timeout_seconds,
                last_conflict,
            } => write!(
                f,
                "target {target} (rack {rack}) is blocked by rack conflicts since {} and \
                 conflict_retry.timeout_seconds {timeout_seconds} ran out{}; last conflict: {}; \
                 resume to keep retrying, or cancel the run",
                fmt_time(*first),
                CountedFrom(*first, *counted_from),
                if last_conflict.is_empty() { "(no message from Core)" } else { last_conflict }
            ),
            PauseCause::WaveGate { finished, waves, counts, next, next_size, soak_seconds } => {
                write!(
                    f,
                    "wave {finished} of {waves} finished{}; advance the run to open wave {next} \
                     ({next_size} targets)",
                    WaveSummary(*counts)
                )?;
                if *soak_seconds > 0 {
                    write!(f, " (policy soak {soak_seconds}s)")?;
                }
                Ok(())
            }
            PauseCause::ReadinessTimeout {
                target,
                rack,
                since,
                counted_from,
                max_wait,
                not_ready,
            } => write!(
                f,
                "target {target} (rack {rack}) has waited for readiness since {} and \
                 max_wait_seconds {max_wait} ran out{}: {}; fix the component and resume (the \
                 wait starts over), or cancel the run",
                fmt_time(*since),
                CountedFrom(*since, *counted_from),
                not_ready
            ),
        }
    }
}

/// " (N completed, N failed, N terminated, N skipped)" for a finished wave, or nothing.
struct WaveSummary(Option<StatusCounts>);

impl fmt::Display for WaveSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(c) => write!(
                f,
                " ({} completed, {} failed, {} terminated, {} skipped)",
                c.completed, c.failed, c.terminated, c.skipped
            ),
            None => Ok(()),
        }
    }
}

/// " (counted from the run's last start, resume or advance at T)" when a wait's clock started
/// later than the wait itself (`.1` after `.0`), or nothing.
struct CountedFrom(Timestamp, Timestamp);

impl fmt::Display for CountedFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CountedFrom(first, counted) = *self;
        if counted > first {
            write!(
                f,
                " (counted from the run's last start, resume or advance at {})",
                fmt_time(counted)
            )
        } else {
            Ok(())
        }
    }
}

/// A timestamp as operators read it.
pub(crate) fn fmt_time(at: Timestamp) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
