//! Component status derivation: raw Core controller state -> phase, reason, blocked classes.
//!
//! Owns the per-kind word tables of DESIGN §3.2 (held as data so config overrides merge over
//! them), the per-phase blocking table, the observation step (identical re-observation: no
//! effect) and the staleness rule. `unknown` blocks every class, always; no override can change
//! that.

use crate::effect::{Effect, Notification};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use steward_proto::{
    BlockedOperations, ComponentId, ComponentKind, ComponentStatus, OperationClass, Phase,
    PhaseMappingOverride, Timestamp,
};

/// Reason of an unknown status when Core gave no controller state at all.
pub const NO_STATE_REASON: &str = "no controller state from Core";

/// Longest reason kept (in bytes, cut at a character boundary); longer raw strings are cut.
pub const MAX_REASON_LEN: usize = 200;

/// Default compute table: the word before the first `/` of the host-state display string.
const COMPUTE_DEFAULTS: &[(&str, Phase)] = &[
    ("Ready", Phase::Ready),
    ("StartAssignmentCycle", Phase::Ready),
    ("Created", Phase::Initializing),
    ("DPUDiscovering", Phase::Initializing),
    ("DPUInitializing", Phase::Initializing),
    ("HostInitializing", Phase::Initializing),
    ("Measuring", Phase::Initializing),
    ("PreAssignedMeasuring", Phase::Initializing),
    ("PostAssignedMeasuring", Phase::Initializing),
    ("BomValidating", Phase::Initializing),
    ("Assigned", Phase::InUse),
    ("WaitingForCleanup", Phase::InUse),
    ("Reprovisioning", Phase::InUse),
    ("HostReprovisioning", Phase::InUse),
    ("Failed", Phase::Error),
    ("ForceDeletion", Phase::Deleting),
];

/// Default nvswitch table (also the node vocabulary): the JSON `state` tag.
const NVSWITCH_DEFAULTS: &[(&str, Phase)] = &[
    ("ready", Phase::Ready),
    ("created", Phase::Initializing),
    ("initializing", Phase::Initializing),
    ("configuring", Phase::Initializing),
    ("validating", Phase::Initializing),
    ("bomvalidating", Phase::Initializing),
    ("reprovisioning", Phase::InUse),
    ("error", Phase::Error),
    ("deleting", Phase::Deleting),
];

/// Default power-shelf table: the JSON `state` tag.
const POWER_SHELF_DEFAULTS: &[(&str, Phase)] = &[
    ("ready", Phase::Ready),
    ("initializing", Phase::Initializing),
    ("fetchingdata", Phase::Initializing),
    ("configuring", Phase::Initializing),
    ("maintenance", Phase::InUse),
    ("error", Phase::Error),
    ("deleting", Phase::Deleting),
];

/// The default word table of `kind` (DESIGN §3.2), as static data.
pub fn default_words(kind: ComponentKind) -> &'static [(&'static str, Phase)] {
    match kind {
        ComponentKind::Compute => COMPUTE_DEFAULTS,
        ComponentKind::Nvswitch | ComponentKind::Node => NVSWITCH_DEFAULTS,
        ComponentKind::PowerShelf => POWER_SHELF_DEFAULTS,
    }
}

/// The default blocking of `phase`: `ready` blocks nothing, every other phase blocks all.
pub fn default_blocked(phase: Phase) -> BlockedOperations {
    match phase {
        Phase::Ready => BlockedOperations::NONE,
        _ => BlockedOperations::ALL,
    }
}

/// Why a phase-mapping override was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The override tried to make `unknown` block less than every class.
    #[error(
        "phase {phase} must block every operation class (fail closed); the override asks it to block only [{}]",
        .requested.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    )]
    UnknownMustBlockAll {
        /// The phase (always `unknown`).
        phase: Phase,
        /// The classes the override asked for.
        requested: Vec<OperationClass>,
    },
    /// A word in the override is empty or only whitespace (it could never match).
    #[error("{kind}: an override word is empty; words must be non-empty controller states")]
    EmptyWord {
        /// The kind whose table holds the word.
        kind: ComponentKind,
    },
    /// A compute word contains `/`; only the part before the first `/` is ever looked up.
    #[error(
        "compute: override word {word:?} contains '/'; only the part before the first '/' decides"
    )]
    WordContainsSlash {
        /// The word.
        word: String,
    },
}

/// Per-kind word tables and per-phase blocking: how raw Core states become statuses.
///
/// Built from the defaults of DESIGN §3.2, optionally with a config override merged over them.
/// Deserializing a mapper reads a [`PhaseMappingOverride`] and merges it over the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PhaseMappingOverride")]
pub struct StatusMapper {
    /// Word tables indexed by [`kind_index`].
    words: [BTreeMap<String, Phase>; 4],
    /// Blocked classes indexed by [`phase_index`].
    blocked: [BlockedOperations; 6],
}

fn kind_index(kind: ComponentKind) -> usize {
    match kind {
        ComponentKind::Compute => 0,
        ComponentKind::Nvswitch => 1,
        ComponentKind::PowerShelf => 2,
        ComponentKind::Node => 3,
    }
}

fn phase_index(phase: Phase) -> usize {
    match phase {
        Phase::Unknown => 0,
        Phase::Initializing => 1,
        Phase::Ready => 2,
        Phase::InUse => 3,
        Phase::Error => 4,
        Phase::Deleting => 5,
    }
}

fn table_of(words: &[(&str, Phase)]) -> BTreeMap<String, Phase> {
    words.iter().map(|(word, phase)| ((*word).to_string(), *phase)).collect()
}

impl Default for StatusMapper {
    fn default() -> Self {
        Self {
            words: ComponentKind::ALL.map(|kind| table_of(default_words(kind))),
            blocked: Phase::ALL.map(default_blocked),
        }
    }
}

/// The JSON form of JSON-tagged controller states: only `state` is read, the rest ignored.
#[derive(Deserialize)]
struct TaggedState<'a> {
    #[serde(borrow)]
    state: Cow<'a, str>,
}

/// How a raw string was read before the table lookup.
enum Decoded<'a> {
    /// Nothing usable from Core.
    Empty,
    /// The word to look up.
    Word(Cow<'a, str>),
    /// JSON that did not decode to an object with a string `state`.
    Undecodable,
}

/// Cuts `text` to at most [`MAX_REASON_LEN`] bytes at a character boundary.
fn clip(text: &str) -> &str {
    if text.len() <= MAX_REASON_LEN {
        return text;
    }
    let mut end = MAX_REASON_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `prefix` followed by `raw` cut to [`MAX_REASON_LEN`] (with `...` when cut): one allocation.
fn clipped_reason(prefix: &str, raw: &str) -> String {
    let cut = clip(raw);
    let ellipsis = if cut.len() < raw.len() { "..." } else { "" };
    let mut reason = String::with_capacity(prefix.len() + cut.len() + ellipsis.len());
    reason.push_str(prefix);
    reason.push_str(cut);
    reason.push_str(ellipsis);
    reason
}

/// JSON's own whitespace (RFC 8259): the only padding a JSON document may carry.
fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn decode_json(raw: &str) -> Decoded<'_> {
    let raw = raw.trim_matches(is_json_space);
    // Only a JSON object counts (serde would also accept `["ready"]` for a one-field struct).
    if !raw.starts_with('{') {
        return Decoded::Undecodable;
    }
    match serde_json::from_str::<TaggedState<'_>>(raw) {
        Ok(tagged) => Decoded::Word(tagged.state),
        Err(_) => Decoded::Undecodable,
    }
}

impl TryFrom<PhaseMappingOverride> for StatusMapper {
    type Error = MappingError;

    fn try_from(o: PhaseMappingOverride) -> Result<Self, Self::Error> {
        Self::with_override(&o)
    }
}

impl StatusMapper {
    /// The defaults with `o` merged over them: words replace or add single entries, blocking
    /// replaces the listed phases. Refuses an override that makes `unknown` block less than all.
    pub fn with_override(o: &PhaseMappingOverride) -> Result<Self, MappingError> {
        let mut mapper = Self::default();
        for (kind, words) in &o.words {
            for (word, phase) in words {
                if word.trim().is_empty() {
                    return Err(MappingError::EmptyWord { kind: *kind });
                }
                if *kind == ComponentKind::Compute && word.contains('/') {
                    return Err(MappingError::WordContainsSlash { word: word.clone() });
                }
                mapper.words[kind_index(*kind)].insert(word.clone(), *phase);
            }
        }
        for (phase, classes) in &o.blocked {
            let set = BlockedOperations::from_classes(classes.iter().copied());
            if *phase == Phase::Unknown && set != BlockedOperations::ALL {
                return Err(MappingError::UnknownMustBlockAll {
                    phase: *phase,
                    requested: set.classes(),
                });
            }
            mapper.blocked[phase_index(*phase)] = set;
        }
        Ok(mapper)
    }

    /// The classes `phase` blocks. `unknown` blocks every class whatever the tables say.
    pub fn blocked_for(&self, phase: Phase) -> BlockedOperations {
        if phase == Phase::Unknown {
            return BlockedOperations::ALL;
        }
        self.blocked[phase_index(phase)]
    }

    /// The word table of `kind`, sorted by word (for rendering and docs).
    pub fn words(&self, kind: ComponentKind) -> Vec<(&str, Phase)> {
        self.words[kind_index(kind)].iter().map(|(word, phase)| (word.as_str(), *phase)).collect()
    }

    /// The phase `word` maps to in `kind`'s table, if listed.
    pub fn lookup(&self, kind: ComponentKind, word: &str) -> Option<Phase> {
        self.words[kind_index(kind)].get(word).copied()
    }

    fn status(&self, phase: Phase, reason: String) -> ComponentStatus {
        ComponentStatus { phase, reason, blocked_operations: self.blocked_for(phase) }
    }

    /// Derives the status of a component of `kind` from Core's raw state. Never panics; anything
    /// not understood is `unknown` with every class blocked.
    pub fn derive(&self, kind: ComponentKind, raw: &str) -> ComponentStatus {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return ComponentStatus::unknown(NO_STATE_REASON);
        }
        let decoded = match kind {
            ComponentKind::Compute => {
                let head = trimmed.split('/').next().unwrap_or("").trim();
                if head.is_empty() { Decoded::Empty } else { Decoded::Word(Cow::Borrowed(head)) }
            }
            ComponentKind::Nvswitch | ComponentKind::PowerShelf => decode_json(raw),
            ComponentKind::Node => {
                if trimmed.starts_with('{') {
                    decode_json(raw)
                } else {
                    Decoded::Word(Cow::Borrowed(trimmed))
                }
            }
        };
        match decoded {
            Decoded::Empty => {
                ComponentStatus::unknown(clipped_reason("no controller state before '/': ", raw))
            }
            Decoded::Undecodable => {
                ComponentStatus::unknown(clipped_reason("undecodable controller state: ", raw))
            }
            Decoded::Word(word) => match self.lookup(kind, &word) {
                Some(phase) => self.status(phase, clipped_reason("", raw)),
                // Compute: validation sub-states carry no known prefix, so any other non-empty
                // word is initializing. JSON kinds: an unknown tag is unknown (fail closed).
                None if kind == ComponentKind::Compute => {
                    self.status(Phase::Initializing, clipped_reason("", raw))
                }
                None => {
                    ComponentStatus::unknown(clipped_reason("unrecognized controller state: ", raw))
                }
            },
        }
    }

    /// One observation step. `None` when `raw` equals `previous_raw` (identical re-observation:
    /// no effect, no write). Otherwise the new status with `[PersistComponentStatus(id)]`, plus a
    /// `ComponentPhaseChanged` notification when the phase changed (from the previous status's
    /// phase, or `unknown` when there was none).
    pub fn observe(
        &self,
        id: &ComponentId,
        kind: ComponentKind,
        previous_raw: Option<&str>,
        previous: Option<&ComponentStatus>,
        raw: &str,
    ) -> Option<(ComponentStatus, Vec<Effect>)> {
        if previous_raw == Some(raw) {
            return None;
        }
        let status = self.derive(kind, raw);
        let from = previous.map_or(Phase::Unknown, |p| p.phase);
        let mut effects = Vec::with_capacity(2);
        effects.push(Effect::PersistComponentStatus(id.clone()));
        if from != status.phase {
            effects.push(Effect::Notify(Notification::ComponentPhaseChanged {
                component_id: id.clone(),
                from,
                to: status.phase,
            }));
        }
        Some((status, effects))
    }
}

/// Whether a status last observed at `last` counts as stale at `now`.
///
/// Never observed (`last` is `None`, e.g. after a restart before the first sync) is always
/// stale. `max_age` of `None`, zero or negative disables the age check. A status exactly
/// `max_age` old is still fresh; one observed "in the future" (clock skew) is fresh.
pub fn is_stale(
    last: Option<Timestamp>,
    now: Timestamp,
    max_age: Option<chrono::Duration>,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    match max_age {
        Some(max_age) if max_age > chrono::Duration::zero() => now - last > max_age,
        _ => false,
    }
}

/// The status a reader should act on: `unknown` (all blocked) when never observed or stale,
/// otherwise the stored status.
pub fn effective_status(
    status: Option<&ComponentStatus>,
    last: Option<Timestamp>,
    now: Timestamp,
    max_age: Option<chrono::Duration>,
) -> ComponentStatus {
    match status {
        None => ComponentStatus::unknown("never observed"),
        Some(_) if is_stale(last, now, max_age) => match last {
            None => ComponentStatus::unknown("not re-observed since restart"),
            Some(last) => ComponentStatus::unknown(format!("stale: last observed at {last}")),
        },
        Some(status) => status.clone(),
    }
}

/// Turns a component's status into unknown (stale), forgetting the raw state so that the next
/// observation, even of the same raw state, derives the status again (and notifies the change).
/// Nothing happens (no effects) when it is already stale.
pub(crate) fn make_stale(
    id: &ComponentId,
    raw_state: &mut Option<String>,
    status: &mut Option<ComponentStatus>,
    last_observed_at: Timestamp,
) -> Vec<Effect> {
    if raw_state.is_none() && status.as_ref().is_none_or(|s| s.phase == Phase::Unknown) {
        return Vec::new();
    }
    let from = status.as_ref().map_or(Phase::Unknown, |s| s.phase);
    *raw_state = None;
    *status = Some(ComponentStatus::unknown(format!("stale: last observed at {last_observed_at}")));
    let mut effects = vec![Effect::PersistComponentStatus(id.clone())];
    if from != Phase::Unknown {
        effects.push(Effect::Notify(Notification::ComponentPhaseChanged {
            component_id: id.clone(),
            from,
            to: Phase::Unknown,
        }));
    }
    effects
}
