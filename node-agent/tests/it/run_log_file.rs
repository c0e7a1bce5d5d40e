//! `node-agent run --log-file FILE` (what the Windows service runs): the agent's log goes to the
//! file, without terminal colour codes, and not to stderr.

use std::{process::Stdio, time::Duration};

use tokio::time::Instant;

/// The log lines of a starting agent land in the file named by `--log-file`.
#[tokio::test]
async fn run_writes_its_log_to_the_log_file() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("logs").join("agent.log");
    let mut child = crate::agent_without_control_plane(dir.path(), &log, "log-file-test")
        .stderr(Stdio::piped())
        .spawn()
        .expect("node-agent starts");
    // Generous: only a broken start-up reaches it, however loaded the machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("cache opened cache=template") || child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("node-agent exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("cache opened cache=template"),
        "log file: {text:?}\nstderr: {stderr}"
    );
    assert!(!text.contains('\u{1b}'), "no colour codes in a file: {text:?}");
    assert!(
        !stderr.contains("cache opened cache=template"),
        "the log goes to the file only: {stderr}"
    );
}
