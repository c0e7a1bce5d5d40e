//! The agent's retries of an unreachable control plane, run as a real process: exponential
//! back-off with full jitter and a cap (`retry.rs`), so a farm does not reconnect in lock-step.

use std::{process::Stdio, time::Duration};

use tokio::time::Instant;

/// The `delay=…` field of a log line, as `Duration`'s Debug form prints it (`734.5ms`, `1.2s`).
fn logged_delay(line: &str) -> Option<Duration> {
    let value = line.split("delay=").nth(1)?.split_whitespace().next()?;
    let (number, unit_seconds) = if let Some(number) = value.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = value.strip_suffix("µs") {
        (number, 1e-6)
    } else if let Some(number) = value.strip_suffix("ns") {
        (number, 1e-9)
    } else {
        (value.strip_suffix('s')?, 1.0)
    };
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * unit_seconds))
}

/// Registration against a control plane that is not there is retried after random delays, each
/// under its doubling ceiling (1 s, 2 s, 4 s, ...). Before, every retry waited exactly 5 s.
#[tokio::test]
async fn registration_retries_back_off_with_full_jitter() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("agent.log");
    let mut child = crate::agent_without_control_plane(dir.path(), &log, "retry-test")
        .stderr(Stdio::null())
        .spawn()
        .expect("node-agent starts");
    let retries = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains("retrying registration"))
            .map(str::to_owned)
            .collect()
    };
    // Four retries take at most 1 + 2 + 4 + 8 s; the limit is reached only when they never come.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if retries(&text).len() >= 4 || child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = retries(&text);
    assert!(lines.len() >= 4, "four registration retries: {text}");
    let delays: Vec<Duration> = lines
        .iter()
        .take(4)
        .map(|line| logged_delay(line).unwrap_or_else(|| panic!("no delay in {line:?}")))
        .collect();
    for (failures, delay) in delays.iter().enumerate() {
        let ceiling = Duration::from_secs(1 << failures);
        assert!(
            *delay <= ceiling,
            "retry {failures}: {delay:?} over {ceiling:?}: {delays:?}"
        );
    }
    assert!(
        delays.windows(2).any(|pair| pair[0] != pair[1]),
        "jittered, not one fixed delay: {delays:?}"
    );
}

/// The log's delay field parses in each unit `Duration` prints.
#[test]
fn delays_parse_from_log_lines() {
    assert_eq!(
        logged_delay("WARN x: retrying registration error=e delay=734.5ms"),
        Some(Duration::from_micros(734_500))
    );
    assert_eq!(logged_delay("delay=1.5s end"), Some(Duration::from_millis(1500)));
    assert_eq!(logged_delay("delay=12µs"), Some(Duration::from_micros(12)));
    assert_eq!(logged_delay("retrying registration in 5 s"), None);
}
