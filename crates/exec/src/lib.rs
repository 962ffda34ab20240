//! `steward-exec`: the exec Core adapter, for sites whose hardware is driven by their own
//! tools. `[core] adapter = "exec"` with a `[core.exec]` table naming commands (argv arrays,
//! run without a shell; nothing from a request body is ever executed):
//!
//! - `observe` prints a JSON array of observations, one per component: `component_id`,
//!   `rack_id`, `kind`, `controller_state` (a string, or a JSON object for the JSON-tagged
//!   kinds), optional `name`, `power_state`, `firmware_version`, `observed_at`. It runs every
//!   sync interval; the components it reports are imported into the inventory. A failing run
//!   or an output that is not an array makes every known component `unknown` (never a stale
//!   `ready`); a bad entry is skipped with a warning.
//! - `power_on`, `power_off`, `power_cycle`, `firmware_update`: one command per operation
//!   (at least one). It reads the request document on stdin (`task_id`, `idempotency_key`,
//!   `run_id`, `target_id`, `rack_id`, `operation`, `components`) and gets
//!   `STEWARD_TASK_ID`, `STEWARD_TASK_KEY`, `STEWARD_RUN_ID`, `STEWARD_TARGET_ID`,
//!   `STEWARD_RACK_ID`, `STEWARD_OPERATION`, `STEWARD_COMPONENTS` (newline-separated) and,
//!   for firmware, `STEWARD_FIRMWARE_VERSION`. It prints JSON lines of progress and a final
//!   result (see [`protocol`]); exit 0 with every component `completed` completes the task;
//!   a malformed line, a non-zero exit or a missing result fails it with stderr's last line
//!   in the message; `timeout_seconds` kills its process group.
//!
//! Guarantees, as for the other adapters: each task is journaled in Steward's database
//! (`store::journal::AdapterJournal`: the SQLite file, or in HA mode PostgreSQL with every write
//! fenced by the leader's epoch, see [`ExecCore::start_with_journal`]), `find_task` answers by
//! key after a crash or a takeover,
//! and no task is started twice: `started` is committed before the spawn, and a started
//! command is afterwards only watched (its output goes to files that survive a crash of
//! Steward), never run again. See [`core`].
//!
//! Modules: [`config`] (the `[core.exec]` table), [`protocol`] (the JSON documents and lines,
//! pure), [`process`] (spawning, liveness, killing), [`core`] (the `Core` trait, journal,
//! runners, resume).

pub mod config;
pub mod core;
pub mod process;
pub mod protocol;

pub use crate::config::{ExecConfig, Settings};
pub use crate::core::ExecCore;
