//! `steward run watch`: a live progress bar (indicatif) over a run's targets, showing counts by
//! target status and why waiting targets wait, until the run is terminal. The demo reuses
//! [`Progress`].

use super::client::{CliError, Client};
use super::{EXIT_OK, EXIT_RUN_NOT_COMPLETED};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::Duration;
use steward_proto::{Run, RunStatus, RunStatusReason, Target, TargetStatus};

/// Counts by target status, non-zero ones only, e.g. `completed 5 · submitted 4 · pending 15`.
pub fn counts_line(run: &Run) -> String {
    let parts: Vec<String> = TargetStatus::ALL
        .iter()
        .filter(|s| run.counts.get(**s) > 0)
        .map(|s| format!("{} {}", s.as_str(), run.counts.get(*s)))
        .collect();
    if parts.is_empty() { "no targets".to_string() } else { parts.join(" · ") }
}

/// Why waiting targets wait, grouped by gate: `holds: wave 12, concurrency 3 (4 of 4 ...)`.
pub fn holds_line(targets: &[Target]) -> Option<String> {
    let mut by_gate: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for target in targets {
        if let Some(hold) = &target.hold {
            let entry = by_gate.entry(hold.gate.as_str()).or_insert((0, hold.message.as_str()));
            entry.0 += 1;
        }
    }
    if by_gate.is_empty() {
        return None;
    }
    let mut gates: Vec<(&str, (usize, &str))> = by_gate.into_iter().collect();
    gates.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let list: Vec<String> = gates.iter().map(|(gate, (n, _))| format!("{gate} {n}")).collect();
    let (_, (_, message)) = gates[0];
    Some(format!("holds: {} ({message})", list.join(", ")))
}

/// The status of a run as one phrase: `running, wave 2/3` or `paused (wave_gate): ...`.
pub fn status_phrase(run: &Run) -> String {
    let waves = run.waves.len();
    let mut phrase = format!("{}, wave {}/{}", run.status, run.current_wave.max(1), waves.max(1));
    if run.status_reason != RunStatusReason::None {
        phrase.push_str(&format!(" ({})", run.status_reason));
    }
    phrase
}

/// A live progress bar over one run.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    last: Option<(RunStatus, RunStatusReason, u32)>,
}

impl Progress {
    /// A bar with `total` targets; hidden (plain lines instead) when stderr is not a terminal.
    pub fn new(total: u64) -> Self {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar, last: None }
    }

    /// Prints a line above the bar (or to stderr when the bar is hidden).
    pub fn note(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Shows the run's latest state; notes status changes on their own line.
    pub fn update(&mut self, run: &Run, targets: &[Target]) {
        self.bar.set_length(u64::from(run.counts.total()));
        self.bar.set_position(u64::from(run.counts.terminal()));
        let mut message = format!("{} | {}", status_phrase(run), counts_line(run));
        if let Some(holds) = holds_line(targets) {
            message.push_str(" | ");
            message.push_str(&holds);
        }
        self.bar.set_message(message);
        let key = (run.status, run.status_reason, run.current_wave);
        if self.last != Some(key) {
            self.last = Some(key);
            let mut line = format!("run {}: {}", run.id, status_phrase(run));
            if !run.status_message.is_empty() {
                line.push_str(&format!(": {}", run.status_message));
            }
            self.note(&line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Exit code for a terminal run: 0 completed, 3 otherwise.
pub fn exit_code_for(run: &Run) -> i32 {
    if run.status == RunStatus::Completed { EXIT_OK } else { EXIT_RUN_NOT_COMPLETED }
}

/// Fetches a run and its targets.
pub async fn fetch(client: &Client, id: &str) -> Result<(Run, Vec<Target>), CliError> {
    let run: Run = client.get_as(&format!("/v1/runs/{id}")).await?;
    let targets: Vec<Target> = client.get_as(&format!("/v1/runs/{id}/targets")).await?;
    Ok((run, targets))
}

/// Watches a run until it is terminal; returns the exit code.
pub async fn watch(
    client: &Client,
    id: &str,
    interval: Duration,
    json: bool,
) -> Result<i32, CliError> {
    let (mut run, mut targets) = fetch(client, id).await?;
    let mut progress = Progress::new(u64::from(run.counts.total()));
    loop {
        progress.update(&run, &targets);
        if run.status.is_terminal() {
            break;
        }
        tokio::time::sleep(interval).await;
        (run, targets) = fetch(client, id).await?;
    }
    progress.finish();
    if json {
        println!("{}", serde_json::to_string_pretty(&run).unwrap_or_default());
    } else {
        println!("run {} {}: {}", run.id, run.status, counts_line(&run));
    }
    Ok(exit_code_for(&run))
}
