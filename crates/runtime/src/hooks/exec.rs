//! Exec hooks: a process started without a shell in its own process group, the hook input on
//! stdin, `STEWARD_RUN_ID`, `STEWARD_RACK_ID`, `STEWARD_TARGET_ID`, `STEWARD_ATTEMPT`,
//! `STEWARD_HOOK_PHASE` and `STEWARD_HOOK_INVOCATION` in its environment. Exit 0 is success;
//! the last line of stdout (stderr on failure) becomes the target's message. On timeout the
//! whole process group is killed (with the `kill` command: this workspace forbids `unsafe`).

use super::process::kill_group;
use super::{HookOutcome, last_line};
use std::process::Stdio;
use std::time::Duration;
use steward_state_machine::HookCall;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs `argv` for `call` with `input` on stdin, for at most `timeout`.
pub(super) async fn run(
    argv: &[String],
    call: &HookCall,
    input: &str,
    timeout: Duration,
) -> HookOutcome {
    let argv: Vec<String> = argv.iter().map(|arg| expand(arg, call)).collect();
    let Some((program, args)) = argv.split_first() else {
        return failed("exec hook has an empty command".into());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env("STEWARD_RUN_ID", call.target.run_id.as_str())
        .env("STEWARD_RACK_ID", call.target.rack_id.as_str())
        .env("STEWARD_TARGET_ID", call.target.id.as_str())
        .env("STEWARD_ATTEMPT", call.attempt.to_string())
        .env("STEWARD_HOOK_PHASE", call.phase.as_str())
        .env("STEWARD_HOOK_INVOCATION", &call.invocation_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("could not start {program}: {error}")),
    };
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is fine: a broken pipe is not a failure.
        let _ = stdin.write_all(input.as_bytes()).await;
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => finished(&output),
        Ok(Err(error)) => failed(format!("waiting for {program} failed: {error}")),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            failed(format!("timed out after {} s; its process group was killed", timeout.as_secs()))
        }
    }
}

fn finished(output: &std::process::Output) -> HookOutcome {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return HookOutcome { ok: true, message: last_line(&stdout) };
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = match last_line(&stderr) {
        line if line.is_empty() => last_line(&stdout),
        line => line,
    };
    let status = match output.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    };
    let message = if said.is_empty() { status } else { format!("{status}: {said}") };
    HookOutcome { ok: false, message }
}

fn failed(message: String) -> HookOutcome {
    HookOutcome { ok: false, message }
}

/// `{rack}`, `{run}`, `{target}` and `{attempt}` in an argument. The values are ids Steward
/// validated, passed as one argument each (no shell ever sees them).
fn expand(arg: &str, call: &HookCall) -> String {
    arg.replace("{rack}", call.target.rack_id.as_str())
        .replace("{run}", call.target.run_id.as_str())
        .replace("{target}", call.target.id.as_str())
        .replace("{attempt}", &call.attempt.to_string())
}
