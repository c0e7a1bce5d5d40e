//! `node-agent run --dump-config`, run as a real process: the effective configuration of every
//! layer (file, environment, `--set`) as TOML on stdout, the join token hidden, and no agent run.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::Duration,
};

use flatrender_node_agent::config::AgentConfig;
use tokio::time::Instant;

/// The dump merges the layers, hides the join token, reads back as a configuration, and exits 0
/// without starting the agent (which would create its state folder and retry registration).
#[tokio::test]
async fn dump_config_prints_the_effective_configuration_and_exits() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let file = dir.path().join("agent.toml");
    let state_dir = dir.path().join("state");
    std::fs::write(
        &file,
        "[node]\nname = \"from-file\"\nmax_leases = 2\n[control_plane]\nendpoints = [\"http://127.0.0.1:1\"]\n",
    )
    .expect("write config file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_node-agent"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("FLATRENDER_AGENT_")) {
        command.env_remove(key);
    }
    let mut child = command
        .args(["run", "--dump-config", "--set", "node.max_leases=3", "--config"])
        .arg(&file)
        .env("FLATRENDER_AGENT_CONTROL_PLANE__JOIN_TOKEN", "fr_join_s3cret")
        .env("FLATRENDER_AGENT_NODE__STATE_DIR", &state_dir)
        .env("FLATRENDER_AGENT_AERENDER__PATH", "/bin/sh")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node-agent starts");
    // Generous: a dump takes milliseconds; only an agent that runs instead of exiting reaches it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node-agent") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = status.unwrap_or_else(|| panic!("node-agent did not exit; stderr: {stderr}"));
    assert!(status.success(), "exit {status}; stderr: {stderr}");
    assert!(!stdout.contains("fr_join_s3cret"), "the join token is hidden: {stdout}");
    let dumped: AgentConfig = toml::from_str(&stdout).expect("stdout is the configuration as TOML");
    assert_eq!(dumped.node.name, "from-file");
    assert_eq!(dumped.node.max_leases, 3, "--set wins over the file");
    assert_eq!(dumped.node.state_dir, state_dir, "the environment layer applies");
    assert_eq!(dumped.control_plane.endpoints, ["http://127.0.0.1:1"]);
    assert_eq!(dumped.control_plane.join_token, "***");
    assert!(!state_dir.exists(), "the agent did not start");
}
