//! Linux: a systemd unit in `/etc/systemd/system/<name>.service`, enabled and started with
//! `systemctl`. Where systemd is not running (or `systemctl` is missing) the unit is still written
//! and the report says what to run.

use std::path::{Path, PathBuf};

use super::{InstallReport, ServiceResult, ServiceSpec, ServiceState, run_command, run_required, write_definition};

/// Where administrators' unit files live.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// `/etc/systemd/system/<name>.service`.
pub fn unit_path(spec: &ServiceSpec) -> PathBuf {
    Path::new(UNIT_DIR).join(format!("{}.service", spec.name))
}

/// The unit file. `KillMode=mixed` sends SIGTERM to the agent alone, so it can stop aerender
/// itself and report its chunk; whatever is left of the tree gets SIGKILL after `TimeoutStopSec`.
pub fn render_systemd_unit(spec: &ServiceSpec) -> String {
    let exec_start: Vec<String> = spec.command_line().iter().map(|arg| quote_exec_arg(arg)).collect();
    let mut unit = String::new();
    unit.push_str("[Unit]\n");
    unit.push_str(&format!(
        "Description={}\n",
        escape_specifiers(&single_line(&spec.description))
    ));
    unit.push_str("Wants=network-online.target\n");
    unit.push_str("After=network-online.target\n");
    unit.push_str("StartLimitIntervalSec=0\n");
    unit.push_str("\n[Service]\n");
    unit.push_str("Type=simple\n");
    unit.push_str(&format!("ExecStart={}\n", exec_start.join(" ")));
    if let Some(user) = &spec.user {
        unit.push_str(&format!("User={}\n", escape_specifiers(&single_line(user))));
    }
    unit.push_str("Restart=on-failure\n");
    unit.push_str(&format!("RestartSec={}\n", spec.restart_delay.as_secs().max(1)));
    unit.push_str("KillMode=mixed\n");
    unit.push_str("KillSignal=SIGTERM\n");
    unit.push_str(&format!("TimeoutStopSec={}\n", spec.stop_timeout.as_secs().max(1)));
    unit.push_str("\n[Install]\n");
    unit.push_str("WantedBy=multi-user.target\n");
    unit
}

/// Quotes one `ExecStart=` word the way systemd parses it: double quotes around anything empty or
/// holding whitespace, quotes, backslashes or `;`, with `\` and `"` escaped inside; `%` and `$`
/// doubled so systemd does not expand them as specifiers or variables.
fn quote_exec_arg(arg: &str) -> String {
    let needs_quotes = arg.is_empty()
        || arg
            .chars()
            .any(|character| character.is_whitespace() || matches!(character, '"' | '\'' | '\\' | ';'));
    let mut quoted = String::with_capacity(arg.len() + 2);
    if needs_quotes {
        quoted.push('"');
    }
    for character in arg.chars() {
        match character {
            '\\' if needs_quotes => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '%' => quoted.push_str("%%"),
            '$' => quoted.push_str("$$"),
            other => quoted.push(other),
        }
    }
    if needs_quotes {
        quoted.push('"');
    }
    quoted
}

fn escape_specifiers(value: &str) -> String {
    value.replace('%', "%%")
}

fn single_line(value: &str) -> String {
    value.replace(['\r', '\n'], " ")
}

/// Whether systemd is the running init (the `sd_booted` test).
fn systemd_is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Writes the unit, reloads systemd and enables and starts the service.
pub fn install(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    install_unit_at(spec, &unit_path(spec), systemd_is_running())
}

fn install_unit_at(spec: &ServiceSpec, path: &Path, systemd_running: bool) -> ServiceResult<InstallReport> {
    let mut report = InstallReport {
        definition_path: Some(path.to_path_buf()),
        ..InstallReport::default()
    };
    super::create_log_dir(spec, &mut report)?;
    write_definition(path, &render_systemd_unit(spec))?;
    report.actions.push(format!("wrote {}", path.display()));
    let enable_args = ["enable", "--now", spec.name.as_str()];
    if !systemd_running || run_command("systemctl", &["--version"])?.is_none() {
        report.manual_steps.push("systemctl daemon-reload".to_owned());
        report
            .manual_steps
            .push(super::display_command("systemctl", &enable_args));
        return Ok(report);
    }
    run_required(&mut report, "systemctl", &["daemon-reload"])?;
    run_required(&mut report, "systemctl", &enable_args)?;
    Ok(report)
}

/// Stops and disables the service, removes the unit and reloads systemd.
pub fn uninstall(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    let path = unit_path(spec);
    let mut report = InstallReport {
        definition_path: Some(path.clone()),
        ..InstallReport::default()
    };
    let disable_args = ["disable", "--now", spec.name.as_str()];
    let can_run_systemctl = systemd_is_running() && run_command("systemctl", &["--version"])?.is_some();
    if can_run_systemctl {
        // Fails harmlessly when the unit is not loaded; the file is removed either way.
        if let Some(output) = run_command("systemctl", &disable_args)? {
            if output.success {
                report.actions.push(super::display_command("systemctl", &disable_args));
            } else {
                tracing::warn!(stderr = %output.stderr, "systemctl disable failed, removing the unit anyway");
            }
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => report.actions.push(format!("removed {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(super::ServiceError::Io { path, source }),
    }
    if can_run_systemctl {
        run_required(&mut report, "systemctl", &["daemon-reload"])?;
    } else {
        report
            .manual_steps
            .push(super::display_command("systemctl", &disable_args));
        report.manual_steps.push("systemctl daemon-reload".to_owned());
    }
    Ok(report)
}

/// `systemctl is-active <name>`, or `NotInstalled` when the unit file is absent.
pub fn status(spec: &ServiceSpec) -> ServiceResult<ServiceState> {
    if !unit_path(spec).exists() {
        return Ok(ServiceState::NotInstalled);
    }
    // `is-active` exits non-zero for anything but active; its stdout is the state either way.
    match run_command("systemctl", &["is-active", spec.name.as_str()])? {
        Some(output) => Ok(parse_is_active(&output.stdout)),
        None => Ok(ServiceState::Other("unknown (systemctl not found)".to_owned())),
    }
}

fn parse_is_active(stdout: &str) -> ServiceState {
    match stdout.trim() {
        "active" | "reloading" => ServiceState::Running,
        "activating" => ServiceState::Starting,
        "deactivating" => ServiceState::Stopping,
        "inactive" => ServiceState::Stopped,
        "failed" => ServiceState::Failed,
        other => ServiceState::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec::new(
            PathBuf::from("/opt/flatrender/node-agent"),
            PathBuf::from("/etc/flatrender/agent config.toml"),
            PathBuf::from("/var/log/flatrender"),
        )
    }

    /// The unit restarts on failure, waits for the network, stops gracefully and starts at boot.
    #[test]
    fn unit_has_restart_network_stop_and_boot_lines() {
        let unit = render_systemd_unit(&spec());
        for expected_line in [
            "[Unit]",
            "After=network-online.target",
            "Wants=network-online.target",
            "Restart=on-failure",
            "RestartSec=10",
            "KillMode=mixed",
            "TimeoutStopSec=120",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                unit.lines().any(|line| line == expected_line),
                "missing {expected_line:?} in:\n{unit}"
            );
        }
        assert!(!unit.contains("User="));
    }

    /// Arguments with spaces are double-quoted so systemd keeps them as one word.
    #[test]
    fn exec_start_quotes_arguments_with_spaces() {
        let unit = render_systemd_unit(&spec());
        assert!(
            unit.contains("ExecStart=/opt/flatrender/node-agent run --config \"/etc/flatrender/agent config.toml\"\n"),
            "{unit}"
        );
    }

    /// Quotes, backslashes, `%`, `$` and empty words are escaped for systemd.
    #[test]
    fn exec_words_are_escaped() {
        assert_eq!(quote_exec_arg("plain"), "plain");
        assert_eq!(quote_exec_arg(""), "\"\"");
        assert_eq!(quote_exec_arg("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(quote_exec_arg("C:\\a b"), "\"C:\\\\a b\"");
        assert_eq!(quote_exec_arg("100%"), "100%%");
        assert_eq!(quote_exec_arg("$HOME"), "$$HOME");
        assert_eq!(quote_exec_arg(";"), "\";\"");
    }

    /// The user, restart delay and stop timeout come from the spec.
    #[test]
    fn unit_uses_the_spec_user_and_timings() {
        let mut custom_spec = spec();
        custom_spec.user = Some("render".to_owned());
        custom_spec.stop_timeout = Duration::from_secs(300);
        custom_spec.restart_delay = Duration::from_secs(5);
        let unit = render_systemd_unit(&custom_spec);
        assert!(unit.lines().any(|line| line == "User=render"));
        assert!(unit.lines().any(|line| line == "TimeoutStopSec=300"));
        assert!(unit.lines().any(|line| line == "RestartSec=5"));
    }

    /// Without systemd the unit is written and the report says what to run.
    #[test]
    fn install_without_systemd_writes_the_unit_and_lists_commands() {
        let dir = tempfile::tempdir().unwrap();
        let mut local_spec = spec();
        local_spec.log_dir = dir.path().join("logs");
        let path = dir.path().join("flatrender-agent.service");
        let report = install_unit_at(&local_spec, &path, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            render_systemd_unit(&local_spec)
        );
        assert!(local_spec.log_dir.is_dir());
        assert_eq!(
            report.manual_steps,
            vec!["systemctl daemon-reload", "systemctl enable --now flatrender-agent"]
        );
    }

    /// `systemctl is-active` words map to service states.
    #[test]
    fn is_active_output_maps_to_states() {
        assert_eq!(parse_is_active("active\n"), ServiceState::Running);
        assert_eq!(parse_is_active("inactive\n"), ServiceState::Stopped);
        assert_eq!(parse_is_active("failed\n"), ServiceState::Failed);
        assert_eq!(parse_is_active("activating\n"), ServiceState::Starting);
        assert_eq!(
            parse_is_active("maintenance\n"),
            ServiceState::Other("maintenance".to_owned())
        );
    }
}
