//! The phase-mapping override document: per-kind raw word -> phase, per-phase blocked classes.

use crate::component::{ComponentKind, OperationClass, Phase};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Overrides of the default status tables, merged over the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct PhaseMappingOverride {
    /// Per kind: raw controller word (compute: the part before `/`; JSON kinds: the `state` tag)
    /// to phase. Replaces or adds single words; the rest of the default table stays.
    pub words: BTreeMap<ComponentKind, BTreeMap<String, Phase>>,
    /// Per phase: the classes it blocks. `unknown` always blocks everything whatever this says.
    pub blocked: BTreeMap<Phase, Vec<OperationClass>>,
}
