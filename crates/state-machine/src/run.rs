//! The run machine: an operation run's status (pending, running, paused, and the four terminal
//! statuses), its reason and message, and wave opening.
//!
//! Target counts (`counts`, `waves[*].counts`) are fleet bookkeeping maintained by
//! [`crate::fleet::Fleet`]; run events only read them (finish and advance guards, the safety
//! acknowledgement on resume).
//!
//! Rules: `start` sets `started_at` once and opens wave 1 when no wave is open yet. Resuming a run
//! paused by a safety gate acknowledges every failure so far (each wave's
//! `acknowledged_failures` becomes its failure count), so the gate counts only later failures.
//! Resuming at a wave gate is an advance when the current wave is finished and a next wave exists.
//! `finish` needs every target terminal: all selected (non-skipped) targets failed or terminated
//! -> `failed`; some -> `completed_with_failures`; none -> `completed` (a run whose targets were
//! all skipped is `completed`).

use crate::effect::{Effect, Notification};
use crate::error::Rejected;
use crate::machine::{Machine, Row, guard, require_pair, require_row, row};
use std::fmt;
use steward_proto::{Run, RunStatus, RunStatusReason, Timestamp};

/// An event the run machine accepts.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// pending -> running.
    Start,
    /// running -> paused.
    Pause {
        /// Why (not `none`).
        reason: RunStatusReason,
        /// Message naming the gate and its numbers, or the operator's reason.
        message: String,
    },
    /// paused -> running.
    Resume {
        /// Who.
        initiator: String,
    },
    /// Opens the next wave: paused at a wave gate -> running, or running -> running (auto-advance).
    Advance {
        /// The wave number the caller expects to open, if it cares.
        expected_wave: Option<u32>,
        /// Who.
        initiator: String,
    },
    /// running -> completed / completed_with_failures / failed; every target must be terminal.
    Finish,
    /// pending/running/paused -> cancelled.
    Cancel {
        /// Who.
        initiator: String,
        /// Why.
        reason: Option<String>,
    },
}

/// Run event kinds, without data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunEventKind {
    /// [`RunEvent::Start`].
    Start,
    /// [`RunEvent::Pause`].
    Pause,
    /// [`RunEvent::Resume`].
    Resume,
    /// [`RunEvent::Advance`].
    Advance,
    /// [`RunEvent::Finish`].
    Finish,
    /// [`RunEvent::Cancel`].
    Cancel,
}

impl RunEventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [RunEventKind] = &[
        RunEventKind::Start,
        RunEventKind::Pause,
        RunEventKind::Resume,
        RunEventKind::Advance,
        RunEventKind::Finish,
        RunEventKind::Cancel,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEventKind::Start => "start",
            RunEventKind::Pause => "pause",
            RunEventKind::Resume => "resume",
            RunEventKind::Advance => "advance",
            RunEventKind::Finish => "finish",
            RunEventKind::Cancel => "cancel",
        }
    }
}

impl fmt::Display for RunEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RunEvent {
    /// The event's kind.
    pub fn kind(&self) -> RunEventKind {
        match self {
            RunEvent::Start => RunEventKind::Start,
            RunEvent::Pause { .. } => RunEventKind::Pause,
            RunEvent::Resume { .. } => RunEventKind::Resume,
            RunEvent::Advance { .. } => RunEventKind::Advance,
            RunEvent::Finish => RunEventKind::Finish,
            RunEvent::Cancel { .. } => RunEventKind::Cancel,
        }
    }
}

use RunEventKind as K;
use RunStatus as S;

/// The run machine's transition table.
pub const RUN_ROWS: &[Row<RunStatus, RunEventKind>] = &[
    row(S::Pending, K::Start, S::Running),
    row(S::Running, K::Pause, S::Paused),
    row(S::Paused, K::Resume, S::Running),
    row(S::Paused, K::Advance, S::Running),
    row(S::Running, K::Advance, S::Running),
    row(S::Running, K::Finish, S::Completed),
    row(S::Running, K::Finish, S::CompletedWithFailures),
    row(S::Running, K::Finish, S::Failed),
    row(S::Pending, K::Cancel, S::Cancelled),
    row(S::Running, K::Cancel, S::Cancelled),
    row(S::Paused, K::Cancel, S::Cancelled),
];

/// The run machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunMachine;

/// Opens the next wave of `run` at `now` if the guards pass; otherwise says why not.
fn open_next_wave(run: &mut Run, expected_wave: Option<u32>, now: Timestamp) -> Result<(), String> {
    let current = run.current_wave;
    let next = current.saturating_add(1);
    if current >= 1
        && let Some(wave) = run.waves.get(current as usize - 1)
        && !wave.counts.all_terminal()
    {
        return Err(format!(
            "wave {current} is not finished: {} of {} targets terminal",
            wave.counts.terminal(),
            wave.counts.total()
        ));
    }
    if next as usize > run.waves.len() {
        return Err(format!(
            "wave {current} is the last of {} waves; there is no wave {next} to open",
            run.waves.len()
        ));
    }
    if let Some(expected) = expected_wave
        && expected != next
    {
        return Err(format!(
            "expected_wave {expected} does not match the next wave {next} (current wave {current})"
        ));
    }
    if let Some(wave) = run.waves.get_mut(next as usize - 1) {
        wave.opened_at = Some(now);
    }
    run.current_wave = next;
    Ok(())
}

/// The terminal status a finished run gets from its counts.
pub fn finished_status(run: &Run) -> RunStatus {
    let selected = run.counts.total().saturating_sub(run.counts.skipped);
    let failures = run.counts.failures();
    if selected > 0 && failures >= selected {
        RunStatus::Failed
    } else if failures > 0 {
        RunStatus::CompletedWithFailures
    } else {
        RunStatus::Completed
    }
}

fn status_change(before: &Run, next: Run, notification_message: String) -> (Run, Vec<Effect>) {
    let effects = vec![
        Effect::PersistRun(next.id.clone()),
        Effect::Notify(Notification::RunStatusChanged {
            run_id: next.id.clone(),
            from: before.status,
            to: next.status,
            reason: next.status_reason,
            message: notification_message,
        }),
    ];
    (next, effects)
}

impl Machine for RunMachine {
    const NAME: &'static str = "run";
    type State = Run;
    type Event = RunEvent;
    type Status = RunStatus;
    type EventKind = RunEventKind;

    fn initial() -> RunStatus {
        RunStatus::Pending
    }

    fn statuses() -> &'static [RunStatus] {
        RunStatus::ALL
    }

    fn event_kinds() -> &'static [RunEventKind] {
        RunEventKind::ALL
    }

    fn rows() -> &'static [Row<RunStatus, RunEventKind>] {
        RUN_ROWS
    }

    fn status_name(status: RunStatus) -> &'static str {
        status.as_str()
    }

    fn event_name(kind: RunEventKind) -> &'static str {
        kind.as_str()
    }

    fn is_terminal(status: RunStatus) -> bool {
        status.is_terminal()
    }

    fn status(state: &Run) -> RunStatus {
        state.status
    }

    fn kind(event: &RunEvent) -> RunEventKind {
        event.kind()
    }

    fn step(state: &Run, event: &RunEvent, now: Timestamp) -> Result<(Run, Vec<Effect>), Rejected> {
        let from = state.status;
        let kind = event.kind();
        require_pair::<Self>(from, kind)?;
        let refuse = |why: String| Err(guard::<Self>(from, kind, why));
        let mut next = state.clone();
        next.updated_at = now;
        let (next, effects) = match event {
            RunEvent::Start => {
                next.status = S::Running;
                next.status_reason = RunStatusReason::None;
                next.status_message.clear();
                if next.started_at.is_none() {
                    next.started_at = Some(now);
                }
                if next.current_wave == 0 {
                    // Wave 1 opens with the start; the guards cannot fail for the first wave
                    // unless the run has no waves, which creation refuses.
                    let _ = open_next_wave(&mut next, None, now);
                } else if let Some(wave) = next.waves.get_mut(next.current_wave as usize - 1)
                    && wave.opened_at.is_none()
                {
                    wave.opened_at = Some(now);
                }
                status_change(state, next, String::from("run started"))
            }
            RunEvent::Pause { reason, message } => {
                if *reason == RunStatusReason::None {
                    return refuse(String::from("a pause needs a reason other than none"));
                }
                next.status = S::Paused;
                next.status_reason = *reason;
                next.status_message =
                    if message.is_empty() { format!("paused: {reason}") } else { message.clone() };
                let text = next.status_message.clone();
                status_change(state, next, text)
            }
            RunEvent::Resume { initiator } => {
                if state.status_reason == RunStatusReason::WaveGate {
                    // Only `advance`, with its `expected_wave` check, opens a wave.
                    return refuse(format!(
                        "the run is paused at the gate before wave {}; advance it (with \
                         expected_wave) to open the next wave",
                        state.current_wave + 1
                    ));
                }
                let mut text = format!("resumed by {initiator}");
                if state.status_reason == RunStatusReason::SafetyGate {
                    let mut acknowledged = 0;
                    for wave in &mut next.waves {
                        acknowledged += wave.counts.failures();
                        wave.acknowledged_failures = wave.counts.failures();
                    }
                    text.push_str(&format!("; {acknowledged} failures acknowledged"));
                }
                next.status = S::Running;
                next.status_reason = RunStatusReason::None;
                next.status_message.clear();
                status_change(state, next, text)
            }
            RunEvent::Advance { expected_wave, initiator } => {
                if from == S::Paused && state.status_reason != RunStatusReason::WaveGate {
                    return refuse(format!(
                        "the run is paused for {}, not at a wave gate; resume it instead",
                        state.status_reason
                    ));
                }
                if let Err(why) = open_next_wave(&mut next, *expected_wave, now) {
                    return refuse(why);
                }
                if from == S::Paused {
                    next.status = S::Running;
                    next.status_reason = RunStatusReason::None;
                    next.status_message.clear();
                    let text = format!("wave {} opened by {initiator}", next.current_wave);
                    status_change(state, next, text)
                } else {
                    let id = next.id.clone();
                    (next, vec![Effect::PersistRun(id)])
                }
            }
            RunEvent::Finish => {
                if !state.counts.all_terminal() {
                    return refuse(format!(
                        "only {} of {} targets are terminal",
                        state.counts.terminal(),
                        state.counts.total()
                    ));
                }
                next.status = finished_status(state);
                next.status_reason = RunStatusReason::None;
                let c = &state.counts;
                next.status_message = format!(
                    "{} completed, {} failed, {} terminated, {} skipped",
                    c.completed, c.failed, c.terminated, c.skipped
                );
                next.finished_at = Some(now);
                let text = next.status_message.clone();
                status_change(state, next, text)
            }
            RunEvent::Cancel { initiator, reason } => {
                next.status = S::Cancelled;
                next.status_reason = RunStatusReason::None;
                next.status_message = match reason {
                    Some(reason) if !reason.is_empty() => {
                        format!("cancelled by {initiator}: {reason}")
                    }
                    _ => format!("cancelled by {initiator}"),
                };
                next.finished_at = Some(now);
                let text = next.status_message.clone();
                status_change(state, next, text)
            }
        };
        require_row::<Self>(from, kind, next.status)?;
        Ok((next, effects))
    }
}
