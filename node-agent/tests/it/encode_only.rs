//! An encode-only node is a matter of configuration alone, as a deployment (or a cross-process
//! test harness) sets it: the real `node-agent` binary with `aerender.required = false` and no
//! aerender starts without After Effects and without its startup hook when FFmpeg is there, and
//! refuses to start when FFmpeg is not either.
#![cfg(target_os = "linux")]

use std::process::Stdio;
use std::time::Duration;

use flatrender_node_agent::content::hook::HOOK_FILE_NAME;
use tokio::time::Instant;

/// Generous: only a broken start-up reaches it, however loaded the machine.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Without aerender the agent finds ffmpeg, says it takes encode work only, installs no hook and
/// goes on to register.
#[tokio::test]
async fn an_agent_without_aerender_runs_encode_only() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("agent.log");
    let mut child = crate::agent_without_control_plane(dir.path(), &log, "encode-only")
        .env("FLATRENDER_AGENT_AERENDER__REQUIRED", "false")
        .env("FLATRENDER_AGENT_AERENDER__PATH", dir.path().join("no-aerender"))
        .stderr(Stdio::null())
        .spawn()
        .expect("node-agent starts");
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("retrying registration") || child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("retrying registration"),
        "the agent got to registering: {text}"
    );
    assert!(text.contains("takes encode work only"), "{text}");
    assert!(text.contains("found the encoder"), "{text}");
    assert!(!text.contains("startup hook"), "{text}");
    let hook = dir.path().join("Scripts").join("Startup").join(HOOK_FILE_NAME);
    assert!(!hook.exists(), "an encode-only node installs no hook");
}

/// With neither aerender nor ffmpeg there is nothing to run: the agent exits with an error
/// saying so, before registering.
#[tokio::test]
async fn an_agent_with_nothing_to_run_does_not_start() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("agent.log");
    let child = crate::agent_without_control_plane(dir.path(), &log, "nothing-to-run")
        .env("FLATRENDER_AGENT_AERENDER__REQUIRED", "false")
        .env("FLATRENDER_AGENT_AERENDER__PATH", dir.path().join("no-aerender"))
        .env("FLATRENDER_AGENT_ENCODE__FFMPEG", dir.path().join("no-ffmpeg"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("node-agent starts");
    let (status, stderr) = crate::refused_start(child).await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("nothing to run"), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("registration"), "it never got to registering: {text}");
}
