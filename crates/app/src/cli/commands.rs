//! The client commands: each builds one request, sends it, and prints the answer as a table (or
//! as JSON with `--json`).

use super::client::{CliError, Client};
use super::table::{field, path, render, short_time};
use super::{
    Cli, Command, ComponentsCommand, CreateArgs, EXIT_OK, EXIT_REFUSED, EventsArgs,
    InventoryCommand, MachineCommand, MachineFormat, NotReadyArg, OpArg, RacksCommand, RunCommand,
    ScopeArg, ServiceCommand, TokenCommand, watch,
};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use steward_proto::{
    AdvanceRequest, ComponentId, FailureCount, FailureRate, ForceServiceStateRequest, GateScope,
    OnNotReady, Operation, PolicyOverrides, RackId, ReasonRequest, RerunRequest, RunId, RunRequest,
    SafetyGate, Selector, ServiceState, ServiceStateRequest, WaveSpec,
};
use steward_state_machine::{
    Machine, RunMachine, ServiceTable, TargetMachine, TaskMachine, TransitionTable,
};

/// Runs a client command (everything but `serve` and `demo`); returns the exit code.
pub async fn execute(cli: Cli) -> Result<i32, CliError> {
    let json = cli.json;
    let client = || Client::new(&cli.server, cli.token.clone());
    match cli.command {
        Command::Serve(_) | Command::Demo(_) => {
            Err(CliError::Usage("serve and demo are run by the binary".into()))
        }
        Command::Inventory(InventoryCommand::Import { file }) => {
            let body = read_file(&file)?;
            let answer = client()?.post_raw("/v1/inventory", body).await?;
            print(json, &answer, || {
                format!(
                    "imported {} racks, {} components\n",
                    field(&answer, "racks"),
                    field(&answer, "components")
                )
            });
            Ok(EXIT_OK)
        }
        Command::Racks(RacksCommand::List) => {
            let answer = client()?.get("/v1/racks").await?;
            print(json, &answer, || racks_table(&answer));
            Ok(EXIT_OK)
        }
        Command::Racks(RacksCommand::Show { id }) => {
            let answer = client()?.get(&format!("/v1/racks/{}", segment(&id))).await?;
            print(json, &answer, || {
                let mut out = format!(
                    "rack {} ({}), row {}, labels {}\n\n",
                    field(&answer, "id"),
                    field(&answer, "name"),
                    path(&answer, "location.row"),
                    field(&answer, "labels")
                );
                out.push_str(&components_table(answer.get("components").unwrap_or(&Value::Null)));
                out
            });
            Ok(EXIT_OK)
        }
        Command::Components(ComponentsCommand::List { rack, kind, phase, service_state }) => {
            let mut query = Vec::new();
            for (key, value) in
                [("rack", rack), ("kind", kind), ("phase", phase), ("service_state", service_state)]
            {
                if let Some(value) = value {
                    query.push(format!("{key}={}", segment(&value)));
                }
            }
            let url = if query.is_empty() {
                "/v1/components".to_string()
            } else {
                format!("/v1/components?{}", query.join("&"))
            };
            let answer = client()?.get(&url).await?;
            print(json, &answer, || components_table(&answer));
            Ok(EXIT_OK)
        }
        Command::Components(ComponentsCommand::Show { id }) => {
            let answer = client()?.get(&format!("/v1/components/{}", segment(&id))).await?;
            print(json, &answer, || component_details(&answer));
            Ok(EXIT_OK)
        }
        Command::Observe { file } => {
            let body = read_file(&file)?;
            let answer = client()?.post_raw("/v1/observations", body).await?;
            print(json, &answer, || {
                format!(
                    "{} observations, {} changed a status\n",
                    field(&answer, "received"),
                    field(&answer, "changed")
                )
            });
            Ok(EXIT_OK)
        }
        Command::Service(ServiceCommand::Set { id, state, note }) => {
            let body = to_body(&ServiceStateRequest { to: ServiceState::new(state), note })?;
            let url = format!("/v1/components/{}/service-state", segment(&id));
            let answer = client()?.post(&url, &body).await?;
            print(json, &answer, || {
                format!("{} is now {}\n", field(&answer, "id"), field(&answer, "service_state"))
            });
            Ok(EXIT_OK)
        }
        Command::Service(ServiceCommand::Force { id, state, note }) => {
            let body = to_body(&ForceServiceStateRequest { to: ServiceState::new(state), note })?;
            let url = format!("/v1/components/{}/service-state/force", segment(&id));
            let answer = client()?.post(&url, &body).await?;
            print(json, &answer, || {
                format!("{} is now {}\n", field(&answer, "id"), field(&answer, "service_state"))
            });
            Ok(EXIT_OK)
        }
        Command::Service(ServiceCommand::History { id }) => {
            let url = format!("/v1/components/{}/history", segment(&id));
            let answer = client()?.get(&url).await?;
            print(json, &answer, || history_table(&answer));
            Ok(EXIT_OK)
        }
        Command::Run(command) => run_command(client()?, command, json).await,
        Command::Events(args) => events(client()?, args, json).await,
        Command::Machine(MachineCommand::Show { name, format }) => {
            machine_show(&cli.server, cli.token.clone(), &name, format, json).await
        }
        Command::Replay { db, config } => replay(&db, config.as_deref(), json),
        Command::Token(TokenCommand::Hash { token }) => {
            println!("{}", crate::config::hash_token(&token));
            Ok(EXIT_OK)
        }
    }
}

fn print(json: bool, value: &Value, human: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        print!("{}", human());
    }
}

fn read_file(file: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))
}

/// Percent-encodes a path segment or query value.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn racks_table(racks: &Value) -> String {
    let rows: Vec<Vec<String>> = items(racks)
        .iter()
        .map(|r| {
            vec![field(r, "id"), field(r, "name"), path(r, "location.row"), field(r, "labels")]
        })
        .collect();
    render(&["ID", "NAME", "ROW", "LABELS"], &rows)
}

fn components_table(components: &Value) -> String {
    let rows: Vec<Vec<String>> = items(components)
        .iter()
        .map(|c| {
            vec![
                field(c, "id"),
                field(c, "rack_id"),
                field(c, "kind"),
                path(c, "status.phase"),
                path(c, "status.blocked_operations"),
                field(c, "service_state"),
                field(c, "firmware_version"),
                path(c, "status.reason"),
            ]
        })
        .collect();
    render(&["ID", "RACK", "KIND", "PHASE", "BLOCKED", "SERVICE", "FIRMWARE", "REASON"], &rows)
}

fn component_details(c: &Value) -> String {
    let rows = [
        ("id", field(c, "id")),
        ("rack", field(c, "rack_id")),
        ("kind", field(c, "kind")),
        ("name", field(c, "name")),
        ("serial", field(c, "serial")),
        ("firmware", field(c, "firmware_version")),
        ("power", field(c, "power_state")),
        ("phase", path(c, "status.phase")),
        ("reason", path(c, "status.reason")),
        ("blocked", path(c, "status.blocked_operations")),
        ("service state", field(c, "service_state")),
    ];
    rows.iter().map(|(k, v)| format!("{k:<14}{v}\n")).collect()
}

fn history_table(history: &Value) -> String {
    let rows: Vec<Vec<String>> = items(history)
        .iter()
        .map(|h| {
            vec![
                short_time(&field(h, "at")),
                field(h, "from"),
                field(h, "to"),
                field(h, "initiator"),
                field(h, "note"),
            ]
        })
        .collect();
    render(&["AT", "FROM", "TO", "INITIATOR", "NOTE"], &rows)
}

fn run_summary_row(r: &Value) -> Vec<String> {
    let counts = r.get("counts").cloned().unwrap_or(Value::Null);
    let total: u64 = counts.as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let done: u64 = ["completed", "failed", "terminated", "skipped"]
        .iter()
        .filter_map(|k| counts.get(k).and_then(Value::as_u64))
        .sum();
    let waves = r.get("waves").and_then(Value::as_array).map_or(0, Vec::len);
    vec![
        field(r, "id"),
        field(r, "name"),
        operation_text(r.get("operation")),
        field(r, "status"),
        field(r, "status_reason"),
        format!("{}/{}", field(r, "current_wave"), waves),
        format!("{done}/{total}"),
        short_time(&field(r, "created_at")),
    ]
}

fn operation_text(op: Option<&Value>) -> String {
    let Some(op) = op else { return "-".into() };
    match op.get("version").and_then(Value::as_str) {
        Some(version) => format!("{} {version}", field(op, "kind")),
        None => field(op, "kind"),
    }
}

fn runs_table(runs: &Value) -> String {
    let rows: Vec<Vec<String>> = items(runs).iter().map(run_summary_row).collect();
    render(&["ID", "NAME", "OPERATION", "STATUS", "REASON", "WAVE", "DONE", "CREATED"], &rows)
}

fn run_details(r: &Value) -> String {
    let mut out = runs_table(&Value::Array(vec![r.clone()]));
    let message = field(r, "status_message");
    if message != "-" {
        out.push_str(&format!("\n{message}\n"));
    }
    let rows: Vec<Vec<String>> = items(r.get("waves").unwrap_or(&Value::Null))
        .iter()
        .map(|w| {
            let counts = w.get("counts").cloned().unwrap_or(Value::Null);
            vec![
                field(w, "number"),
                field(w, "size"),
                field(&counts, "completed"),
                field(&counts, "failed"),
                field(&counts, "skipped"),
                field(&counts, "submitted"),
                field(&counts, "pending"),
                short_time(&field(w, "opened_at")),
                short_time(&field(w, "finished_at")),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&render(
        &[
            "WAVE",
            "SIZE",
            "COMPLETED",
            "FAILED",
            "SKIPPED",
            "SUBMITTED",
            "PENDING",
            "OPENED",
            "FINISHED",
        ],
        &rows,
    ));
    out
}

fn targets_table(targets: &Value) -> String {
    let rows: Vec<Vec<String>> = items(targets)
        .iter()
        .map(|t| {
            let hold = match t.get("hold") {
                Some(h) if !h.is_null() => format!("{}: {}", field(h, "gate"), field(h, "message")),
                _ => "-".to_string(),
            };
            vec![
                field(t, "rack_id"),
                field(t, "wave"),
                field(t, "status"),
                field(t, "attempt"),
                field(t, "task_id"),
                hook_cell(t),
                field(t, "message"),
                hold,
            ]
        })
        .collect();
    render(&["RACK", "WAVE", "STATUS", "ATTEMPT", "TASK", "HOOK", "MESSAGE", "HOLD"], &rows)
}

/// `pre drain since 12:00:01Z` for a target running a hook (`(run 2)` once re-run); otherwise
/// the hooks of its attempt that reported (`pre drain ok, post validate ok`), else `-`.
fn hook_cell(target: &Value) -> String {
    if let Some(hook) = target.get("hook").filter(|hook| !hook.is_null()) {
        let starts = hook.get("starts").and_then(Value::as_u64).unwrap_or(0);
        let again = if starts > 1 { format!(" (run {starts})") } else { String::new() };
        return format!(
            "{} {} since {}{again}",
            field(hook, "phase"),
            field(hook, "name"),
            field(hook, "since")
        );
    }
    let reported = target.get("hooks_reported").and_then(Value::as_array);
    let cells: Vec<String> = reported
        .into_iter()
        .flatten()
        .map(|report| {
            let ok = report.get("ok").and_then(Value::as_bool) == Some(true);
            let outcome = if ok { "ok" } else { "failed" };
            format!("{} {} {outcome}", field(report, "phase"), field(report, "name"))
        })
        .collect();
    if cells.is_empty() { "-".to_string() } else { cells.join(", ") }
}

/// Builds the typed `POST /v1/runs` request from `run create` flags (the same struct the server
/// parses), and the mixed wave specs still to resolve against the number of targets, if any.
/// Combinations the server would refuse are usage errors here, before anything is sent.
pub fn create_body(args: &CreateArgs) -> Result<(RunRequest, Option<Vec<WavePart>>), CliError> {
    if args.version.is_some() && args.op != OpArg::FirmwareUpdate {
        return Err(CliError::Usage("--version only applies to --op firmware_update".into()));
    }
    let mut policy = match &args.policy {
        None => PolicyOverrides::default(),
        Some(text) => policy_overrides(text)?,
    };
    let mixed = apply_policy_flags(args, &mut policy)?;
    let request = RunRequest {
        name: args.name.clone(),
        operation: operation(args)?,
        selector: selector(args)?,
        policy,
        dry_run: args.dry_run,
    };
    Ok((request, mixed))
}

fn operation(args: &CreateArgs) -> Result<Operation, CliError> {
    Ok(match args.op {
        OpArg::PowerOn => Operation::PowerOn,
        OpArg::PowerOff => Operation::PowerOff,
        OpArg::PowerCycle => Operation::PowerCycle,
        OpArg::FirmwareUpdate => match &args.version {
            Some(version) => {
                Operation::FirmwareUpdate { version: version.clone(), components: Vec::new() }
            }
            None => return Err(CliError::Usage("--op firmware_update needs --version V".into())),
        },
    })
}

fn selector(args: &CreateArgs) -> Result<Selector, CliError> {
    let mut selector = Selector::default();
    if !args.rack.is_empty() {
        selector.racks = Some(args.rack.iter().map(|r| RackId::new(r.as_str())).collect());
    } else if !args.component.is_empty() {
        let ids = args.component.iter().map(|c| ComponentId::new(c.as_str())).collect();
        selector.components = Some(ids);
    } else if args.all {
        selector.all = Some(true);
    } else if !args.labels.is_empty() {
        let mut labels = BTreeMap::new();
        for pair in &args.labels {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(CliError::Usage(format!("--label {pair:?} must be KEY=VALUE")));
            };
            labels.insert(key.to_string(), value.to_string());
        }
        selector.labels = Some(labels);
    }
    for kind in &args.kinds {
        let parsed = serde_json::from_value(Value::String(kind.clone()))
            .map_err(|_| CliError::Usage(format!("--kind {kind:?} is not a component kind")))?;
        selector.kinds.push(parsed);
    }
    selector.exclude_runs = args.exclude_runs.iter().map(|r| RunId::new(r.as_str())).collect();
    Ok(selector)
}

/// Lays the policy flags over `--policy` (flags win); returns mixed wave specs to resolve.
fn apply_policy_flags(
    args: &CreateArgs,
    policy: &mut PolicyOverrides,
) -> Result<Option<Vec<WavePart>>, CliError> {
    if let Some(n) = args.max_parallel {
        policy.max_parallel_racks = Some(n);
    }
    let mut mixed = None;
    if !args.waves.is_empty() {
        match parse_waves(&args.waves)? {
            WaveArg::Spec(spec) => policy.waves = Some(spec),
            WaveArg::Mixed(parts) => mixed = Some(parts),
        }
    }
    let scope = match args.gate_scope {
        ScopeArg::Wave => GateScope::CurrentWave,
        ScopeArg::Run => GateScope::Run,
    };
    if let Some(max) = args.max_failures {
        let gate =
            SafetyGate { failure_count: Some(FailureCount { max }), failure_rate: None, scope };
        policy.safety_gates = Some(vec![gate]);
    }
    if let Some(ratio) = args.max_failure_ratio {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(CliError::Usage(format!(
                "--max-failure-ratio {ratio} must be above 0 and at most 1"
            )));
        }
        let rate = FailureRate { percent: ratio * 100.0 };
        let gate = SafetyGate { failure_count: None, failure_rate: Some(rate), scope };
        policy.safety_gates = Some(vec![gate]);
    }
    if let Some(on_not_ready) = args.on_not_ready {
        policy.on_not_ready = Some(match on_not_ready {
            NotReadyArg::Wait => OnNotReady::Wait,
            NotReadyArg::Skip => OnNotReady::Skip,
        });
    }
    if args.auto_advance {
        policy.auto_advance = Some(true);
    }
    Ok(mixed)
}

/// Resolves mixed wave specs: a dry run without waves tells how many targets the run has.
async fn resolve_mixed(
    client: &Client,
    request: &mut RunRequest,
    parts: &[WavePart],
) -> Result<(), CliError> {
    let mut probe = request.clone();
    probe.dry_run = true;
    let plan = client.post("/v1/runs", &to_body(&probe)?).await?;
    let total = plan.get("targets").and_then(Value::as_array).map_or(0, Vec::len);
    let sizes = resolve_waves(parts, u32::try_from(total).unwrap_or(u32::MAX));
    request.policy.waves = Some(WaveSpec::Count(sizes));
    Ok(())
}

/// A request struct as the JSON body to send.
fn to_body(request: &impl serde::Serialize) -> Result<Value, CliError> {
    serde_json::to_value(request)
        .map_err(|e| CliError::Usage(format!("cannot encode the request: {e}")))
}

/// `--policy`: inline JSON or a file, parsed as the policy the server accepts (unknown fields
/// are a usage error here, not a round trip).
fn policy_overrides(text: &str) -> Result<PolicyOverrides, CliError> {
    let source = if text.trim_start().starts_with('{') {
        text.to_string()
    } else {
        std::fs::read_to_string(text).map_err(|e| {
            CliError::Usage(format!("--policy {text:?}: not JSON and not a readable file ({e})"))
        })?
    };
    serde_json::from_str(&source)
        .map_err(|e| CliError::Usage(format!("--policy is not a valid run policy: {e}")))
}

/// One `--wave` spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavePart {
    /// A number of racks.
    Count(u32),
    /// A percentage of the run's racks.
    Percent(u32),
}

/// Parsed `--wave` specs: a policy `waves` value, or counts and percentages mixed (resolved to
/// counts once the number of targets is known, e.g. `--wave 1 --wave 25%`: a canary rack, a
/// quarter of the racks, then the rest).
#[derive(Clone, Debug, PartialEq)]
pub enum WaveArg {
    /// Ready to send.
    Spec(WaveSpec),
    /// Needs the number of targets.
    Mixed(Vec<WavePart>),
}

/// Parses `--wave` specs: all `N` (counts; the remainder becomes a last wave), all `N%`
/// (percentages; a remainder under 100 becomes a last wave), one `equal:N`, or a mix of `N` and
/// `N%`.
pub fn parse_waves(specs: &[String]) -> Result<WaveArg, CliError> {
    let bad = |spec: &str| {
        CliError::Usage(format!("--wave {spec:?}: expected N (racks), N% (percent) or equal:N"))
    };
    if let [single] = specs
        && let Some(count) = single.strip_prefix("equal:")
    {
        let count: u32 = count.parse().map_err(|_| bad(single))?;
        return Ok(WaveArg::Spec(WaveSpec::Equal { count }));
    }
    let mut parts = Vec::new();
    for spec in specs {
        let part = match spec.strip_suffix('%') {
            Some(percent) => WavePart::Percent(percent.parse().map_err(|_| bad(spec))?),
            None => WavePart::Count(spec.parse().map_err(|_| bad(spec))?),
        };
        parts.push(part);
    }
    let percents: Vec<u32> = parts
        .iter()
        .filter_map(|p| match p {
            WavePart::Percent(p) => Some(*p),
            WavePart::Count(_) => None,
        })
        .collect();
    if percents.len() == parts.len() {
        let mut percents = percents;
        let sum: u32 = percents.iter().sum();
        if sum < 100 {
            percents.push(100 - sum);
        }
        return Ok(WaveArg::Spec(WaveSpec::Percentage(percents)));
    }
    if percents.is_empty() {
        let counts: Vec<u32> = parts
            .iter()
            .map(|p| match p {
                WavePart::Count(c) | WavePart::Percent(c) => *c,
            })
            .collect();
        return Ok(WaveArg::Spec(WaveSpec::Count(counts)));
    }
    Ok(WaveArg::Mixed(parts))
}

/// Wave sizes for `total` targets from mixed specs (a percentage rounds up, at least one rack);
/// sizes stop where the racks run out, and what is left becomes a last wave.
pub fn resolve_waves(parts: &[WavePart], total: u32) -> Vec<u32> {
    let mut sizes = Vec::new();
    let mut used = 0u32;
    for part in parts {
        if used >= total {
            break;
        }
        let size = match *part {
            WavePart::Count(count) => count,
            WavePart::Percent(percent) => {
                let size = (u64::from(total) * u64::from(percent)).div_ceil(100);
                u32::try_from(size).unwrap_or(u32::MAX).max(1)
            }
        };
        let size = size.min(total - used);
        if size > 0 {
            sizes.push(size);
            used += size;
        }
    }
    sizes
}

async fn run_command(client: Client, command: RunCommand, json: bool) -> Result<i32, CliError> {
    match command {
        RunCommand::Create(args) => {
            let (mut request, mixed) = create_body(&args)?;
            if let Some(parts) = mixed {
                resolve_mixed(&client, &mut request, &parts).await?;
            }
            let answer = client.post("/v1/runs", &to_body(&request)?).await?;
            if args.dry_run {
                print(json, &answer, || {
                    let run = answer.get("run").cloned().unwrap_or(Value::Null);
                    let mut out = String::from("dry run: nothing was created\n\n");
                    out.push_str(&run_details(&run));
                    out.push('\n');
                    out.push_str(&targets_table(answer.get("targets").unwrap_or(&Value::Null)));
                    out
                });
            } else if json {
                print(json, &answer, String::new);
            } else {
                let waves = answer.get("waves").and_then(Value::as_array).map_or(0, Vec::len);
                let total: u64 = answer
                    .get("counts")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
                println!(
                    "created run {} ({total} targets in {waves} waves), status {}",
                    field(&answer, "id"),
                    field(&answer, "status")
                );
            }
            Ok(EXIT_OK)
        }
        RunCommand::List => {
            let answer = client.get("/v1/runs").await?;
            print(json, &answer, || runs_table(&answer));
            Ok(EXIT_OK)
        }
        RunCommand::Show { id } => {
            let answer = client.get(&format!("/v1/runs/{}", segment(&id))).await?;
            print(json, &answer, || run_details(&answer));
            Ok(EXIT_OK)
        }
        RunCommand::Targets { id } => {
            let answer = client.get(&format!("/v1/runs/{}/targets", segment(&id))).await?;
            print(json, &answer, || targets_table(&answer));
            Ok(EXIT_OK)
        }
        RunCommand::Pause { id, reason } => {
            run_action(&client, &id, "pause", reason_body(reason), json).await
        }
        RunCommand::Resume { id, reason } => {
            run_action(&client, &id, "resume", reason_body(reason), json).await
        }
        RunCommand::Cancel { id, reason } => {
            run_action(&client, &id, "cancel", reason_body(reason), json).await
        }
        RunCommand::Rerun { id, failed_only } => {
            let body = to_body(&RerunRequest { failed_only })?;
            let answer = client.post(&format!("/v1/runs/{}/rerun", segment(&id)), &body).await?;
            print(json, &answer, || {
                format!(
                    "created run {} as a rerun of {}, status {}\n",
                    field(&answer, "id"),
                    field(&answer, "rerun_of"),
                    field(&answer, "status")
                )
            });
            Ok(EXIT_OK)
        }
        RunCommand::Advance { id, expected_wave } => {
            let body = to_body(&AdvanceRequest { expected_wave })?;
            run_action(&client, &id, "advance", body, json).await
        }
        RunCommand::Watch { id, interval_ms } => {
            watch::watch(&client, &segment(&id), Duration::from_millis(interval_ms.max(50)), json)
                .await
        }
    }
}

fn reason_body(reason: Option<String>) -> Value {
    to_body(&ReasonRequest { reason }).unwrap_or_else(|_| Value::Object(Map::new()))
}

async fn run_action(
    client: &Client,
    id: &str,
    action: &str,
    body: Value,
    json: bool,
) -> Result<i32, CliError> {
    let answer = client.post(&format!("/v1/runs/{}/{action}", segment(id)), &body).await?;
    print(json, &answer, || {
        let reason = field(&answer, "status_reason");
        let reason = if reason == "none" { String::new() } else { format!(" ({reason})") };
        let mut line = format!(
            "run {}: {}{reason}, wave {}",
            field(&answer, "id"),
            field(&answer, "status"),
            field(&answer, "current_wave")
        );
        let message = field(&answer, "status_message");
        if message != "-" {
            line.push_str(&format!(": {message}"));
        }
        line.push('\n');
        line
    });
    Ok(EXIT_OK)
}

async fn events(client: Client, args: EventsArgs, json: bool) -> Result<i32, CliError> {
    let mut after = args.after;
    loop {
        let wait = if args.follow { 30 } else { 0 };
        let url = format!("/v1/events?after={after}&limit={}&wait={wait}", args.limit.max(1));
        let page = client.get(&url).await?;
        let events = items(page.get("events").unwrap_or(&Value::Null));
        if json && !args.follow {
            println!("{}", serde_json::to_string_pretty(&page).unwrap_or_default());
        } else {
            for event in events {
                if json {
                    println!("{}", serde_json::to_string(event).unwrap_or_default());
                } else {
                    println!(
                        "{:>6}  {}  {:<24}  {}",
                        field(event, "seq"),
                        short_time(&field(event, "at")),
                        field(event, "kind"),
                        abbreviate(
                            &event.get("data").map(Value::to_string).unwrap_or_default(),
                            120
                        )
                    );
                }
            }
        }
        after = page.get("next").and_then(Value::as_u64).unwrap_or(after).max(after);
        if !args.follow {
            return Ok(EXIT_OK);
        }
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn abbreviate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The built-in default table of a machine (used when no server answers).
pub fn default_machine_table(name: &str) -> Option<TransitionTable> {
    match name {
        "service" | "service_state" => Some(ServiceTable::default().to_table()),
        "run" => Some(RunMachine::table()),
        "target" => Some(TargetMachine::table()),
        "task" => Some(TaskMachine::table()),
        _ => None,
    }
}

async fn machine_show(
    server: &str,
    token: Option<String>,
    name: &str,
    format: MachineFormat,
    json: bool,
) -> Result<i32, CliError> {
    let client = Client::new(server, token)?;
    let table: TransitionTable =
        match client.get_as(&format!("/v1/machines/{}", segment(name))).await {
            Ok(table) => table,
            Err(CliError::Unreachable(reason)) => match default_machine_table(name) {
                Some(table) => {
                    eprintln!("note: {reason}; showing the built-in default table");
                    table
                }
                None => return Err(CliError::Usage(unknown_machine(name))),
            },
            Err(CliError::Refused(reason)) if default_machine_table(name).is_none() => {
                return Err(CliError::Usage(format!("{}; {reason}", unknown_machine(name))));
            }
            Err(other) => return Err(other),
        };
    let format = if json { MachineFormat::Json } else { format };
    match format {
        MachineFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&table).unwrap_or_default())
        }
        MachineFormat::Mermaid => print!("{}", table.to_mermaid()),
        MachineFormat::Table => {
            println!(
                "machine {} (initial {}, terminal {})",
                table.machine,
                table.initial,
                table.terminal.join(", ")
            );
            print!("{}", table.to_plain_table());
        }
    }
    Ok(EXIT_OK)
}

fn unknown_machine(name: &str) -> String {
    format!("unknown machine {name:?}; machines: service, run, target, task")
}

fn replay(db: &Path, config: Option<&Path>, json: bool) -> Result<i32, CliError> {
    if !db.exists() {
        return Err(CliError::Local(format!("{}: no such database", db.display())));
    }
    let config = match config {
        Some(path) => {
            crate::config::Config::from_file(path).map_err(|e| CliError::Usage(e.to_string()))?
        }
        None => crate::config::Config::default(),
    };
    let fleet_config = crate::http::server::runtime_config(&config)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .fleet_config()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let report = steward_runtime::store::replay_and_compare(db, fleet_config)
        .map_err(|e| CliError::Local(format!("replay of {} failed: {e}", db.display())))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("{}: {}", db.display(), report.to_string().trim_end());
    }
    if report.equal {
        Ok(EXIT_OK)
    } else {
        eprintln!(
            "steward: replay of {} differs from the stored state ({} differences)",
            db.display(),
            report.differences.len()
        );
        Ok(EXIT_REFUSED)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use serde_json::json;

    fn body(args: &[&str]) -> Result<Value, CliError> {
        let mut full = vec!["steward", "run", "create"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Run(RunCommand::Create(args)) => {
                create_body(&args).map(|(request, _)| serde_json::to_value(request).unwrap())
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn create_body_from_flags() {
        let b = body(&[
            "--op",
            "firmware_update",
            "--version",
            "2.0",
            "--all",
            "--max-parallel",
            "4",
            "--wave",
            "1",
            "--wave",
            "6",
            "--max-failures",
            "2",
            "--on-not-ready",
            "skip",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(b["operation"], json!({"kind": "firmware_update", "version": "2.0"}));
        assert_eq!(b["selector"], json!({"all": true}));
        assert_eq!(b["policy"]["waves"], json!({"count": [1, 6]}));
        assert_eq!(b["policy"]["max_parallel_racks"], json!(4));
        assert_eq!(b["policy"]["safety_gates"][0]["failure_count"]["max"], json!(2));
        assert_eq!(b["policy"]["on_not_ready"], json!("skip"));
        assert_eq!(b["dry_run"], json!(true));
    }

    #[test]
    fn refused_combinations_are_usage_errors_before_sending() {
        let both = ["steward", "run", "create", "--op", "power_on", "--all"];
        let mut args = both.to_vec();
        args.extend(["--max-failures", "2", "--max-failure-ratio", "0.5"]);
        let error = Cli::try_parse_from(args).expect_err("both gates at once are refused");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
        let typo = body(&["--op", "power_on", "--all", "--policy", r#"{"max_paralel_racks": 2}"#]);
        assert!(matches!(typo, Err(CliError::Usage(_))), "{typo:?}");
        let kind = body(&["--op", "power_on", "--all", "--kind", "gpu"]);
        assert!(matches!(kind, Err(CliError::Usage(_))), "{kind:?}");
    }

    #[test]
    fn the_request_the_cli_sends_is_the_one_the_server_parses() {
        let sent = body(&["--op", "power_cycle", "--rack", "r1", "--max-parallel", "2"]).unwrap();
        let parsed: RunRequest = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), sent);
        assert_eq!(sent["policy"], json!({"max_parallel_racks": 2}), "only given fields are sent");
    }

    #[test]
    fn firmware_needs_version() {
        assert!(matches!(body(&["--op", "firmware_update", "--all"]), Err(CliError::Usage(_))));
        assert!(matches!(
            body(&["--op", "power_on", "--version", "1", "--all"]),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn wave_specs() {
        let specs = |s: &[&str]| parse_waves(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let spec = WaveArg::Spec;
        assert_eq!(specs(&["5%", "25%"]).unwrap(), spec(WaveSpec::Percentage(vec![5, 25, 70])));
        assert_eq!(specs(&["equal:3"]).unwrap(), spec(WaveSpec::Equal { count: 3 }));
        assert_eq!(specs(&["1", "10"]).unwrap(), spec(WaveSpec::Count(vec![1, 10])));
        assert_eq!(
            specs(&["1", "25%"]).unwrap(),
            WaveArg::Mixed(vec![WavePart::Count(1), WavePart::Percent(25)])
        );
        assert!(specs(&["x"]).is_err());
        assert!(specs(&["equal:x"]).is_err());
    }

    #[test]
    fn mixed_waves_resolve_against_the_target_count() {
        let parts = [WavePart::Count(1), WavePart::Percent(25)];
        assert_eq!(resolve_waves(&parts, 24), vec![1, 6]);
        assert_eq!(resolve_waves(&parts, 2), vec![1, 1]);
        assert_eq!(resolve_waves(&parts, 1), vec![1]);
        assert_eq!(resolve_waves(&[WavePart::Percent(10), WavePart::Count(50)], 8), vec![1, 7]);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("rack-001"), "rack-001");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn default_tables_exist() {
        for name in ["service", "run", "target", "task"] {
            assert!(default_machine_table(name).is_some());
        }
    }
}
