//! Run creation planning: selector -> racks -> ordered targets -> frozen waves.
//!
//! Pure: the same fleet, request, id and `now` give the same run. Decisions (documented for
//! operators and the API):
//! - a selector names exactly one of `racks`, `components`, `labels`, `all: true`;
//! - explicit rack or component ids must exist and appear once; `exclude_runs` must name
//!   existing runs; every problem is reported with its field path (`selector.racks[3]`);
//! - each rack is narrowed to the selected components (`components`, `kinds`, and the kinds a
//!   firmware update applies to); an explicitly listed rack left with no component is an error,
//!   a rack matched by labels or `all` with no component is left out;
//! - a wave split that would leave a wave empty is an error (`equal` with more waves than
//!   targets, `percentage` too fine for the selection, `count` sizes adding up to more than the
//!   selection); we never silently reshape what the operator asked for.

use crate::order::{round_robin, shuffle};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use steward_proto::{
    ComponentId, CreateRunRequest, FieldError, Operation, Ordering, RackId, Run, RunId, RunStatus,
    RunStatusReason, Selector, StatusCounts, Target, Timestamp, ValidationErrors, Wave, WaveSpec,
    validate_id,
};
use steward_state_machine::Fleet;

/// A planned run: what `RunCreated` carries.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// The run, status `pending`, current wave 1, waves with sizes and zero counts except
    /// `pending`.
    pub run: Run,
    /// Its targets in dispatch order (wave by wave), status `pending`, attempt 1.
    pub targets: Vec<Target>,
}

/// Why a run cannot be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// The request is malformed: every problem with its field path.
    #[error("invalid run request: {0}")]
    Invalid(ValidationErrors),
    /// The selection resolved to no target.
    #[error("the selection has no targets: {why}")]
    NoTargets {
        /// What matched and what was left out, with numbers.
        why: String,
    },
    /// The policy is valid on its own but cannot be applied to this selection.
    #[error("{field}: cannot be satisfied: {why}")]
    Unsatisfiable {
        /// The policy field, e.g. `policy.waves.equal.count`.
        field: String,
        /// Why, with the numbers.
        why: String,
    },
    /// A run with this id already exists.
    #[error("run {0} already exists")]
    DuplicateRun(RunId),
}

impl CreateError {
    /// The field the error is about, for `problem+json`'s `field`.
    pub fn field(&self) -> Option<&str> {
        match self {
            CreateError::Invalid(errors) => errors.first_field(),
            CreateError::NoTargets { .. } => Some("selector"),
            CreateError::Unsatisfiable { field, .. } => Some(field),
            CreateError::DuplicateRun(_) => None,
        }
    }
}

/// A rack chosen by the selector with its selected components.
struct Chosen {
    rack: RackId,
    components: Vec<ComponentId>,
}

/// Plans a run from `request`: resolves the selector, orders the racks, splits them into waves.
/// Creates nothing; the caller logs `RunCreated` with the result (or shows it as a dry run).
pub fn plan_run(
    fleet: &Fleet,
    request: &CreateRunRequest,
    run_id: RunId,
    initiator: &str,
    now: Timestamp,
) -> Result<NewRun, CreateError> {
    if fleet.runs.contains_key(&run_id) {
        return Err(CreateError::DuplicateRun(run_id));
    }
    let mut errors = Vec::new();
    if let Err(policy_errors) = request.policy.validate("policy") {
        errors.extend(policy_errors.0);
    }
    if let Err(bound_errors) = request.policy.validate_bounds("policy") {
        errors.extend(bound_errors.0);
    }
    let table = &fleet.config.service_table;
    if let Err(state_errors) =
        request.policy.validate_service_states("policy", |s| table.contains(s))
    {
        errors.extend(state_errors.0);
    }
    let before = errors.len();
    validate_request_ids(request, &mut errors);
    if errors.len() > before {
        // Ids that break the rules are not looked up (nor echoed in "unknown rack" messages).
        return Err(CreateError::Invalid(ValidationErrors(errors)));
    }
    if let Operation::FirmwareUpdate { version, .. } = &request.operation
        && version.trim().is_empty()
    {
        errors.push(FieldError::new("operation.version", "must name a firmware version"));
    }
    let selection = resolve_selector(fleet, &request.selector, &request.operation, &mut errors);
    ValidationErrors::from_vec(errors).map_err(CreateError::Invalid)?;
    let (chosen, dropped) = selection;
    if chosen.is_empty() {
        return Err(CreateError::NoTargets { why: dropped });
    }

    let ordered = order(fleet, chosen, &request.policy.ordering);
    let sizes = wave_sizes(&request.policy.waves, ordered.len())?;

    let mut targets = Vec::with_capacity(ordered.len());
    let mut waves = Vec::with_capacity(sizes.len());
    let mut rest = ordered.into_iter();
    for (index, size) in sizes.iter().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        for chosen in rest.by_ref().take(*size) {
            let mut target =
                Target::pending(&run_id, chosen.rack, number, Arc::from(chosen.components), now);
            target.message = format!("planned in wave {number}");
            targets.push(target);
        }
        let size = u32::try_from(*size).unwrap_or(u32::MAX);
        waves.push(Wave {
            number,
            size,
            counts: StatusCounts { pending: size, ..StatusCounts::default() },
            acknowledged_failures: 0,
            opened_at: None,
            finished_at: None,
        });
    }
    let total = u32::try_from(targets.len()).unwrap_or(u32::MAX);
    let name = request.name.clone().unwrap_or_else(|| {
        format!("{} on {total} rack{}", request.operation, if total == 1 { "" } else { "s" })
    });
    let run = Run {
        rerun_of: None,
        reruns: Vec::new(),
        id: run_id,
        name,
        operation: request.operation.clone(),
        selector: request.selector.clone(),
        policy: request.policy.clone(),
        status: RunStatus::Pending,
        status_reason: RunStatusReason::None,
        status_message: String::new(),
        current_wave: 1,
        waves,
        counts: StatusCounts { pending: total, ..StatusCounts::default() },
        initiator: initiator.to_string(),
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    };
    Ok(NewRun { run, targets })
}

/// Every id the request names (and its name) against the id rules of `steward_proto::check_id`.
fn validate_request_ids(request: &CreateRunRequest, errors: &mut Vec<FieldError>) {
    if let Some(name) = &request.name {
        validate_id("name", name, errors);
    }
    let selector = &request.selector;
    for (index, rack) in selector.racks.iter().flatten().enumerate() {
        validate_id(&format!("selector.racks[{index}]"), rack.as_str(), errors);
    }
    for (index, component) in selector.components.iter().flatten().enumerate() {
        validate_id(&format!("selector.components[{index}]"), component.as_str(), errors);
    }
    for (index, run) in selector.exclude_runs.iter().enumerate() {
        validate_id(&format!("selector.exclude_runs[{index}]"), run.as_str(), errors);
    }
}

/// Resolves the selector to racks with components. Returns the chosen racks and, for an empty
/// selection, a sentence saying what was matched and left out. Field problems go to `errors`.
fn resolve_selector(
    fleet: &Fleet,
    selector: &Selector,
    operation: &Operation,
    errors: &mut Vec<FieldError>,
) -> (Vec<Chosen>, String) {
    let forms = [
        selector.racks.is_some(),
        selector.components.is_some(),
        selector.labels.is_some(),
        selector.all.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 {
        errors.push(FieldError::new(
            "selector",
            "must have exactly one of racks, components, labels or all",
        ));
        return (Vec::new(), String::new());
    }

    // Racks excluded because earlier runs cover them.
    let mut excluded: BTreeSet<&RackId> = BTreeSet::new();
    for (index, run) in selector.exclude_runs.iter().enumerate() {
        match fleet.run_targets.get(run) {
            Some(ids) if fleet.runs.contains_key(run) => {
                excluded
                    .extend(ids.iter().filter_map(|t| fleet.targets.get(t)).map(|t| &t.rack_id));
            }
            _ => errors.push(FieldError::new(
                format!("selector.exclude_runs[{index}]"),
                format!("unknown run {run}"),
            )),
        }
    }

    // (rack, explicit component filter, field path when the rack was named explicitly)
    let mut candidates: Vec<(RackId, Option<BTreeSet<ComponentId>>, Option<String>)> = Vec::new();
    if let Some(racks) = &selector.racks {
        if racks.is_empty() {
            errors.push(FieldError::new("selector.racks", "must name at least one rack"));
        }
        let mut seen = BTreeSet::new();
        for (index, rack) in racks.iter().enumerate() {
            let path = format!("selector.racks[{index}]");
            if !fleet.racks.contains_key(rack) {
                errors.push(FieldError::new(path, format!("unknown rack {rack}")));
            } else if !seen.insert(rack) {
                errors.push(FieldError::new(path, format!("rack {rack} is listed twice")));
            } else {
                candidates.push((rack.clone(), None, Some(path)));
            }
        }
    } else if let Some(components) = &selector.components {
        if components.is_empty() {
            errors.push(FieldError::new("selector.components", "must name at least one component"));
        }
        let mut per_rack: BTreeMap<RackId, (usize, BTreeSet<ComponentId>)> = BTreeMap::new();
        for (index, id) in components.iter().enumerate() {
            let path = format!("selector.components[{index}]");
            match fleet.components.get(id) {
                None => errors.push(FieldError::new(path, format!("unknown component {id}"))),
                Some(entry) => {
                    let slot = per_rack
                        .entry(entry.component.rack_id.clone())
                        .or_insert_with(|| (index, BTreeSet::new()));
                    if !slot.1.insert(id.clone()) {
                        errors
                            .push(FieldError::new(path, format!("component {id} is listed twice")));
                    }
                }
            }
        }
        // Racks in the order their first component was named.
        let mut racks: Vec<(usize, RackId, BTreeSet<ComponentId>)> =
            per_rack.into_iter().map(|(rack, (first, set))| (first, rack, set)).collect();
        racks.sort_by_key(|(first, _, _)| *first);
        for (first, rack, set) in racks {
            candidates.push((rack, Some(set), Some(format!("selector.components[{first}]"))));
        }
    } else if let Some(labels) = &selector.labels {
        if labels.is_empty() {
            errors.push(FieldError::new(
                "selector.labels",
                "must name at least one label (use all: true for every rack)",
            ));
        }
        for rack in fleet.racks.values() {
            if labels.iter().all(|(k, v)| rack.labels.get(k) == Some(v)) {
                candidates.push((rack.id.clone(), None, None));
            }
        }
    } else if selector.all == Some(true) {
        candidates.extend(fleet.racks.keys().map(|id| (id.clone(), None, None)));
    } else {
        errors.push(FieldError::new("selector.all", "must be true when given"));
    }

    let matched = candidates.len();
    let mut excluded_count = 0usize;
    let mut empty_count = 0usize;
    let mut chosen = Vec::new();
    for (rack, filter, explicit) in candidates {
        if excluded.contains(&rack) {
            excluded_count += 1;
            continue;
        }
        let components: Vec<ComponentId> = fleet
            .rack_components
            .get(&rack)
            .map(|ids| {
                ids.iter()
                    .filter(|id| filter.as_ref().is_none_or(|f| f.contains(*id)))
                    .filter(|id| {
                        fleet.components.get(*id).is_some_and(|entry| {
                            let kind = entry.component.kind;
                            (selector.kinds.is_empty() || selector.kinds.contains(&kind))
                                && operation.applies_to(kind)
                        })
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if components.is_empty() {
            if let Some(path) = explicit {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "rack {rack} has no component that the selector's kinds and the \
                         operation {operation} apply to"
                    ),
                ));
            }
            empty_count += 1;
            continue;
        }
        chosen.push(Chosen { rack, components });
    }
    let why = format!(
        "{matched} rack(s) matched the selector, {excluded_count} already covered by the \
         excluded runs, {empty_count} with no component the kinds and the operation apply to"
    );
    (chosen, why)
}

fn order(fleet: &Fleet, mut chosen: Vec<Chosen>, ordering: &Ordering) -> Vec<Chosen> {
    match ordering {
        Ordering::AsGiven => chosen,
        Ordering::Random { seed } => {
            shuffle(&mut chosen, *seed);
            chosen
        }
        Ordering::OnePerRowRoundRobin => round_robin(chosen, |c| {
            fleet.racks.get(&c.rack).and_then(|rack| rack.location.row.clone()).unwrap_or_default()
        }),
    }
}

/// Wave sizes for `total` targets; every wave gets at least one target or it is an error.
pub fn wave_sizes(spec: &WaveSpec, total: usize) -> Result<Vec<usize>, CreateError> {
    match spec {
        WaveSpec::Equal { count } => {
            let count = *count as usize;
            if count == 0 || count > total {
                return Err(CreateError::Unsatisfiable {
                    field: "policy.waves.equal.count".into(),
                    why: format!(
                        "{count} equal waves need at least {count} targets, the selection has \
                         {total}"
                    ),
                });
            }
            // Extra targets go to the later waves, so early (canary-like) waves stay small.
            let base = total / count;
            let extra = total % count;
            Ok((0..count).map(|i| base + usize::from(i >= count - extra)).collect())
        }
        WaveSpec::Percentage(parts) => {
            let mut sizes = Vec::with_capacity(parts.len());
            let mut cumulative = 0u64;
            let mut end_before = 0usize;
            for (index, part) in parts.iter().enumerate() {
                cumulative = cumulative.saturating_add(u64::from(*part));
                // Round each cumulative boundary up so a small first wave still gets a target.
                let end = usize::try_from((total as u64).saturating_mul(cumulative).div_ceil(100))
                    .unwrap_or(total)
                    .min(total);
                if end <= end_before {
                    return Err(CreateError::Unsatisfiable {
                        field: "policy.waves.percentage".into(),
                        why: format!(
                            "percentages {parts:?} of {total} targets leave wave {} empty; use \
                             fewer waves or count sizes",
                            index + 1
                        ),
                    });
                }
                sizes.push(end - end_before);
                end_before = end;
            }
            Ok(sizes)
        }
        WaveSpec::Count(counts) => {
            let wanted = counts.iter().fold(0usize, |sum, c| sum.saturating_add(*c as usize));
            if wanted > total || counts.contains(&0) {
                return Err(CreateError::Unsatisfiable {
                    field: "policy.waves.count".into(),
                    why: format!(
                        "wave sizes {counts:?} need {wanted} targets, the selection has {total}"
                    ),
                });
            }
            let mut sizes: Vec<usize> = counts.iter().map(|c| *c as usize).collect();
            if wanted < total {
                sizes.push(total - wanted);
            }
            Ok(sizes)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn equal_puts_extra_targets_in_later_waves() {
        assert_eq!(wave_sizes(&WaveSpec::Equal { count: 3 }, 10).unwrap(), vec![3, 3, 4]);
        assert_eq!(wave_sizes(&WaveSpec::Equal { count: 1 }, 7).unwrap(), vec![7]);
        assert!(wave_sizes(&WaveSpec::Equal { count: 4 }, 3).is_err());
    }

    #[test]
    fn percentage_rounds_boundaries_up_and_refuses_empty_waves() {
        assert_eq!(
            wave_sizes(&WaveSpec::Percentage(vec![5, 25, 70]), 100).unwrap(),
            vec![5, 25, 70]
        );
        assert_eq!(wave_sizes(&WaveSpec::Percentage(vec![5, 95]), 10).unwrap(), vec![1, 9]);
        let err = wave_sizes(&WaveSpec::Percentage(vec![5, 25, 70]), 2).unwrap_err();
        assert!(err.to_string().contains("leave wave 2 empty"), "{err}");
    }

    #[test]
    fn count_adds_a_remainder_wave_and_refuses_too_large_sizes() {
        assert_eq!(wave_sizes(&WaveSpec::Count(vec![1, 3]), 10).unwrap(), vec![1, 3, 6]);
        assert_eq!(wave_sizes(&WaveSpec::Count(vec![1, 3]), 4).unwrap(), vec![1, 3]);
        let err = wave_sizes(&WaveSpec::Count(vec![1, 10]), 5).unwrap_err();
        assert_eq!(err.field(), Some("policy.waves.count"));
    }
}
