//! Path and query parameters checked like body fields: an id in a path follows the id rules of
//! [`steward_proto::check_id`], and a filter value must name something that exists (a misspelt
//! service state is a 400, as a misspelt phase is), so a typo never reads as "nothing matches".

use super::problem::Problem;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use steward_proto::check_id;
use steward_state_machine::TransitionTable;

/// The `{id}` (or `{name}`) segment of a route, checked against the id rules (400 naming `id`).
#[derive(Clone, Debug)]
pub struct ValidId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ValidId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::validation(Some("id".into()), e.body_text()))?;
        check_id(&id).map_err(|message| Problem::validation(Some("id".into()), message))?;
        Ok(ValidId(id))
    }
}

/// Checks a `service_state` filter value against the site's service table.
pub fn check_service_state(table: &TransitionTable, value: &str) -> Result<(), Problem> {
    if table.states.iter().any(|s| s == value) {
        return Ok(());
    }
    let mut problem = Problem::validation(
        Some("service_state".into()),
        format!("unknown service state {value:?}; expected one of {}", table.states.join(", ")),
    );
    problem.allowed = Some(table.states.clone());
    Err(problem)
}

/// Checks a `rack` filter value against the id rules.
pub fn check_rack_filter(value: &str) -> Result<(), Problem> {
    check_id(value).map_err(|message| Problem::validation(Some("rack".into()), message))
}
