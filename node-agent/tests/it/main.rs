//! The node agent's integration tests, one test binary with a module per area (one binary links
//! once, which keeps CI fast on two cores): the template cache against a local HTTP server, the
//! durable outbox against a real folder, the supervisor against real processes, the After
//! Effects startup hook, and the `node-agent` binary itself (`parse-log`, `run --log-file`,
//! `run --dump-config`, registration retries, the hook installed at start).
//! Fixtures stay in `node-agent/tests/fixtures/`.

mod assets;
mod cache;
mod dump_config;
mod hook;
mod outbox;
mod parse_log_cli;
mod retries;
mod run_log_file;
mod supervisor;

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
