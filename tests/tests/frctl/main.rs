//! `frctl` against a real control plane: every subcommand's happy path and its main error path,
//! `--output json` parsed back, exit codes checked. frctl runs as a real process with no
//! `FRCTL_*` variables, no config file and a scratch working folder, so nothing of the
//! developer's set-up leaks in.

// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod farm;
mod frames;
mod jobs;
mod nodes;

use std::{path::PathBuf, process::Stdio};

use flatrender_e2e::{Farm, WAIT_LIMIT, binary};
use serde_json::Value;

/// The test double, built with this package.
pub fn fake_aerender() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fake-aerender"))
}

/// What one frctl run did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl Run {
    /// stdout as one JSON document, failing with the whole run when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {self:?}"))
    }

    /// Asserts the exit code, showing the run when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        self
    }
}

/// A frctl command with a clean environment: no `FRCTL_*`, no config file, a scratch folder.
pub fn command(args: &[&str]) -> tokio::process::Command {
    // One empty folder under target/ shared by every run: no `data/admin.token`, no config.
    let scratch = flatrender_e2e::bin_dir().join("frctl-test-cwd");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut command = tokio::process::Command::new(binary("frctl"));
    command
        .args(args)
        .env_remove("FRCTL_ENDPOINT")
        .env_remove("FRCTL_TOKEN")
        .env_remove("FRCTL_TOKEN_FILE")
        .env_remove("FRCTL_CONFIG")
        .env("XDG_CONFIG_HOME", scratch.join("config"))
        .current_dir(&scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs frctl with `args` as given (no endpoint or token added).
pub async fn frctl_raw(args: &[&str]) -> Run {
    output(command(args)).await
}

/// Waits for a frctl command, at most [`WAIT_LIMIT`].
pub async fn output(mut command: tokio::process::Command) -> Run {
    let output = tokio::time::timeout(WAIT_LIMIT, command.output())
        .await
        .expect("frctl finished in time")
        .expect("frctl ran");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Endpoint and admin token of `farm`, then `args`.
pub fn farm_args<'a>(farm: &'a Farm, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "--endpoint",
        farm.endpoint.as_str(),
        "--token",
        farm.admin_token.as_str(),
    ];
    all.extend_from_slice(args);
    all
}

/// Runs frctl against `farm` with its admin token.
pub async fn frctl(farm: &Farm, args: &[&str]) -> Run {
    frctl_raw(&farm_args(farm, args)).await
}
