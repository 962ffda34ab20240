//! Processes: the observe command (stdout piped, killed on timeout) and operation commands
//! (stdin, stdout and stderr are files in the work directory, so a command outlives a crash
//! of Steward without losing its output or dying of a broken pipe), plus the checks Steward
//! makes on a command it did not start in this life.
//!
//! Every command runs without a shell in its own process group; a timeout SIGKILLs the whole
//! group (with the `kill` command: this workspace forbids `unsafe`). A process counts as a
//! task's command only when its `/proc/PID/environ` holds `STEWARD_TASK_ID=` that task's id,
//! so a reused pid is never mistaken for it (Linux; elsewhere nothing is found and the task's
//! result line decides).

use crate::protocol::last_line;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
pub use steward_runtime::hooks::process::kill_group;
use tokio::process::{Child, Command};

/// Runs the observe command; its stdout, or why it failed.
pub async fn run_observe(argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty observe command".into());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| format!("could not start {program}: {e}"))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(Ok(output)) => {
            let status = match output.status.code() {
                Some(code) => format!("exit status {code}"),
                None => "killed by a signal".to_string(),
            };
            let said = last_line(&String::from_utf8_lossy(&output.stderr));
            Err(if said.is_empty() { status } else { format!("{status}: {said}") })
        }
        Ok(Err(error)) => Err(format!("waiting for {program} failed: {error}")),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            Err(format!("timed out after {} s; its process group was killed", timeout.as_secs()))
        }
    }
}

/// The files of one task's command.
#[derive(Clone, Debug)]
pub struct TaskFiles {
    /// The request document (stdin).
    pub input: std::path::PathBuf,
    /// stdout: the JSON lines.
    pub stdout: std::path::PathBuf,
    /// stderr.
    pub stderr: std::path::PathBuf,
}

impl TaskFiles {
    /// The files named `stem` in `dir`.
    pub fn new(dir: &Path, stem: &str) -> TaskFiles {
        TaskFiles {
            input: dir.join(format!("{stem}.in")),
            stdout: dir.join(format!("{stem}.out")),
            stderr: dir.join(format!("{stem}.err")),
        }
    }

    /// Removes the files (a finished task's result lives in the journal).
    pub fn remove(&self) {
        for path in [&self.input, &self.stdout, &self.stderr] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts an operation command: `input` already written, stdout and stderr truncated.
pub fn spawn_task(
    argv: &[String],
    env: &[(&'static str, String)],
    files: &TaskFiles,
) -> Result<Child, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty operation command".into());
    };
    let open = |path: &Path| {
        std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
    };
    let stdin = std::fs::File::open(&files.input)
        .map_err(|e| format!("cannot open {}: {e}", files.input.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(open(&files.stdout)?))
        .stderr(Stdio::from(open(&files.stderr)?))
        .process_group(0);
    // No kill_on_drop: a command must outlive Steward (its outcome is read after a restart).
    command.spawn().map_err(|e| format!("could not start {program}: {e}"))
}

/// Whether `pid` is alive and is the command of task `task_id`.
pub fn is_task_process(pid: u32, task_id: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
    let wanted = format!("STEWARD_TASK_ID={task_id}");
    environ.split(|b| *b == 0).any(|entry| entry == wanted.as_bytes()) && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// The process group leader running task `task_id`'s command, if one runs (a scan of
/// `/proc`; for a task whose pid was never journaled).
pub fn find_task_process(task_id: &str) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut found: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| is_task_process(*pid, task_id))
        .collect();
    found.sort_unstable();
    // The command's children inherit its environment; the leader is the group's id.
    found.iter().copied().find(|pid| process_group(*pid) == Some(*pid)).or(found.first().copied())
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state ppid pgrp ...
    stat.rsplit(')').next()?.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn observe_reports_exit_status_stderr_and_timeouts() {
        let sh = |script: &str| vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
        assert_eq!(run_observe(&sh("echo '[]'"), Duration::from_secs(30)).await.unwrap(), "[]\n");
        let err = run_observe(&sh("echo no >&2; exit 4"), Duration::from_secs(30)).await;
        assert_eq!(err.unwrap_err(), "exit status 4: no");
        let err = run_observe(&sh("sleep 30"), Duration::from_secs(1)).await;
        assert!(err.unwrap_err().starts_with("timed out after 1 s"));
        let err = run_observe(&["/nonexistent/observe".to_string()], Duration::from_secs(1)).await;
        assert!(err.unwrap_err().starts_with("could not start"));
    }

    #[tokio::test]
    async fn a_task_process_is_found_by_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(dir.path(), "t");
        std::fs::write(&files.input, "{}").unwrap();
        let argv: Vec<String> =
            ["/bin/sh", "-c", "cat; sleep 30"].iter().map(|s| s.to_string()).collect();
        let env = [("STEWARD_TASK_ID", "exec-test/1".to_string())];
        let mut child = spawn_task(&argv, &env, &files).unwrap();
        let pid = child.id().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&files.stdout).unwrap_or_default() != "{}" {
            assert!(std::time::Instant::now() < deadline, "the command never read its input");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(is_task_process(pid, "exec-test/1"));
        assert!(!is_task_process(pid, "exec-test/2"));
        assert_eq!(find_task_process("exec-test/1"), Some(pid));
        kill_group(pid).await;
        child.wait().await.unwrap();
        assert!(!is_task_process(pid, "exec-test/1"));
        files.remove();
        assert!(!files.stdout.exists());
    }
}
