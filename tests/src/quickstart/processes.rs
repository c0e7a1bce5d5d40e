//! The quickstart's child processes. Each runs in its own process group, so the terminal's
//! Ctrl-C reaches only the quickstart, which then stops the farm in order (agents before the
//! control plane). Each writes to its own log file and carries a marker variable naming the data
//! folder; everything it starts inherits the marker (the aerender double and its child,
//! PostgreSQL), so `/proc` tells which processes belong to a quickstart on that folder: the
//! leftovers of a killed run at start, and proof that nothing is left at the end.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context;
use nix::{sys::signal::Signal, unistd::Pid};

/// Environment variable carrying the quickstart's data folder into every process it starts.
// Not `FLATRENDER_*`: the control plane refuses unknown `FLATRENDER_*` variables as misspelt
// settings.
pub const MARKER_VAR: &str = "FR_QUICKSTART_DIR";

/// A child process of the quickstart, killed if dropped while running.
pub struct Managed {
    /// What it is, for messages (`control-plane`, `demo-node-1`).
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl Managed {
    /// Starts `command` with the marker, stdout and stderr to `log`, in a new process group.
    /// Configuration inherited from the caller's environment is removed first, so the farm
    /// runs the same on every machine.
    pub fn spawn(name: &str, mut command: std::process::Command, log: &Path, marker: &Path) -> anyhow::Result<Self> {
        let log_file = File::create(log).with_context(|| format!("create {}", log.display()))?;
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            let inherited_config = (key_text.starts_with("FLATRENDER_") && key_text != "FLATRENDER_PG_BIN_DIR")
                || key_text.starts_with("FAKE_AERENDER_");
            if inherited_config {
                command.env_remove(&key);
            }
        }
        command
            .env(MARKER_VAR, marker)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("duplicate log handle")?)
            .stderr(log_file)
            .process_group(0);
        let child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        })
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Asks it to stop (SIGTERM), unless it has exited.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            send(pid_of(pid), Signal::SIGTERM);
        }
    }

    /// Waits for it to exit, killing it (SIGKILL) after `grace`. True when it exited by itself.
    pub async fn wait_or_kill(&mut self, grace: Duration) -> bool {
        if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
            return true;
        }
        tell!("{} did not stop within {grace:?}: killing it", self.name);
        let _ = self.child.kill().await;
        false
    }
}

/// A process carrying the marker of one data folder.
#[derive(Debug, Clone)]
pub struct MarkedProcess {
    /// Its pid.
    pub pid: i32,
    /// File name of its executable (`node-agent`, `postgres`), empty when unreadable.
    pub program: String,
    /// Its command line, for messages.
    pub command_line: String,
}

/// Every process (but this one) whose environment carries the marker for `data_dir`.
pub fn marked_processes(data_dir: &Path) -> Vec<MarkedProcess> {
    let wanted = format!("{MARKER_VAR}={}", data_dir.display()).into_bytes();
    crate::processes_where_env(|vars| vars.contains(&wanted.as_slice()))
        .into_iter()
        .filter_map(|pid| i32::try_from(pid).ok())
        .map(|pid| MarkedProcess {
            pid,
            program: std::fs::read_link(format!("/proc/{pid}/exe"))
                .ok()
                .and_then(|exe| exe.file_name().map(|name| name.to_string_lossy().into_owned()))
                .unwrap_or_default(),
            command_line: std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " ").trim().to_owned())
                .unwrap_or_default(),
        })
        .collect()
}

/// Stops what an earlier, killed quickstart left running on `data_dir`: the agents and control
/// plane with SIGTERM, PostgreSQL with `pg_ctl stop` (through `control-plane pg stop`), then
/// SIGKILL for anything still there. Returns how many processes were found.
pub async fn clean_up_leftovers(data_dir: &Path, control_plane: &Path) -> anyhow::Result<usize> {
    let leftovers = marked_processes(data_dir);
    if leftovers.is_empty() {
        return Ok(0);
    }
    tell!(
        "stopping {} process(es) left by an earlier quickstart on {}:",
        leftovers.len(),
        data_dir.display()
    );
    for process in &leftovers {
        tell!("  {:>7} {}", process.pid, process.command_line);
        if process.program != "postgres" {
            send(process.pid, Signal::SIGTERM);
        }
    }
    wait_until_gone(data_dir, Duration::from_secs(15), |process| {
        process.program != "postgres"
    })
    .await;
    stop_postgres(data_dir, control_plane).await;
    kill_remaining(data_dir).await?;
    Ok(leftovers.len())
}

/// Fails, naming them, if processes of this quickstart are still running after it stopped the
/// farm; it kills them first so that a failed check leaves nothing behind either.
pub async fn ensure_nothing_left(data_dir: &Path, control_plane: &Path) -> anyhow::Result<()> {
    // PostgreSQL's background processes exit just after the postmaster has reported shutdown.
    if wait_until_gone(data_dir, Duration::from_secs(10), |_| true).await {
        return Ok(());
    }
    let remaining = marked_processes(data_dir);
    stop_postgres(data_dir, control_plane).await;
    kill_remaining(data_dir).await?;
    let listing: Vec<String> = remaining
        .iter()
        .map(|process| format!("{} {}", process.pid, process.command_line))
        .collect();
    anyhow::bail!(
        "processes were still running after the farm stopped (now killed):\n  {}",
        listing.join("\n  ")
    )
}

async fn stop_postgres(data_dir: &Path, control_plane: &Path) {
    let status = tokio::process::Command::new(control_plane)
        .args(["pg", "stop", "--data-dir"])
        .arg(data_dir.join("postgres"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if !status.is_ok_and(|status| status.success()) {
        tell!("`control-plane pg stop` failed for {}", data_dir.display());
    }
}

async fn kill_remaining(data_dir: &Path) -> anyhow::Result<()> {
    for process in marked_processes(data_dir) {
        tell!("killing {} {}", process.pid, process.command_line);
        send(process.pid, Signal::SIGKILL);
    }
    if wait_until_gone(data_dir, Duration::from_secs(5), |_| true).await {
        return Ok(());
    }
    let survivors: Vec<String> = marked_processes(data_dir)
        .iter()
        .map(|process| format!("{} {}", process.pid, process.command_line))
        .collect();
    anyhow::bail!("could not stop: {}", survivors.join("; "))
}

/// Waits until no marked process matching `relevant` is left; false on time-out.
async fn wait_until_gone(data_dir: &Path, limit: Duration, relevant: impl Fn(&MarkedProcess) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !marked_processes(data_dir).iter().any(&relevant) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_of(pid: u32) -> i32 {
    // Linux pids fit in i32 (pid_max is at most 2^22).
    i32::try_from(pid).unwrap_or(i32::MAX)
}

fn send(pid: i32, signal: Signal) {
    // The process may have exited meanwhile: nothing to do then.
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
}
