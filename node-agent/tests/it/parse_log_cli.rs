//! `node-agent parse-log FILE` run as a real process: one JSON object on stdout, exit codes.

use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aerender-logs");

/// Parsing the missing-comp fixture prints the failed summary as JSON and exits 0.
#[test]
fn parse_log_prints_one_json_summary_and_exits_zero() {
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args([
            "parse-log",
            &format!("{FIXTURES}/04-error-win-cc2015-missing-fonts-no-comp.log"),
        ])
        .output()
        .expect("node-agent runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("stdout is UTF-8");
    assert_eq!(stdout.trim_end().lines().count(), 1, "exactly one line: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(summary["outcome"], "failed");
    assert_eq!(summary["ae_version"], "13.5x347");
    assert!(summary["comp"].is_null() && summary["expected_frames"].is_null());
    assert_eq!(summary["frames_completed"], 0);
    assert_eq!(summary["errors"][0]["class"], "comp_not_found");
    assert_eq!(summary["warnings"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["warnings"][0]["class"], "missing_fonts");
}

/// A log pasted without its line breaks (log 18, breaks turned into runs of spaces) reads as the
/// original: 240 frames of which 41 printed, finished, 17 s in total.
#[test]
fn parse_log_reads_a_log_that_lost_its_line_breaks() {
    let original = std::fs::read_to_string(format!(
        "{FIXTURES}/18-renderlog-macos-ae2022-finished-then-hang-tail.log"
    ))
    .expect("fixture");
    let scratch = tempfile::tempdir().expect("scratch folder");
    let pasted = scratch.path().join("pasted.log");
    std::fs::write(&pasted, original.replace('\n', "   ")).expect("write pasted log");
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg("parse-log")
        .arg(&pasted)
        .output()
        .expect("node-agent runs");
    assert_eq!(output.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(summary["outcome"], "succeeded");
    assert_eq!(summary["comp"], "_Example 1");
    assert_eq!(summary["expected_frames"], 240);
    assert_eq!(summary["frame_lines_seen"], 41);
    assert_eq!(summary["total_time_seconds"], 17);
}

/// An unreadable file exits 2 with a message naming it on stderr and nothing on stdout.
#[test]
fn parse_log_exits_two_on_an_unreadable_file() {
    let missing_path = format!("{FIXTURES}/no-such-log.log");
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["parse-log", &missing_path])
        .output()
        .expect("node-agent runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-log.log"));
}

/// Output into a pipe whose reader is gone (`node-agent parse-log FILE | head` once `head` has
/// quit) ends quietly: exit 0, nothing on stderr. `println!` panicked with "Broken pipe" here.
#[test]
fn parse_log_ends_quietly_on_a_closed_stdout() {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    // Closed before the agent starts: its first write meets a pipe with no reader, every time.
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args([
            "parse-log",
            &format!("{FIXTURES}/04-error-win-cc2015-missing-fonts-no-comp.log"),
        ])
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("node-agent runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
}
