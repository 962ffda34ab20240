//! Processes the engine or an adapter starts for a site (hooks, the exec adapter's commands):
//! killing a command's whole process group, children included, when it runs past its time.

use std::process::Stdio;
use tokio::process::Command;

/// SIGKILL to process group `pgid` (a command started as its group's leader, and its children).
/// A failure to kill is logged, not returned: the caller has already given up on the command.
pub async fn kill_group(pgid: u32) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = status {
        tracing::warn!(%error, pgid, "could not kill a command's process group");
    }
}
