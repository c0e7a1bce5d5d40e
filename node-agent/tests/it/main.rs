//! The node agent's integration tests, one test binary with a module per area (one binary links
//! once, which keeps CI fast on two cores): the template cache against a local HTTP server, the
//! durable outbox against a real folder, the supervisor against real processes, the encode step
//! against the real ffmpeg and ffprobe, the output store for finished videos against real folders
//! and a loopback HTTP file service, the After Effects startup hook, and the `node-agent`
//! binary itself (`parse-log`, `run --log-file`, `run --dump-config`, registration retries, the
//! hook installed at start).
//! Fixtures stay in `node-agent/tests/fixtures/`.

mod assets;
mod cache;
mod dump_config;
mod encode;
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
