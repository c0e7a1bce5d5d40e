//! macOS: a launchd daemon in `/Library/LaunchDaemons/<label>.plist`, loaded with
//! `launchctl bootstrap system`. launchd restarts it when it exits unsuccessfully, starts it at
//! boot and gives it `ExitTimeOut` seconds after SIGTERM before SIGKILL.

use std::path::{Path, PathBuf};

use super::{
    InstallReport, ServiceError, ServiceResult, ServiceSpec, ServiceState, display_command, run_command, run_required,
    write_definition,
};

/// Where system-wide daemons are defined.
pub const LAUNCH_DAEMONS_DIR: &str = "/Library/LaunchDaemons";

/// `/Library/LaunchDaemons/<label>.plist`.
pub fn plist_path(spec: &ServiceSpec) -> PathBuf {
    Path::new(LAUNCH_DAEMONS_DIR).join(format!("{}.plist", spec.launchd_label))
}

/// The agent's stdout and stderr files under the spec's log folder.
pub fn log_paths(spec: &ServiceSpec) -> (PathBuf, PathBuf) {
    (
        spec.log_dir.join("agent.stdout.log"),
        spec.log_dir.join("agent.stderr.log"),
    )
}

/// The property list. `KeepAlive.SuccessfulExit = false` restarts the agent only when it exits
/// with a failure (a clean `service uninstall` or drain-and-exit stays down);
/// `ThrottleInterval` spaces restarts.
pub fn render_launchd_plist(spec: &ServiceSpec) -> String {
    let (stdout_path, stderr_path) = log_paths(spec);
    let mut plist = String::new();
    plist.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    plist.push_str(
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n",
    );
    plist.push_str("<plist version=\"1.0\">\n<dict>\n");
    push_string(&mut plist, "Label", &spec.launchd_label);
    plist.push_str("\t<key>ProgramArguments</key>\n\t<array>\n");
    for arg in spec.command_line() {
        plist.push_str(&format!("\t\t<string>{}</string>\n", xml_escape(&arg)));
    }
    plist.push_str("\t</array>\n");
    if let Some(user) = &spec.user {
        push_string(&mut plist, "UserName", user);
    }
    plist.push_str("\t<key>RunAtLoad</key>\n\t<true/>\n");
    plist.push_str("\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n");
    push_integer(&mut plist, "ThrottleInterval", spec.restart_delay.as_secs().max(1));
    push_integer(&mut plist, "ExitTimeOut", spec.stop_timeout.as_secs().max(1));
    push_string(&mut plist, "StandardOutPath", &stdout_path.to_string_lossy());
    push_string(&mut plist, "StandardErrorPath", &stderr_path.to_string_lossy());
    push_string(&mut plist, "ProcessType", "Standard");
    plist.push_str("</dict>\n</plist>\n");
    plist
}

fn push_string(plist: &mut String, key: &str, value: &str) {
    plist.push_str(&format!(
        "\t<key>{key}</key>\n\t<string>{}</string>\n",
        xml_escape(value)
    ));
}

fn push_integer(plist: &mut String, key: &str, value: u64) {
    plist.push_str(&format!("\t<key>{key}</key>\n\t<integer>{value}</integer>\n"));
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn service_target(spec: &ServiceSpec) -> String {
    format!("system/{}", spec.launchd_label)
}

/// Writes the plist, replaces any loaded copy and bootstraps it into the system domain.
pub fn install(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    let path = plist_path(spec);
    let mut report = InstallReport {
        definition_path: Some(path.clone()),
        ..InstallReport::default()
    };
    super::create_log_dir(spec, &mut report)?;
    write_definition(&path, &render_launchd_plist(spec))?;
    report.actions.push(format!("wrote {}", path.display()));
    let target = service_target(spec);
    let plist_arg = path.to_string_lossy().into_owned();
    let bootstrap_args = ["bootstrap", "system", plist_arg.as_str()];
    let Some(_) = run_command("launchctl", &["version"])? else {
        report
            .manual_steps
            .push(display_command("launchctl", &["enable", target.as_str()]));
        report.manual_steps.push(display_command("launchctl", &bootstrap_args));
        return Ok(report);
    };
    // A copy loaded by an earlier install must go first; failing here just means none was loaded.
    if run_command("launchctl", &["bootout", target.as_str()])?.is_some_and(|output| output.success) {
        report
            .actions
            .push(display_command("launchctl", &["bootout", target.as_str()]));
    }
    run_required(&mut report, "launchctl", &["enable", target.as_str()])?;
    run_required(&mut report, "launchctl", &bootstrap_args)?;
    Ok(report)
}

/// Boots the daemon out (launchd sends SIGTERM, then SIGKILL after `ExitTimeOut`) and removes it.
pub fn uninstall(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    let path = plist_path(spec);
    let mut report = InstallReport {
        definition_path: Some(path.clone()),
        ..InstallReport::default()
    };
    let target = service_target(spec);
    match run_command("launchctl", &["bootout", target.as_str()])? {
        Some(output) if output.success => report.actions.push(display_command("launchctl", &["bootout", &target])),
        Some(output) => tracing::warn!(stderr = %output.stderr, "launchctl bootout failed, removing the plist anyway"),
        None => report
            .manual_steps
            .push(display_command("launchctl", &["bootout", &target])),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => report.actions.push(format!("removed {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ServiceError::Io { path, source }),
    }
    Ok(report)
}

/// `launchctl print system/<label>`: its `state = ...` line, `Stopped` when the plist exists but
/// is not loaded, `NotInstalled` when it does not exist.
pub fn status(spec: &ServiceSpec) -> ServiceResult<ServiceState> {
    let target = service_target(spec);
    match run_command("launchctl", &["print", target.as_str()])? {
        Some(output) if output.success => Ok(parse_print_state(&output.stdout)),
        _ if plist_path(spec).exists() => Ok(ServiceState::Stopped),
        _ => Ok(ServiceState::NotInstalled),
    }
}

fn parse_print_state(print_output: &str) -> ServiceState {
    let state_value = print_output
        .lines()
        .find_map(|line| line.trim().strip_prefix("state = ").map(str::trim));
    match state_value {
        Some("running") => ServiceState::Running,
        Some("spawn scheduled" | "spawning") => ServiceState::Starting,
        Some("exiting") => ServiceState::Stopping,
        Some("not running" | "waiting") => ServiceState::Stopped,
        Some(other) => ServiceState::Other(other.to_owned()),
        None => ServiceState::Other("loaded".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec::new(
            PathBuf::from("/Applications/FlatRender & Co/node-agent"),
            PathBuf::from("/Library/Application Support/FlatRender/agent.toml"),
            PathBuf::from("/Library/Logs/FlatRender <agent>"),
        )
    }

    /// The plist is a daemon that starts at load, restarts on failure and stops gracefully.
    #[test]
    fn plist_has_daemon_keys() {
        let plist = render_launchd_plist(&spec());
        for expected in [
            "\t<key>Label</key>\n\t<string>com.flatrender.agent</string>",
            "\t<key>RunAtLoad</key>\n\t<true/>",
            "\t<key>KeepAlive</key>\n\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>",
            "\t<key>ThrottleInterval</key>\n\t<integer>10</integer>",
            "\t<key>ExitTimeOut</key>\n\t<integer>120</integer>",
        ] {
            assert!(plist.contains(expected), "missing {expected:?} in:\n{plist}");
        }
        assert!(!plist.contains("UserName"));
        assert!(plist.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"));
    }

    /// Paths with `&`, `<` and spaces are XML-escaped, each argument its own string.
    #[test]
    fn plist_escapes_paths() {
        let plist = render_launchd_plist(&spec());
        assert!(
            plist.contains("\t\t<string>/Applications/FlatRender &amp; Co/node-agent</string>\n"),
            "{plist}"
        );
        assert!(plist.contains("\t\t<string>/Library/Application Support/FlatRender/agent.toml</string>\n"));
        assert!(plist.contains(
            "\t<key>StandardOutPath</key>\n\t<string>/Library/Logs/FlatRender &lt;agent&gt;/agent.stdout.log</string>"
        ));
        assert!(plist.contains("<string>/Library/Logs/FlatRender &lt;agent&gt;/agent.stderr.log</string>"));
        assert!(!plist.contains(" & "));
        assert_eq!(xml_escape("a\"b'c"), "a&quot;b&apos;c");
    }

    /// A configured user becomes `UserName`.
    #[test]
    fn plist_names_the_user() {
        let mut custom_spec = spec();
        custom_spec.user = Some("render".to_owned());
        assert!(render_launchd_plist(&custom_spec).contains("\t<key>UserName</key>\n\t<string>render</string>\n"));
    }

    /// The `state = ...` line of `launchctl print` maps to a service state.
    #[test]
    fn launchctl_print_state_maps_to_states() {
        let running = "system/com.flatrender.agent = {\n\tactive count = 1\n\tstate = running\n\tpid = 42\n}\n";
        assert_eq!(parse_print_state(running), ServiceState::Running);
        assert_eq!(parse_print_state("\tstate = not running\n"), ServiceState::Stopped);
        assert_eq!(parse_print_state("\tstate = spawn scheduled\n"), ServiceState::Starting);
        assert_eq!(
            parse_print_state("nothing useful"),
            ServiceState::Other("loaded".to_owned())
        );
    }
}
