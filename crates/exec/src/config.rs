//! The `[core.exec]` configuration: its TOML shape, defaults and validation.
//!
//! Every command is an argv array run without a shell; only these config-defined commands are
//! ever executed (nothing from a request body). Validation happens once, at start, and every
//! error names its key (`core.exec.power_on`, `core.exec.timeout_seconds`).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use steward_proto::OperationKind;
use steward_runtime::core::CoreError;

/// Where every key of this table lives in the config file.
pub const PREFIX: &str = "core.exec";

/// Default limit of one operation command.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;
/// Default limit of one observe command.
pub const DEFAULT_OBSERVE_TIMEOUT_SECONDS: u64 = 60;

/// `[core.exec]` as written in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Prints a JSON array of observations (required).
    #[serde(default)]
    pub observe: Vec<String>,
    /// Runs a `power_on` task.
    pub power_on: Option<Vec<String>>,
    /// Runs a `power_off` task.
    pub power_off: Option<Vec<String>>,
    /// Runs a `power_cycle` task.
    pub power_cycle: Option<Vec<String>>,
    /// Runs a `firmware_update` task.
    pub firmware_update: Option<Vec<String>>,
    /// Limit of one operation command, in seconds (default 3600); then its process group is
    /// killed and the task fails.
    pub timeout_seconds: Option<u64>,
    /// Limit of one observe command, in seconds (default 60).
    pub observe_timeout_seconds: Option<u64>,
    /// Directory of the tasks' request and output files (default: `{db}.exec` next to the
    /// database).
    pub work_dir: Option<PathBuf>,
}

/// The validated settings the adapter runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The observe command.
    pub observe: Vec<String>,
    /// One command per operation kind (absent: the operation is refused).
    pub commands: Vec<(OperationKind, Vec<String>)>,
    /// Limit of one operation command.
    pub timeout: Duration,
    /// Limit of one observe command.
    pub observe_timeout: Duration,
    /// Explicit work directory (`None`: next to the database).
    pub work_dir: Option<PathBuf>,
}

impl Settings {
    /// The command configured for `kind`, if any.
    pub fn command(&self, kind: OperationKind) -> Option<&[String]> {
        self.commands.iter().find(|(k, _)| *k == kind).map(|(_, argv)| argv.as_slice())
    }

    /// The work directory for a database at `db`.
    pub fn work_dir_for(&self, db: &Path) -> PathBuf {
        match &self.work_dir {
            Some(dir) => dir.clone(),
            None => {
                let mut name = db.as_os_str().to_os_string();
                name.push(".exec");
                PathBuf::from(name)
            }
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> CoreError {
    CoreError::InvalidConfig { field: format!("{PREFIX}.{field}"), message: message.into() }
}

impl ExecConfig {
    /// Parses the `[core.exec]` table.
    pub fn from_table(table: toml::Table) -> Result<ExecConfig, CoreError> {
        ExecConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| CoreError::InvalidConfig { field: PREFIX.into(), message: e.to_string() })
    }

    /// Checks every value; the first problem names its key.
    pub fn validate(&self) -> Result<Settings, CoreError> {
        check_argv("observe", &self.observe)?;
        let mut commands = Vec::new();
        for kind in OperationKind::ALL {
            let argv = match kind {
                OperationKind::PowerOn => &self.power_on,
                OperationKind::PowerOff => &self.power_off,
                OperationKind::PowerCycle => &self.power_cycle,
                OperationKind::FirmwareUpdate => &self.firmware_update,
            };
            if let Some(argv) = argv {
                check_argv(kind.as_str(), argv)?;
                commands.push((kind, argv.clone()));
            }
        }
        if commands.is_empty() {
            return Err(invalid(
                "power_on",
                "no operation command is configured; set at least one of power_on, power_off, \
                 power_cycle, firmware_update",
            ));
        }
        let timeout = self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        if !(1..=7 * 86_400).contains(&timeout) {
            return Err(invalid("timeout_seconds", "must be between 1 and 604800"));
        }
        let observe_timeout =
            self.observe_timeout_seconds.unwrap_or(DEFAULT_OBSERVE_TIMEOUT_SECONDS);
        if !(1..=3600).contains(&observe_timeout) {
            return Err(invalid("observe_timeout_seconds", "must be between 1 and 3600"));
        }
        if let Some(dir) = &self.work_dir
            && dir.as_os_str().is_empty()
        {
            return Err(invalid("work_dir", "must not be empty (omit it for the default)"));
        }
        Ok(Settings {
            observe: self.observe.clone(),
            commands,
            timeout: Duration::from_secs(timeout),
            observe_timeout: Duration::from_secs(observe_timeout),
            work_dir: self.work_dir.clone(),
        })
    }
}

/// A command: a non-empty argv whose program is an absolute path to an executable file.
fn check_argv(field: &str, argv: &[String]) -> Result<(), CoreError> {
    let Some(program) = argv.first() else {
        return Err(invalid(
            field,
            "must be a non-empty argv array, e.g. [\"/opt/site/observe\"] (no shell)",
        ));
    };
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(invalid(field, "arguments must not contain NUL"));
    }
    let path = Path::new(program);
    if !path.is_absolute() {
        return Err(invalid(
            field,
            format!("{program:?} must be an absolute path (no PATH lookup)"),
        ));
    }
    let metadata =
        std::fs::metadata(path).map_err(|e| invalid(field, format!("{program}: {e}")))?;
    if !metadata.is_file() {
        return Err(invalid(field, format!("{program} is not a file")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o111 == 0 {
            return Err(invalid(field, format!("{program} is not executable")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Settings, CoreError> {
        let value: toml::Table = toml::from_str(text).unwrap();
        ExecConfig::from_table(value)?.validate()
    }

    fn field(result: Result<Settings, CoreError>) -> String {
        match result {
            Err(CoreError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(field(parse("")), "core.exec.observe");
        assert_eq!(field(parse("observe = []")), "core.exec.observe");
        assert_eq!(field(parse("observe = [\"true\"]")), "core.exec.observe");
        assert_eq!(field(parse("observe = [\"/bin/sh\"]")), "core.exec.power_on");
        assert_eq!(
            field(parse("observe = [\"/bin/sh\"]\npower_on = [\"/nonexistent/steward-x\"]")),
            "core.exec.power_on"
        );
        assert_eq!(
            field(parse("observe = [\"/bin/sh\"]\nfirmware_update = [\"relative/flash\"]")),
            "core.exec.firmware_update"
        );
        assert_eq!(
            field(parse("observe = [\"/bin/sh\"]\npower_cycle = [\"/\"]")),
            "core.exec.power_cycle"
        );
        let ok = "observe = [\"/bin/sh\"]\npower_off = [\"/bin/sh\", \"-c\", \"x\"]\n";
        assert_eq!(field(parse(&format!("{ok}timeout_seconds = 0"))), "core.exec.timeout_seconds");
        assert_eq!(
            field(parse(&format!("{ok}observe_timeout_seconds = 99999"))),
            "core.exec.observe_timeout_seconds"
        );
        assert_eq!(field(parse(&format!("{ok}shell = \"bash\""))), "core.exec");
        assert_eq!(field(parse(&format!("{ok}work_dir = \"\""))), "core.exec.work_dir");
    }

    #[test]
    fn a_valid_table_gives_settings_and_defaults() {
        let settings = parse(
            "observe = [\"/bin/sh\", \"/opt/observe.sh\"]\npower_off = [\"/bin/sh\", \"off\"]\n",
        )
        .unwrap();
        assert_eq!(settings.command(OperationKind::PowerOff).unwrap()[1], "off");
        assert!(settings.command(OperationKind::PowerOn).is_none());
        assert_eq!(settings.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECONDS));
        assert_eq!(settings.observe_timeout, Duration::from_secs(60));
        assert_eq!(
            settings.work_dir_for(Path::new("/var/lib/steward.db")),
            PathBuf::from("/var/lib/steward.db.exec")
        );
    }
}
