//! The `Machine` trait: one shape for the run, target and task machines, and the legality
//! checks every `step` shares.
//!
//! Each machine declares its transition table once, as a typed `const` slice of [`Row`]s.
//! `step` consults that same slice: an event whose (status, event kind) pair has no row is an
//! [`Rejected::IllegalTransition`]; an outcome whose (status, event kind, new status) row is
//! missing is refused as a [`Rejected::Guard`]. So the rendered table ([`Machine::table`]) and the
//! behaviour cannot drift apart: a wrong row changes what `step` accepts, and the legality tests
//! (`tests/legality_*.rs`) notice.

use crate::effect::Effect;
use crate::error::Rejected;
use crate::table::{Transition, TransitionTable};
use std::fmt;
use steward_proto::Timestamp;

/// One legal transition of a typed table: in `from`, event kind `event` may lead to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<S, K> {
    /// Status before.
    pub from: S,
    /// Event kind.
    pub event: K,
    /// Status after.
    pub to: S,
}

/// Shorthand for building table rows in `const` slices.
pub const fn row<S, K>(from: S, event: K, to: S) -> Row<S, K> {
    Row { from, event, to }
}

/// A pure state machine: `step(&state, &event, now) -> (state, effects)` or a rejection.
pub trait Machine {
    /// Machine name as it appears in errors and tables (`run`, `target`, `task`).
    const NAME: &'static str;
    /// The full state (a proto record).
    type State;
    /// Events with their data.
    type Event;
    /// The status part of the state that the table talks about.
    type Status: Copy + PartialEq + fmt::Debug + 'static;
    /// Event kinds without their data.
    type EventKind: Copy + PartialEq + fmt::Debug + 'static;

    /// The status a new state starts in.
    fn initial() -> Self::Status;
    /// Every status, in declaration order.
    fn statuses() -> &'static [Self::Status];
    /// Every event kind, in declaration order.
    fn event_kinds() -> &'static [Self::EventKind];
    /// The typed transition table `step` consults.
    fn rows() -> &'static [Row<Self::Status, Self::EventKind>];
    /// Wire name of a status.
    fn status_name(status: Self::Status) -> &'static str;
    /// Wire name of an event kind.
    fn event_name(kind: Self::EventKind) -> &'static str;
    /// Whether a status absorbs every event (it has no rows).
    fn is_terminal(status: Self::Status) -> bool;
    /// The status of a state.
    fn status(state: &Self::State) -> Self::Status;
    /// The kind of an event.
    fn kind(event: &Self::Event) -> Self::EventKind;
    /// Applies `event` to `state` at `now`. On `Err`, the caller keeps `state` unchanged.
    fn step(
        state: &Self::State,
        event: &Self::Event,
        now: Timestamp,
    ) -> Result<(Self::State, Vec<Effect>), Rejected>;

    /// The transition table as data (for rendering, the API and tests).
    fn table() -> TransitionTable {
        let name = |s: &Self::Status| Self::status_name(*s).to_string();
        TransitionTable {
            machine: Self::NAME.to_string(),
            initial: Self::status_name(Self::initial()).to_string(),
            states: Self::statuses().iter().map(name).collect(),
            terminal: Self::statuses()
                .iter()
                .filter(|s| Self::is_terminal(**s))
                .map(name)
                .collect(),
            events: Self::event_kinds().iter().map(|k| Self::event_name(*k).to_string()).collect(),
            transitions: Self::rows()
                .iter()
                .map(|r| Transition {
                    from: Self::status_name(r.from).to_string(),
                    event: Self::event_name(r.event).to_string(),
                    to: Self::status_name(r.to).to_string(),
                })
                .collect(),
        }
    }

    /// Whether the table has any row for (`from`, `kind`).
    fn pair_allowed(from: Self::Status, kind: Self::EventKind) -> bool {
        Self::rows().iter().any(|r| r.from == from && r.event == kind)
    }

    /// Whether the table has the row (`from`, `kind`, `to`).
    fn row_exists(from: Self::Status, kind: Self::EventKind, to: Self::Status) -> bool {
        Self::rows().iter().any(|r| r.from == from && r.event == kind && r.to == to)
    }

    /// Event kinds the table allows from `from`, in table order, without repeats.
    fn allowed_events(from: Self::Status) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for r in Self::rows().iter().filter(|r| r.from == from) {
            let name = Self::event_name(r.event);
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

/// `Ok` when the table has a row for (`from`, `kind`); otherwise the `IllegalTransition`.
pub fn require_pair<M: Machine + ?Sized>(
    from: M::Status,
    kind: M::EventKind,
) -> Result<(), Rejected> {
    if M::pair_allowed(from, kind) {
        Ok(())
    } else {
        Err(Rejected::IllegalTransition {
            machine: M::NAME,
            from: M::status_name(from),
            event: M::event_name(kind),
            allowed: M::allowed_events(from),
        })
    }
}

/// `Ok` when the table has the row (`from`, `kind`, `to`); otherwise a `Guard` rejection saying
/// the outcome the event's data leads to is not a legal transition.
pub fn require_row<M: Machine + ?Sized>(
    from: M::Status,
    kind: M::EventKind,
    to: M::Status,
) -> Result<(), Rejected> {
    if M::row_exists(from, kind, to) {
        Ok(())
    } else {
        Err(guard::<M>(
            from,
            kind,
            format!(
                "the event's data leads to {}, and {} -> {} on {} is not in the table",
                M::status_name(to),
                M::status_name(from),
                M::status_name(to),
                M::event_name(kind)
            ),
        ))
    }
}

/// A `Guard` rejection for machine `M`.
pub fn guard<M: Machine + ?Sized>(from: M::Status, kind: M::EventKind, why: String) -> Rejected {
    Rejected::Guard {
        machine: M::NAME,
        from: M::status_name(from),
        event: M::event_name(kind),
        why,
    }
}
