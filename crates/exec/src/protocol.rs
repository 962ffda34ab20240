//! The wire protocol between Steward and the site's commands, as pure functions: the request
//! document and environment an operation command gets, the JSON lines it prints, the verdict
//! on a finished command, and the observe command's JSON array.
//!
//! Operation commands print one JSON object per line on stdout:
//! - progress: `{"component":"c1","status":"running","message":"flashing"}` (`status` is
//!   `pending`, `running`, `completed` or `failed`; `message` optional);
//! - the final result: `{"result":{"c1":"completed","c2":{"status":"failed","message":"..."}}}`
//!   (per component a final status word, or an object with `status` and `message`).
//!
//! Blank lines are ignored; anything else (not JSON, an unknown field, a component the request
//! did not name, a non-final status in the result) is malformed and fails the task. The task
//! completes only when the command exits 0 and its result says `completed` for every component.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use steward_proto::{ComponentId, ComponentKind, Observation, Operation, RackId, check_id};
use steward_runtime::core::TaskRequest;

/// Longest accepted stdout line of an operation command, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// A component's state as a command reports it (and as the journal keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Not started.
    Pending,
    /// Being worked on.
    Running,
    /// Done.
    Completed,
    /// Failed.
    Failed,
    /// Never started (the task was cancelled before its command started).
    Terminated,
}

impl ComponentState {
    /// The journal word.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Pending => "pending",
            ComponentState::Running => "running",
            ComponentState::Completed => "completed",
            ComponentState::Failed => "failed",
            ComponentState::Terminated => "terminated",
        }
    }

    /// Reads a journal word (anything unknown reads as running: not final, not done).
    pub fn from_word(word: &str) -> ComponentState {
        match word {
            "pending" => ComponentState::Pending,
            "completed" => ComponentState::Completed,
            "failed" => ComponentState::Failed,
            "terminated" => ComponentState::Terminated,
            _ => ComponentState::Running,
        }
    }

    fn is_final(self) -> bool {
        matches!(self, ComponentState::Completed | ComponentState::Failed)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressLine {
    component: String,
    status: ComponentState,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultLine {
    result: BTreeMap<String, ResultEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResultEntry {
    Word(ComponentState),
    Detailed {
        status: ComponentState,
        #[serde(default)]
        message: String,
    },
}

/// One understood line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A progress report for one component.
    Progress {
        /// The component.
        component: ComponentId,
        /// Its state.
        status: ComponentState,
        /// The command's message.
        message: String,
    },
    /// The final per-component result.
    Result(BTreeMap<ComponentId, (ComponentState, String)>),
}

/// Parses one stdout line against the request's components. `Ok(None)` for a blank line.
pub fn parse_line(line: &str, components: &BTreeSet<ComponentId>) -> Result<Option<Line>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if line.len() > MAX_LINE_BYTES {
        return Err(format!("line longer than {MAX_LINE_BYTES} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let known = |name: &str| -> Result<ComponentId, String> {
        let id = ComponentId::new(name);
        if components.contains(&id) {
            Ok(id)
        } else {
            Err(format!("component {name:?} is not part of the task"))
        }
    };
    if value.get("result").is_some() {
        let parsed: ResultLine = serde_json::from_value(value).map_err(|e| {
            format!("bad result line ({e}); expected {{\"result\":{{\"ID\":\"completed\"}}}}")
        })?;
        let mut result = BTreeMap::new();
        for (name, entry) in parsed.result {
            let (status, message) = match entry {
                ResultEntry::Word(status) => (status, String::new()),
                ResultEntry::Detailed { status, message } => (status, message),
            };
            if !status.is_final() {
                return Err(format!(
                    "result for {name:?} is {:?}; a result is completed or failed",
                    status.as_str()
                ));
            }
            result.insert(known(&name)?, (status, message));
        }
        return Ok(Some(Line::Result(result)));
    }
    let parsed: ProgressLine = serde_json::from_value(value).map_err(|e| {
        format!("bad progress line ({e}); expected {{\"component\",\"status\",\"message\"}}")
    })?;
    if parsed.status == ComponentState::Terminated {
        return Err("status \"terminated\" is Steward's own; report failed".into());
    }
    Ok(Some(Line::Progress {
        component: known(&parsed.component)?,
        status: parsed.status,
        message: parsed.message,
    }))
}

/// What is known about a running or finished command from its stdout so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Per component: state and last message.
    pub components: BTreeMap<ComponentId, (ComponentState, String)>,
    /// Whether a result line was seen.
    pub result_seen: bool,
    /// The first malformed line (its number and what is wrong), if any.
    pub malformed: Option<String>,
    lines: usize,
}

impl Progress {
    /// Every component pending.
    pub fn new(components: &[ComponentId]) -> Progress {
        Progress {
            components: components
                .iter()
                .map(|c| (c.clone(), (ComponentState::Pending, String::new())))
                .collect(),
            result_seen: false,
            malformed: None,
            lines: 0,
        }
    }

    /// Applies one stdout line; returns the components whose state or message changed.
    pub fn feed(&mut self, line: &str) -> Vec<ComponentId> {
        self.lines += 1;
        let names: BTreeSet<ComponentId> = self.components.keys().cloned().collect();
        let parsed = match parse_line(line, &names) {
            Ok(parsed) => parsed,
            Err(error) => {
                if self.malformed.is_none() {
                    self.malformed = Some(format!("malformed stdout line {}: {error}", self.lines));
                }
                return Vec::new();
            }
        };
        let updates: Vec<(ComponentId, ComponentState, String)> = match parsed {
            None => return Vec::new(),
            Some(Line::Progress { component, status, message }) => {
                vec![(component, status, message)]
            }
            Some(Line::Result(result)) => {
                self.result_seen = true;
                result.into_iter().map(|(c, (s, m))| (c, s, m)).collect()
            }
        };
        let mut changed = Vec::new();
        for (component, status, message) in updates {
            if let Some(entry) = self.components.get_mut(&component) {
                let next = (status, message);
                if *entry != next {
                    *entry = next;
                    changed.push(component);
                }
            }
        }
        changed
    }

    /// The verdict once the command is gone.
    pub fn verdict(&self, exit: &Exit, stderr_last: &str) -> Verdict {
        let with_stderr = |cause: String| {
            if stderr_last.is_empty() { cause } else { format!("{cause}: {stderr_last}") }
        };
        let failure = match exit {
            Exit::TimedOut(seconds) => {
                Some(format!("timed out after {seconds} s; its process group was killed"))
            }
            Exit::Code(code) if *code != 0 => Some(with_stderr(format!("exit status {code}"))),
            Exit::Signal => Some(with_stderr("killed by a signal".to_string())),
            _ if self.malformed.is_some() => {
                Some(with_stderr(self.malformed.clone().unwrap_or_default()))
            }
            Exit::Code(_) if !self.result_seen => {
                Some(with_stderr("exited 0 without a final result line".to_string()))
            }
            Exit::Gone if !self.result_seen => Some(
                "steward restarted while the command ran; the command is gone and printed no \
                 result line, so its outcome is unknown (it is never started twice)"
                    .to_string(),
            ),
            _ => None,
        };
        let mut components = BTreeMap::new();
        for (component, (state, message)) in &self.components {
            let done =
                *state == ComponentState::Completed && (self.result_seen || failure.is_some());
            let entry = if done {
                (ComponentState::Completed, message.clone())
            } else if *state == ComponentState::Failed {
                (ComponentState::Failed, message.clone())
            } else {
                let why = match &failure {
                    Some(failure) => failure.clone(),
                    None => "no result reported for this component".to_string(),
                };
                (ComponentState::Failed, why)
            };
            components.insert(component.clone(), entry);
        }
        let message = match failure {
            Some(message) => message,
            None => {
                let failed: Vec<String> = components
                    .iter()
                    .filter(|(_, (s, _))| *s != ComponentState::Completed)
                    .map(
                        |(c, (_, m))| {
                            if m.is_empty() { c.to_string() } else { format!("{c}: {m}") }
                        },
                    )
                    .collect();
                if failed.is_empty() {
                    let all = format!("all {} components completed", components.len());
                    match exit {
                        Exit::Gone => format!("{all} (result read after a restart)"),
                        _ => all,
                    }
                } else {
                    format!("failed: {}", failed.join("; "))
                }
            }
        };
        let ok = components.values().all(|(s, _)| *s == ComponentState::Completed)
            && !message.starts_with("failed")
            && self.malformed.is_none()
            && matches!(exit, Exit::Code(0) | Exit::Gone)
            && self.result_seen;
        Verdict { ok, message, components }
    }
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal,
    /// Steward killed its process group after this many seconds.
    TimedOut(u64),
    /// It ended while Steward was down (or was not Steward's child): no exit status is known,
    /// so its result line decides.
    Gone,
}

/// The outcome of a finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the task completed.
    pub ok: bool,
    /// The task's message.
    pub message: String,
    /// Final state and message per component.
    pub components: BTreeMap<ComponentId, (ComponentState, String)>,
}

/// The last non-blank line of `text`, trimmed and clipped to 500 characters.
pub fn last_line(text: &str) -> String {
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    line.chars().take(500).collect()
}

/// The JSON document an operation command reads on stdin.
pub fn request_document(task_id: &str, request: &TaskRequest) -> String {
    serde_json::json!({
        "task_id": task_id,
        "idempotency_key": request.idempotency_key,
        "run_id": request.run_id,
        "target_id": request.target_id,
        "rack_id": request.rack_id,
        "operation": request.operation,
        "components": request.components,
    })
    .to_string()
}

/// The environment an operation command gets (besides Steward's own).
pub fn request_env(task_id: &str, request: &TaskRequest) -> Vec<(&'static str, String)> {
    let components: Vec<&str> = request.components.iter().map(|c| c.as_str()).collect();
    let mut env = vec![
        ("STEWARD_TASK_ID", task_id.to_string()),
        ("STEWARD_TASK_KEY", request.idempotency_key.to_string()),
        ("STEWARD_RUN_ID", request.run_id.to_string()),
        ("STEWARD_TARGET_ID", request.target_id.to_string()),
        ("STEWARD_RACK_ID", request.rack_id.to_string()),
        ("STEWARD_OPERATION", request.operation.kind().as_str().to_string()),
        ("STEWARD_COMPONENTS", components.join("\n")),
    ];
    if let Operation::FirmwareUpdate { version, .. } = &request.operation {
        env.push(("STEWARD_FIRMWARE_VERSION", version.clone()));
    }
    env
}

/// One entry of the observe command's array.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObserveEntry {
    component_id: String,
    rack_id: String,
    kind: ComponentKind,
    controller_state: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    power_state: Option<String>,
    #[serde(default)]
    firmware_version: Option<String>,
    #[serde(default)]
    observed_at: Option<DateTime<Utc>>,
}

/// A component as the observe command reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Its rack.
    pub rack: RackId,
    /// Its kind.
    pub kind: ComponentKind,
    /// Its name (default: the id).
    pub name: String,
    /// The observation.
    pub observation: Observation,
}

/// Parses the observe command's stdout: a JSON array of entries. A document that is not an
/// array is an error (no observations at all); a bad entry is skipped with a warning naming
/// its index, so only its component goes without a fresh observation.
pub fn parse_observe(
    stdout: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Observed>, Vec<String>), String> {
    let value: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("not JSON ({e})"))?;
    let serde_json::Value::Array(items) = value else {
        return Err("not a JSON array of observations".to_string());
    };
    let mut seen = BTreeSet::new();
    let mut observed = Vec::with_capacity(items.len());
    let mut warnings = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match entry(item, now) {
            Ok(entry) if !seen.insert(entry.observation.component_id.clone()) => warnings.push(
                format!("entry {index}: component {} listed twice", entry.observation.component_id),
            ),
            Ok(entry) => observed.push(entry),
            Err(error) => warnings.push(format!("entry {index}: {error}")),
        }
    }
    Ok((observed, warnings))
}

fn entry(item: serde_json::Value, now: DateTime<Utc>) -> Result<Observed, String> {
    let entry: ObserveEntry = serde_json::from_value(item).map_err(|e| e.to_string())?;
    check_id(&entry.component_id).map_err(|e| format!("component_id {e}"))?;
    check_id(&entry.rack_id).map_err(|e| format!("rack_id {e}"))?;
    let controller_state = match entry.controller_state {
        serde_json::Value::String(text) => text,
        serde_json::Value::Object(object) => serde_json::Value::Object(object).to_string(),
        _ => return Err("controller_state must be a string or a JSON object".to_string()),
    };
    let id = ComponentId::new(&entry.component_id);
    Ok(Observed {
        rack: RackId::new(&entry.rack_id),
        kind: entry.kind,
        name: entry.name.unwrap_or_else(|| entry.component_id.clone()),
        observation: Observation {
            component_id: id,
            controller_state,
            power_state: entry.power_state,
            firmware_version: entry.firmware_version,
            observed_at: Some(entry.observed_at.unwrap_or(now)),
        },
    })
}

/// A controller state that maps to `unknown` for `kind`, carrying `reason`: compute's empty
/// word before '/', or an unrecognized JSON tag for the other kinds.
pub fn unknown_state(kind: ComponentKind, reason: &str) -> String {
    match kind {
        ComponentKind::Compute => format!("/exec: {}", reason.replace('/', " ")),
        _ => serde_json::json!({"state": "exec-unknown", "exec": reason}).to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(names: &[&str]) -> Vec<ComponentId> {
        names.iter().map(|n| ComponentId::new(*n)).collect()
    }

    #[test]
    fn lines_parse_or_say_what_is_wrong() {
        let set: BTreeSet<ComponentId> = ids(&["c1", "c2"]).into_iter().collect();
        assert_eq!(parse_line("   ", &set), Ok(None));
        assert_eq!(
            parse_line(r#"{"component":"c1","status":"running","message":"flashing"}"#, &set),
            Ok(Some(Line::Progress {
                component: ComponentId::new("c1"),
                status: ComponentState::Running,
                message: "flashing".into()
            }))
        );
        let result = parse_line(
            r#"{"result":{"c1":"completed","c2":{"status":"failed","message":"bad image"}}}"#,
            &set,
        )
        .unwrap()
        .unwrap();
        let Line::Result(map) = result else { panic!("{result:?}") };
        assert_eq!(map[&ComponentId::new("c2")], (ComponentState::Failed, "bad image".into()));
        for bad in [
            "flashing c1...",
            r#"{"component":"c9","status":"running"}"#,
            r#"{"component":"c1","status":"done"}"#,
            r#"{"component":"c1","status":"running","extra":1}"#,
            r#"{"component":"c1","status":"terminated"}"#,
            r#"{"result":{"c1":"running"}}"#,
            r#"{"result":{"c3":"completed"}}"#,
            r#"{"result":["c1"]}"#,
            "[1,2]",
            "\"\u{0}\"",
        ] {
            assert!(parse_line(bad, &set).is_err(), "{bad} parsed");
        }
        let long = format!(
            "{{\"component\":\"c1\",\"status\":\"running\",\"message\":\"{}\"}}",
            "x".repeat(MAX_LINE_BYTES)
        );
        assert!(parse_line(&long, &set).unwrap_err().contains("longer"));
    }

    #[test]
    fn verdicts_follow_exit_result_and_malformed_lines() {
        let components = ids(&["c1", "c2"]);
        let mut progress = Progress::new(&components);
        assert_eq!(progress.feed(r#"{"component":"c1","status":"running"}"#), ids(&["c1"]));
        assert!(progress.feed(r#"{"component":"c1","status":"running"}"#).is_empty());
        // Exit 0 without a result line fails, with stderr's last line.
        let verdict = progress.verdict(&Exit::Code(0), "oops");
        assert!(!verdict.ok);
        assert_eq!(verdict.message, "exited 0 without a final result line: oops");
        progress.feed(r#"{"result":{"c1":"completed","c2":"completed"}}"#);
        let verdict = progress.verdict(&Exit::Code(0), "");
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(verdict.message, "all 2 components completed");
        // The same output with a non-zero exit fails, naming stderr's last line.
        let verdict = progress.verdict(&Exit::Code(3), "bmc unreachable");
        assert!(!verdict.ok);
        assert_eq!(verdict.message, "exit status 3: bmc unreachable");
        assert_eq!(verdict.components[&ComponentId::new("c1")].0, ComponentState::Completed);
        // After a restart the result line decides.
        assert!(progress.verdict(&Exit::Gone, "").ok);
        let timed_out = progress.verdict(&Exit::TimedOut(5), "");
        assert!(!timed_out.ok && timed_out.message.starts_with("timed out after 5 s"));

        let mut partial = Progress::new(&components);
        partial.feed(r#"{"result":{"c1":"completed"}}"#);
        let verdict = partial.verdict(&Exit::Code(0), "");
        assert!(!verdict.ok);
        assert_eq!(verdict.message, "failed: c2: no result reported for this component");

        let mut garbage = Progress::new(&components);
        garbage.feed("starting flash");
        garbage.feed(r#"{"result":{"c1":"completed","c2":"completed"}}"#);
        let verdict = garbage.verdict(&Exit::Code(0), "last words");
        assert!(!verdict.ok);
        assert!(verdict.message.starts_with("malformed stdout line 1: not JSON"), "{verdict:?}");
        assert!(verdict.message.ends_with(": last words"));
        // A non-zero exit is named before a malformed line.
        let verdict = garbage.verdict(&Exit::Code(2), "bmc unreachable");
        assert_eq!(verdict.message, "exit status 2: bmc unreachable");

        let gone = Progress::new(&components).verdict(&Exit::Gone, "");
        assert!(!gone.ok && gone.message.contains("never started twice"), "{gone:?}");
    }

    #[test]
    fn observe_output_parses_per_entry() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let text = r#"[
          {"component_id":"r1-c1","rack_id":"r1","kind":"compute","controller_state":"Ready",
           "firmware_version":"1.0.0","power_state":"on"},
          {"component_id":"r1-s1","rack_id":"r1","kind":"nvswitch","controller_state":{"state":"ready"},
           "observed_at":"2025-12-31T23:59:00Z"},
          {"component_id":"r1-c1","rack_id":"r1","kind":"compute","controller_state":"Ready"},
          {"component_id":"","rack_id":"r1","kind":"compute","controller_state":"Ready"},
          {"component_id":"x","rack_id":"r1","kind":"toaster","controller_state":"Ready"},
          {"component_id":"y","rack_id":"r1","kind":"compute","controller_state":1},
          42
        ]"#;
        let (observed, warnings) = parse_observe(text, now).unwrap();
        assert_eq!(observed.len(), 2);
        assert_eq!(observed[0].observation.observed_at, Some(now));
        assert_eq!(observed[1].observation.controller_state, r#"{"state":"ready"}"#);
        assert_ne!(observed[1].observation.observed_at, Some(now));
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert!(warnings[0].contains("listed twice"));
        assert!(parse_observe("garbage", now).is_err());
        assert!(parse_observe("{}", now).is_err());
        assert!(parse_observe("", now).is_err());
    }

    #[test]
    fn unknown_states_map_to_unknown() {
        let mapper = steward_state_machine::status::StatusMapper::default();
        for kind in ComponentKind::ALL {
            let raw = unknown_state(kind, "observe failed: exit 1 / bad");
            let status = mapper.derive(kind, &raw);
            assert_eq!(status.phase, steward_proto::Phase::Unknown, "{kind:?}: {raw}");
            assert!(status.reason.contains("observe failed"), "{status:?}");
        }
    }
}
