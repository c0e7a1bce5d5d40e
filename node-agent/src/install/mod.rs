//! Running the agent as an OS service: `node-agent service install|uninstall|status`.
//!
//! [`ServiceSpec`] describes the service once; each OS has a backend: a systemd unit on Linux
//! (`systemd`), a launchd daemon on macOS (`launchd`) and a Windows service (`windows`, which also
//! holds the service-control dispatcher the agent runs under). The unit file and plist renderers
//! are pure functions and compiled everywhere so they are tested on any host. Every backend
//! restarts the agent on failure, starts it at boot and gives a stop
//! [`ServiceSpec::stop_timeout`] to finish or hand back its chunk.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub mod launchd;
pub mod systemd;
#[cfg(windows)]
pub mod windows;

/// The service name (systemd unit and Windows service).
pub const DEFAULT_SERVICE_NAME: &str = "flatrender-agent";
/// The launchd label, also the plist's file name.
pub const DEFAULT_LAUNCHD_LABEL: &str = "com.flatrender.agent";
/// Long enough for a graceful stop to finish its chunk or hand it back.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause before the service manager restarts a failed agent.
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_secs(10);

/// What to install: one description rendered by every backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// Absolute path of the `node-agent` executable.
    pub executable: PathBuf,
    /// Arguments after the executable, e.g. `["run", "--config", "<path>"]`.
    pub args: Vec<String>,
    pub config_path: PathBuf,
    /// Where launchd writes stdout/stderr; created on install by every backend.
    pub log_dir: PathBuf,
    /// Account to run as; `None` runs as root / LocalSystem.
    pub user: Option<String>,
    pub launchd_label: String,
    pub stop_timeout: Duration,
    pub restart_delay: Duration,
}

impl ServiceSpec {
    /// The default service running `<executable> run --config <config_path>`.
    pub fn new(executable: PathBuf, config_path: PathBuf, log_dir: PathBuf) -> Self {
        let args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config_path.to_string_lossy().into_owned(),
        ];
        ServiceSpec {
            name: DEFAULT_SERVICE_NAME.to_owned(),
            display_name: "FlatRender node agent".to_owned(),
            description: "Renders FlatRender frame chunks with After Effects (aerender)".to_owned(),
            executable,
            args,
            config_path,
            log_dir,
            user: None,
            launchd_label: DEFAULT_LAUNCHD_LABEL.to_owned(),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            restart_delay: DEFAULT_RESTART_DELAY,
        }
    }

    /// The executable followed by its arguments.
    pub fn command_line(&self) -> Vec<String> {
        let mut command_line = vec![self.executable.to_string_lossy().into_owned()];
        command_line.extend(self.args.iter().cloned());
        command_line
    }
}

/// What the service manager says about the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    Starting,
    Stopping,
    /// Installed but not running (or not loaded).
    Stopped,
    /// Stopped after a failure (systemd's `failed`).
    Failed,
    NotInstalled,
    /// A state this code does not name, as the service manager spelled it.
    Other(String),
}

impl fmt::Display for ServiceState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ServiceState::Running => "running",
            ServiceState::Starting => "starting",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
            ServiceState::NotInstalled => "not installed",
            ServiceState::Other(other) => other,
        };
        formatter.write_str(text)
    }
}

/// What an install or uninstall did, and what is left for the operator to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The unit file or plist written or removed (none for Windows services).
    pub definition_path: Option<PathBuf>,
    /// Steps done, one line each (commands as run).
    pub actions: Vec<String>,
    /// Commands the operator still has to run (e.g. no systemd on this machine).
    pub manual_steps: Vec<String>,
}

impl fmt::Display for InstallReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for action in &self.actions {
            writeln!(formatter, "done: {action}")?;
        }
        if !self.manual_steps.is_empty() {
            writeln!(formatter, "still to run:")?;
            for step in &self.manual_steps {
                writeln!(formatter, "  {step}")?;
            }
        }
        Ok(())
    }
}

/// Service installation errors.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("service installation is not supported on {0}")]
    Unsupported(&'static str),
    #[cfg(windows)]
    #[error("windows service manager, {action}: {source}")]
    Windows {
        action: &'static str,
        source: windows_service::Error,
    },
}

/// Result of service operations.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Installs, enables and starts the service with this OS's service manager.
pub fn install(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    #[cfg(target_os = "linux")]
    return systemd::install(spec);
    #[cfg(target_os = "macos")]
    return launchd::install(spec);
    #[cfg(windows)]
    return windows::install(spec);
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = spec;
        Err(ServiceError::Unsupported(std::env::consts::OS))
    }
}

/// Stops and removes the service.
pub fn uninstall(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    #[cfg(target_os = "linux")]
    return systemd::uninstall(spec);
    #[cfg(target_os = "macos")]
    return launchd::uninstall(spec);
    #[cfg(windows)]
    return windows::uninstall(spec);
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = spec;
        Err(ServiceError::Unsupported(std::env::consts::OS))
    }
}

/// Asks the service manager for the service's state.
pub fn status(spec: &ServiceSpec) -> ServiceResult<ServiceState> {
    #[cfg(target_os = "linux")]
    return systemd::status(spec);
    #[cfg(target_os = "macos")]
    return launchd::status(spec);
    #[cfg(windows)]
    return windows::status(spec);
    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    {
        let _ = spec;
        Err(ServiceError::Unsupported(std::env::consts::OS))
    }
}

/// A finished service-manager command.
pub(crate) struct CommandOutput {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `program args` to completion. `Ok(None)` when the program is not installed.
pub(crate) fn run_command(program: &str, args: &[&str]) -> ServiceResult<Option<CommandOutput>> {
    match Command::new(program).args(args).output() {
        Ok(output) => Ok(Some(CommandOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ServiceError::Command {
            command: display_command(program, args),
            detail: error.to_string(),
        }),
    }
}

/// Runs a command that must succeed, recording it in `report`.
pub(crate) fn run_required(report: &mut InstallReport, program: &str, args: &[&str]) -> ServiceResult<()> {
    let command = display_command(program, args);
    match run_command(program, args)? {
        Some(output) if output.success => {
            report.actions.push(command);
            Ok(())
        }
        Some(output) => Err(ServiceError::Command {
            command,
            detail: output.stderr,
        }),
        None => Err(ServiceError::Command {
            command,
            detail: format!("{program} not found"),
        }),
    }
}

pub(crate) fn display_command(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates the log folder (and parents).
pub(crate) fn create_log_dir(spec: &ServiceSpec, report: &mut InstallReport) -> ServiceResult<()> {
    std::fs::create_dir_all(&spec.log_dir).map_err(|source| ServiceError::Io {
        path: spec.log_dir.clone(),
        source,
    })?;
    report
        .actions
        .push(format!("created log folder {}", spec.log_dir.display()));
    Ok(())
}

/// Writes a service definition through a temporary file and a rename, world-readable and
/// writable only by its owner (launchd refuses group- or world-writable plists).
pub(crate) fn write_definition(path: &Path, contents: &str) -> ServiceResult<()> {
    let io_error = |source| ServiceError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp_path = path.with_file_name(temp_name);
    std::fs::write(&temp_path, contents).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp_path, std::fs::Permissions::from_mode(0o644)).map_err(io_error)?;
    }
    std::fs::rename(&temp_path, path).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default spec runs `node-agent run --config <path>` under the documented names.
    #[test]
    fn default_spec_runs_the_agent_with_its_config() {
        let spec = ServiceSpec::new(
            PathBuf::from("/opt/flatrender/node-agent"),
            PathBuf::from("/etc/flatrender/agent.toml"),
            PathBuf::from("/var/log/flatrender"),
        );
        assert_eq!(spec.name, "flatrender-agent");
        assert_eq!(spec.launchd_label, "com.flatrender.agent");
        assert_eq!(
            spec.command_line(),
            vec![
                "/opt/flatrender/node-agent",
                "run",
                "--config",
                "/etc/flatrender/agent.toml"
            ]
        );
        assert_eq!(spec.stop_timeout, Duration::from_secs(120));
    }

    /// The report lists what was done, then what is left to run.
    #[test]
    fn report_lists_actions_then_manual_steps() {
        let report = InstallReport {
            definition_path: None,
            actions: vec!["wrote x".to_owned()],
            manual_steps: vec!["systemctl daemon-reload".to_owned()],
        };
        assert_eq!(
            report.to_string(),
            "done: wrote x\nstill to run:\n  systemctl daemon-reload\n"
        );
    }
}
