//! `application/problem+json` errors (RFC 9457): the one error shape of the HTTP API, the
//! mapping from [`CommandError`], and JSON body parsing whose errors name the offending field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use steward_proto::FieldError;
use steward_runtime::CommandError;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One API error.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The field a validation error is about (dotted path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What would have been allowed (states or events), for rejected transitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// Every validation problem, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    /// A problem with a status, a type slug and a detail.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:steward:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            allowed: None,
            errors: None,
        }
    }

    /// 400 about one field.
    pub fn validation(field: Option<String>, detail: impl Into<String>) -> Self {
        let mut problem = Self::new(StatusCode::BAD_REQUEST, "validation", detail);
        problem.title = "Invalid request".to_string();
        problem.field = field;
        problem
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 413.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", detail)
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        let detail = error.to_string();
        match error {
            CommandError::NotFound { .. } => Problem::not_found(detail),
            CommandError::IllegalTransition { message, allowed } => {
                let mut problem = Problem::new(StatusCode::CONFLICT, "illegal-transition", message);
                problem.title = "Transition not allowed".to_string();
                problem.allowed = Some(allowed);
                problem
            }
            CommandError::Invalid(errors) => {
                let mut problem = Problem::validation(
                    errors.first_field().map(str::to_string),
                    errors.to_string(),
                );
                problem.errors = Some(errors.0);
                problem
            }
            // The store refused the batch (its cause is in the detail); nothing changed, the
            // state was reloaded and the server keeps serving: try again later.
            CommandError::Store(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store", detail)
            }
            CommandError::ShuttingDown => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", detail)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// Parses a request body as JSON into `T`, with errors that name the field.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::validation(None, "the request body must be a JSON document"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::validation(None, format!("the request body is not valid JSON: {e}"))
    })?;
    parse_value(value)
}

/// Like [`parse_body`], but an empty body reads as `{}` (for optional bodies).
pub fn parse_optional_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_value(serde_json::Value::Object(serde_json::Map::new()));
    }
    parse_body(bytes)
}

/// Deserializes a JSON value into `T`; on error, finds the field the error is about.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Problem> {
    // Deserializing from the compact text (rather than the value) makes serde_json report the
    // column where it stopped, which names the field for type errors too.
    let text = value.to_string();
    match serde_json::from_str::<T>(&text) {
        Ok(parsed) => Ok(parsed),
        Err(error) => {
            let message = error.to_string();
            let message = message.split(" at line ").next().unwrap_or_default().to_string();
            let offset = error.column().saturating_sub(1);
            let at = path_at(&text, offset, message.starts_with("missing field"));
            let field = locate(&value, &message, at);
            Err(Problem::validation(field, message))
        }
    }
}

/// The field an error is about: the path where parsing stopped, refined by the name serde puts
/// between backticks (the missing field, or the unknown variant's position in the document).
fn locate(value: &serde_json::Value, message: &str, at: String) -> Option<String> {
    let name = between_backticks(message);
    if let (true, Some(name)) = (message.starts_with("missing field"), name) {
        return Some(if at.is_empty() { name.to_string() } else { format!("{at}.{name}") });
    }
    if let (true, Some(name)) = (message.starts_with("unknown variant"), name) {
        let mut path = Vec::new();
        if find(value, name, &mut path) {
            return Some(join(&path));
        }
    }
    // An empty list refused by its length: the error is about the list, not its first item.
    if let (true, Some(list)) = (message.starts_with("invalid length 0"), at.strip_suffix("[0]")) {
        return Some(list.to_string());
    }
    if !at.is_empty() {
        return Some(at);
    }
    name.map(str::to_string)
}

/// The path of the innermost key or array element open at byte `offset` of compact JSON text;
/// with `object_only`, the path of the innermost open object (for a missing field).
fn path_at(text: &str, offset: usize, object_only: bool) -> String {
    enum Frame {
        Object { key: Option<String>, expecting_key: bool },
        Array { index: usize },
    }
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() && i < offset {
        match bytes[i] {
            b'{' => stack.push(Frame::Object { key: None, expecting_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut()
                    && *expecting_key
                {
                    let raw = text.get(start..end.min(bytes.len())).unwrap_or_default();
                    *key = Some(serde_json::from_str(&format!("\"{raw}\"")).unwrap_or_default());
                    *expecting_key = false;
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    if object_only && let Some(Frame::Object { key, .. }) = stack.last_mut() {
        *key = None;
    }
    let mut path = Vec::new();
    for frame in stack {
        match frame {
            Frame::Object { key: Some(key), .. } => path.push(Step::Key(key)),
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push(Step::Index(index)),
        }
    }
    join(&path)
}

fn between_backticks(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

enum Step {
    Key(String),
    Index(usize),
}

fn join(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn find(value: &serde_json::Value, name: &str, path: &mut Vec<Step>) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            if map.contains_key(name) {
                path.push(Step::Key(name.to_string()));
                return true;
            }
            for (key, child) in map {
                if child.as_str() == Some(name) {
                    path.push(Step::Key(key.clone()));
                    return true;
                }
                path.push(Step::Key(key.clone()));
                if find(child, name, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        serde_json::Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                path.push(Step::Index(index));
                if child.as_str() == Some(name) || find(child, name, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use steward_proto::CreateRunRequest;

    #[test]
    fn unknown_nested_field_is_located() {
        let body = br#"{"operation":{"kind":"power_on"},"selector":{"all":true},
                        "policy":{"max_paralel_racks":2}}"#;
        let problem = parse_body::<CreateRunRequest>(body).unwrap_err();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.field.as_deref(), Some("policy.max_paralel_racks"));
    }

    #[test]
    fn unknown_variant_is_located() {
        let body = br#"{"operation":{"kind":"power_on"},"selector":{"all":true},
                        "policy":{"waves":{"percentag":[50,50]}}}"#;
        let problem = parse_body::<CreateRunRequest>(body).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("policy.waves.percentag"));
    }

    #[test]
    fn missing_field_is_named() {
        let problem = parse_body::<CreateRunRequest>(br#"{"selector":{"all":true}}"#).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("operation"));
    }

    #[test]
    fn type_errors_are_located() {
        let body = br#"{"operation":{"kind":"power_on"},"selector":{"all":true},
                        "policy":{"safety_gates":[{"failure_count":{"max":"two"}}]}}"#;
        let problem = parse_body::<CreateRunRequest>(body).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("policy.safety_gates[0].failure_count.max"));
        assert!(!problem.detail.contains("line"), "{}", problem.detail);
        let body = br#"{"operation":{"kind":"power_on"},"selector":{"racks":["a",7]}}"#;
        let problem = parse_body::<CreateRunRequest>(body).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("selector.racks[1]"));
    }

    #[test]
    fn nested_missing_field_is_located() {
        let body = br#"{"operation":{"kind":"firmware_update"},"selector":{"all":true}}"#;
        let problem = parse_body::<CreateRunRequest>(body).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("operation.version"), "{problem:?}");
    }

    #[test]
    fn path_scanner_handles_escapes() {
        assert_eq!(path_at(r#"{"a\"b":{"c":[1,2"#, 100, false), "a\"b.c[1]");
        assert_eq!(path_at(r#"{"a":1,"b":{"c":1},"d":"#, 100, false), "d");
        assert_eq!(path_at(r#"{"a":1,"b":{"c":1"#, 100, true), "b");
    }

    #[test]
    fn command_errors_map_to_statuses() {
        let p = Problem::from(CommandError::IllegalTransition {
            message: "no".into(),
            allowed: vec!["maintenance".into()],
        });
        assert_eq!((p.status, p.allowed.unwrap()), (409, vec!["maintenance".to_string()]));
        let p = Problem::from(CommandError::NotFound { what: "run".into(), id: "r".into() });
        assert_eq!(p.status, 404);
        let p = Problem::from(CommandError::ShuttingDown);
        assert_eq!(p.status, 503);
        let p = Problem::from(CommandError::Store("commit failed (disk full): sqlite".into()));
        assert_eq!(p.status, 503);
        assert!(p.detail.contains("disk full"), "{}", p.detail);
    }

    #[test]
    fn empty_optional_body_is_an_empty_object() {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Reason {
            reason: Option<String>,
        }
        let parsed: Reason = parse_optional_body(b"").unwrap();
        assert!(parsed.reason.is_none());
        assert!(parse_body::<Reason>(b"").is_err());
    }
}
