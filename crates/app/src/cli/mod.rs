//! The `steward` command line (clap): `serve`, `demo`, `replay`, and the client commands of
//! API.md §1 that talk to a server over HTTP.
//!
//! Exit codes: 0 success, 1 the server or store refused (one-line reason on stderr), 2 usage
//! error, 3 `run watch` saw the run end other than `completed`.

pub mod client;
pub mod commands;
pub mod table;
pub mod watch;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

pub use client::{CliError, Client};
pub use commands::execute;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the server or store refused, or could not be reached.
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: `run watch` saw the run end as completed_with_failures, failed or cancelled.
pub const EXIT_RUN_NOT_COMPLETED: i32 = 3;

/// Steward: component status, service states and safe fleet-wide operations above Core.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about)]
pub struct Cli {
    /// Server URL for client commands.
    #[arg(long, global = true, env = "STEWARD_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// Bearer token for client commands.
    #[arg(long, global = true, env = "STEWARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (HTTP API, SQLite store, sim Core).
    Serve(ServeArgs),
    /// A self-contained tour: a firmware update over a simulated fleet with injected failures.
    Demo(DemoArgs),
    /// Inventory import.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Racks.
    #[command(subcommand)]
    Racks(RacksCommand),
    /// Components with their status and service state.
    #[command(subcommand)]
    Components(ComponentsCommand),
    /// Push raw Core observations from a JSON file (an array of observations).
    Observe {
        /// JSON file: `[{"component_id","controller_state",...}]`.
        file: PathBuf,
    },
    /// Service states.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Operation runs.
    #[command(subcommand)]
    Run(RunCommand),
    /// The event log.
    Events(EventsArgs),
    /// State machines.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Rebuild state from a database's event log and compare it with the stored state.
    Replay {
        /// The SQLite file (a running server may keep writing it: replay reads one snapshot).
        #[arg(long)]
        db: PathBuf,
        /// A config whose tables replay starts from; only needed for databases written before
        /// the event log recorded the site tables (`site_tables_applied`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// API token helpers.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `steward serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// SQLite file (overrides the config).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Listen address (overrides the config).
    #[arg(long)]
    pub listen: Option<String>,
}

/// `steward demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's database in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// `steward inventory ...`.
#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Create or update racks and components from a JSON file (`{"racks":[...]}`).
    Import {
        /// The inventory file.
        file: PathBuf,
    },
}

/// `steward racks ...`.
#[derive(Debug, Subcommand)]
pub enum RacksCommand {
    /// Every rack.
    List,
    /// One rack with its components.
    Show {
        /// Rack id.
        id: String,
    },
}

/// `steward components ...`.
#[derive(Debug, Subcommand)]
pub enum ComponentsCommand {
    /// Components, optionally filtered.
    List {
        /// Only this rack.
        #[arg(long)]
        rack: Option<String>,
        /// Only this kind (compute, nvswitch, power_shelf, node).
        #[arg(long)]
        kind: Option<String>,
        /// Only this phase (unknown, initializing, ready, in_use, error, deleting).
        #[arg(long)]
        phase: Option<String>,
        /// Only this service state.
        #[arg(long)]
        service_state: Option<String>,
    },
    /// One component.
    Show {
        /// Component id.
        id: String,
    },
}

/// `steward service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Move a component to another service state.
    Set {
        /// Component id.
        id: String,
        /// Target state.
        state: String,
        /// A note for the history.
        #[arg(long)]
        note: Option<String>,
    },
    /// Move a component to any state of the table, bypassing the transitions (admin; the note
    /// is required and audited).
    Force {
        /// Component id.
        id: String,
        /// Target state (any state of the server's table).
        state: String,
        /// Why (recorded in the history as `forced: NOTE`).
        #[arg(long)]
        note: String,
    },
    /// A component's service-state history, oldest first.
    History {
        /// Component id.
        id: String,
    },
}

/// Operations a run can perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum OpArg {
    /// Power on.
    PowerOn,
    /// Power off.
    PowerOff,
    /// Power cycle.
    PowerCycle,
    /// Firmware update (needs --version).
    FirmwareUpdate,
}

/// `--on-not-ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NotReadyArg {
    /// Hold the target until ready.
    Wait,
    /// Skip the target.
    Skip,
}

/// What a safety gate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Failures in the current wave.
    Wave,
    /// Failures over the whole run.
    Run,
}

/// `steward run create` options.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("selection").required(true).multiple(false)
    .args(["rack", "component", "all", "labels"]))]
pub struct CreateArgs {
    /// The operation.
    #[arg(long, value_enum)]
    pub op: OpArg,
    /// Firmware version (firmware_update).
    #[arg(long)]
    pub version: Option<String>,
    /// A rack to include (repeatable).
    #[arg(long, num_args = 1..)]
    pub rack: Vec<String>,
    /// A component to include (repeatable); its rack becomes a target.
    #[arg(long, num_args = 1..)]
    pub component: Vec<String>,
    /// Every rack.
    #[arg(long)]
    pub all: bool,
    /// Racks whose labels match every KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", num_args = 1..)]
    pub labels: Vec<String>,
    /// Only these component kinds (repeatable).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Leave out racks covered by these runs (repeatable).
    #[arg(long = "exclude-run")]
    pub exclude_runs: Vec<String>,
    /// Run name.
    #[arg(long)]
    pub name: Option<String>,
    /// Racks in flight at once.
    #[arg(long)]
    pub max_parallel: Option<u32>,
    /// Wave sizes: `N` (racks; the remainder becomes a last wave), `N%` (percent of the racks;
    /// what is left becomes a last wave) or `equal:N` (N equal waves). Repeatable and mixable:
    /// `--wave 1 --wave 25%` is a canary rack, a quarter of the racks, then the rest.
    #[arg(long = "wave", value_name = "SPEC", num_args = 1..)]
    pub waves: Vec<String>,
    /// Pause the run when this many targets failed.
    #[arg(long, conflicts_with = "max_failure_ratio")]
    pub max_failures: Option<u32>,
    /// Pause the run when this fraction (0 < F <= 1) of targets failed.
    #[arg(long)]
    pub max_failure_ratio: Option<f64>,
    /// What the failure gate counts.
    #[arg(long, value_enum, default_value = "wave")]
    pub gate_scope: ScopeArg,
    /// Hold or skip targets whose components are not ready.
    #[arg(long, value_enum)]
    pub on_not_ready: Option<NotReadyArg>,
    /// Open each next wave by itself (otherwise the run pauses at a wave gate).
    #[arg(long)]
    pub auto_advance: bool,
    /// Extra policy JSON (inline `{...}` or a file); the flags above override it.
    #[arg(long)]
    pub policy: Option<String>,
    /// Plan only: print the waves, targets and holds; create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `steward run ...`.
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Create (and start) a run.
    Create(Box<CreateArgs>),
    /// Every run, newest first.
    List,
    /// One run with its waves.
    Show {
        /// Run id.
        id: String,
    },
    /// A run's targets with their holds.
    Targets {
        /// Run id.
        id: String,
    },
    /// Pause a running run.
    Pause {
        /// Run id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a paused run (acknowledges the failures that tripped a safety gate).
    Resume {
        /// Run id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel a run.
    Cancel {
        /// Run id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Create a new run over a finished run's failed and skipped targets (same operation and
    /// policy), linked to the first.
    Rerun {
        /// The finished run's id.
        id: String,
        /// Only the failed (and terminated) targets, not the skipped ones.
        #[arg(long)]
        failed_only: bool,
    },
    /// Open the next wave of a run paused at a wave gate.
    Advance {
        /// Run id.
        id: String,
        /// Refuse unless this is the wave that would open.
        #[arg(long)]
        expected_wave: Option<u32>,
    },
    /// Show live progress until the run ends (exit 0 completed, 3 otherwise).
    Watch {
        /// Run id.
        id: String,
        /// Poll interval in milliseconds.
        #[arg(long, default_value_t = 300)]
        interval_ms: u64,
    },
}

/// `steward events` options.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Keep waiting for new events.
    #[arg(long)]
    pub follow: bool,
}

/// Formats of `machine show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MachineFormat {
    /// Aligned table.
    Table,
    /// Mermaid state diagram.
    Mermaid,
    /// JSON.
    Json,
}

/// `steward machine ...`.
#[derive(Debug, Subcommand)]
pub enum MachineCommand {
    /// Print a machine's transition table (service, run, target, task).
    Show {
        /// Machine name.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: MachineFormat,
    },
}

/// `steward token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the SHA-256 to put in a `[[tokens]]` entry.
    Hash {
        /// The token.
        token: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_create_needs_exactly_one_selection() {
        assert!(Cli::try_parse_from(["steward", "run", "create", "--op", "power_on"]).is_err());
        assert!(
            Cli::try_parse_from([
                "steward", "run", "create", "--op", "power_on", "--all", "--rack", "r1"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "steward",
            "run",
            "create",
            "--op",
            "firmware_update",
            "--version",
            "2.0",
            "--rack",
            "r1",
            "--rack",
            "r2",
            "--wave",
            "1",
            "--wave",
            "25%",
        ]);
        assert!(cli.is_ok());
    }
}
