//! The node agent's integration tests, one test binary with a module per area (one binary links
//! once, which keeps CI fast on two cores): the whole agent against a fake control plane (encode
//! items end to end), the template cache against a local HTTP server, the
//! durable outbox against a real folder, the supervisor against real processes, the encode step
//! against the real ffmpeg and ffprobe, the output store for finished videos against real folders
//! and a loopback HTTP file service, the After Effects startup hook, and the `node-agent`
//! binary itself (`parse-log`, `run --log-file`, `run --dump-config`, registration retries, the
//! hook installed at start, an encode-only node by configuration).
//! Fixtures stay in `node-agent/tests/fixtures/`.

mod agent;
mod assets;
mod cache;
mod dump_config;
mod encode;
mod encode_only;
mod export;
mod hook;
mod outbox;
mod parse_log_cli;
mod retries;
mod run_log_file;
mod supervisor;

/// Live (non-zombie) pids whose environment holds `FLATRENDER_PROCESS_TAG=<value>` with `value`
/// starting with `tag_prefix`, read straight from `/proc` (the supervisor and encode tests).
#[cfg(target_os = "linux")]
#[allow(clippy::unwrap_used)]
fn live_tagged_pids(tag_prefix: &str) -> Vec<u32> {
    let wanted = format!("FLATRENDER_PROCESS_TAG={tag_prefix}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let tagged = environ
            .split(|byte| *byte == 0)
            .any(|variable| variable.starts_with(wanted.as_bytes()));
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start().chars().next();
        if tagged && !matches!(state, Some('Z' | 'X') | None) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// `node-agent run` pointed at a control plane that is not there (nothing listens on port 1):
/// it starts, logs to `log`, and keeps retrying registration. Scratch folders under `dir`.
fn agent_without_control_plane(dir: &std::path::Path, log: &std::path::Path, name: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"));
    command
        .arg("run")
        .arg("--log-file")
        .arg(log)
        .env("FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS", "http://127.0.0.1:1")
        .env("FLATRENDER_AGENT_CONTROL_PLANE__JOIN_TOKEN", "fr_join_test")
        .env("FLATRENDER_AGENT_NODE__NAME", name)
        .env("FLATRENDER_AGENT_NODE__STATE_DIR", dir.join("state"))
        .env("FLATRENDER_AGENT_CACHE__DIR", dir.join("cache"))
        .env("FLATRENDER_AGENT_AERENDER__PATH", "/bin/sh")
        .env("FLATRENDER_AGENT_AERENDER__OUTPUT_ROOT", dir.join("renders"))
        .env(
            "FLATRENDER_AGENT_AERENDER__STARTUP_SCRIPTS_DIR",
            dir.join("Scripts").join("Startup"),
        )
        .env("FLATRENDER_AGENT_METRICS__LISTEN", "")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    command
}

/// Waits (60 s at most, only a broken start-up takes that long) for an agent that must refuse to
/// start; returns its exit status and stderr, or fails the test if it kept running.
async fn refused_start(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let status = status.unwrap_or_else(|| panic!("the agent kept running; stderr: {stderr}"));
    (status, stderr)
}

/// Runs ffmpeg with `args` (quietly) and fails the test if it fails.
fn ffmpeg(args: &[&str]) {
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
