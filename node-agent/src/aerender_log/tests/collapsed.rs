//! Logs pasted without their line breaks (entries run together, separated by runs of spaces or
//! tabs) read exactly as the original: every fixture, the §10.2 transcript, a render-log file
//! with its settings block and a multi-line failure, each collapsed several ways.

use super::super::collapsed::resplit_if_collapsed;
use super::super::{ErrorClass, LogSummary, Outcome, parse_log};
use super::fixtures::{ALL_LOGS, LOG_04, LOG_17, LOG_18};
use super::{classes, success_transcript};

/// What a lost line break becomes: a run of spaces, one space, a tab, a mix.
const SEPARATORS: &[&str] = &["    ", " ", "\t", " \t  "];

/// `text` with every line break replaced by `separator`.
fn collapse(text: &str, separator: &str) -> String {
    text.replace("\r\n", "\n").replace(['\n', '\r'], separator)
}

/// `text` with its line breaks replaced by runs of one to five spaces, varying from break to break
/// as a chat client's reflow leaves them.
fn collapse_with_varying_runs(text: &str) -> String {
    let mut collapsed = String::with_capacity(text.len() + text.len() / 8);
    for (number, line) in text.lines().enumerate() {
        collapsed.push_str(line);
        collapsed.push_str(&" ".repeat(1 + number % 5));
    }
    collapsed
}

/// Every collapsed form of `text` has exactly the original's summary.
fn assert_collapsed_forms_read_as_original(name: &str, text: &str) -> LogSummary {
    let original = parse_log(text);
    for separator in SEPARATORS {
        assert_eq!(
            parse_log(&collapse(text, separator)),
            original,
            "{name} collapsed with {separator:?}"
        );
    }
    assert_eq!(
        parse_log(&collapse_with_varying_runs(text)),
        original,
        "{name} collapsed with varying runs of spaces"
    );
    original
}

/// Each fixture, collapsed with any separator, reads as the original: same outcome, expected
/// frames, frames seen, classes and lines of errors and warnings.
#[test]
fn every_collapsed_fixture_reads_as_the_original() {
    for (number, log) in ALL_LOGS.iter().enumerate() {
        assert_collapsed_forms_read_as_original(&format!("fixture {number}"), log);
    }
}

/// Log 17 collapsed still finds its settings block (664 frames at 23.976 fps) and its 4 frames.
#[test]
fn collapsed_log_17_finds_the_settings_block_and_frames() {
    let summary = assert_collapsed_forms_read_as_original("log 17", LOG_17);
    assert_eq!(
        (summary.expected_frames, summary.frame_lines_seen, summary.frame_rate),
        (Some(664), 4, Some(23.976))
    );
}

/// Log 18 collapsed (render-log format, no prefixes) still finds 41 frame lines, the finish line
/// with its curly-quoted comp, and the total time behind the markdown `**`.
#[test]
fn collapsed_log_18_finds_frames_finish_and_total_time() {
    let summary = assert_collapsed_forms_read_as_original("log 18", LOG_18);
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(
        (
            summary.expected_frames,
            summary.frame_lines_seen,
            summary.comp.as_deref()
        ),
        (Some(240), 41, Some("_Example 1"))
    );
    assert_eq!(summary.total_time_seconds, Some(17));
}

/// Log 04 collapsed keeps its two missing-font warnings apart from the `Running Script:` line
/// after them, and its fatal line.
#[test]
fn collapsed_log_04_keeps_warnings_and_fatal_line_apart() {
    let summary = parse_log(&collapse(LOG_04, "  "));
    assert_eq!(classes(&summary.errors), vec![ErrorClass::CompNotFound]);
    assert_eq!(
        classes(&summary.warnings),
        vec![ErrorClass::MissingFonts, ErrorClass::MissingFonts]
    );
    assert!(
        summary.warnings[1].line.ends_with("Font style: Black"),
        "{}",
        summary.warnings[1].line
    );
}

/// The §10.2 success transcript (125 frames, two-space settings lines, `PROGRESS:  ` separators).
#[test]
fn collapsed_success_transcript_reads_as_the_original() {
    let summary = assert_collapsed_forms_read_as_original("success transcript", &success_transcript());
    assert_eq!((summary.expected_frames, summary.frame_lines_seen), (Some(125), 125));
}

/// A render-log file (§3.4): header, an unprefixed settings and output-module block whose values
/// contain spaces and whose keys contain other keys (`Color Depth`, `Final Size`), frames, footer.
#[test]
fn collapsed_render_log_file_reads_as_the_original() {
    let render_log = "Adobe After Effects v22.0 Windows 64 render log for project “vfx-3.aep”
Rendering started on 19.05.2022 at 15:23:11
  19.05.2022 15:23:11: Starting composition “render”.

  Render Settings: Best Settings
  Quality: Best
  Size: 1920 x 1080
  Disk Cache: Read Only
  Color Depth: Current Settings
  Frame Blending: On for Checked Layers
  Time Span: Work Area
  Start: 0:00:01:00
  End: 0:00:01:02
  Duration: 0:00:00:03
  Frame Rate: 25,00 (comp)
  Skip Existing Files: Off

  Output Module: Lossless
  Output To: D:\\renders\\shot 12\\render_[#####].png
  Depth: Millions of Colors
  Color: Premultiplied
  Final Size: 1920 x 1080
  Post-Render Action: None

  0:00:01:00 (1): 0 Seconds
  0:00:01:01 (2): 1 Seconds
  0:00:01:02 (3): 0 Seconds
  19.05.2022 15:23:12: Finished composition “render”.

  Total Time Elapsed: 1 Seconds
Log closed on 19.05.2022 at 15:23:12
";
    let summary = assert_collapsed_forms_read_as_original("render log", render_log);
    assert_eq!(
        (
            summary.outcome,
            summary.ae_version.as_deref(),
            summary.project.as_deref()
        ),
        (Outcome::Succeeded, Some("22.0"), Some("vfx-3.aep"))
    );
    assert_eq!(
        (summary.start_frame, summary.end_frame, summary.expected_frames),
        (Some(25), Some(27), Some(3))
    );
    assert_eq!((summary.frame_lines_seen, summary.total_time_seconds), (3, Some(1)));
}

/// A multi-line failure (§3.1, logs 06/07) keeps its three fatal lines and their classes, and
/// console noise with a time stamp stays apart from the lines around it.
#[test]
fn collapsed_multi_line_failure_keeps_every_fatal_line() {
    let failure = "aerender version 24.2.1x2
2019-04-29 22:50:53 : INFO  Environment: Scale factor from PP is 1.000000
INFO:After Effects: this project must be converted from version 23.1 (Macintosh 64). The original file will be unchanged.
aerender ERROR: Error executing script: C:\\tmp\\s.jsx
Error: After Effects error: The source compression type is not supported.
aerender ERROR: Runtime error in After Effects.
";
    let summary = assert_collapsed_forms_read_as_original("multi-line failure", failure);
    assert_eq!(
        classes(&summary.errors),
        vec![
            ErrorClass::ScriptError,
            ErrorClass::FootageError,
            ErrorClass::AeRuntimeError
        ]
    );
}

/// The pre-pass cuts before entry starts only: `PROGRESS:  ` separators stay separate entries,
/// a key inside a longer key (`Depth` in `Color Depth`) and a key word inside a message
/// (`After Effects:`) are not entry starts.
#[test]
fn resplit_cuts_before_entry_starts_only() {
    assert_eq!(
        resplit_if_collapsed("PROGRESS:  Skip Existing Files: Off PROGRESS:   PROGRESS:  Output Module: Lossless"),
        "PROGRESS:  Skip Existing Files: Off \nPROGRESS:   \nPROGRESS:  Output Module: Lossless\n"
    );
    assert_eq!(
        resplit_if_collapsed("  Disk Cache: Read Only  Color Depth: Current Settings  Final Size: 64 x 36"),
        "  Disk Cache: Read Only  \nColor Depth: Current Settings  \nFinal Size: 64 x 36\n"
    );
    let converted =
        "INFO:After Effects: this project must be converted. PROGRESS: Adding specified comp to Render Queue";
    assert_eq!(
        resplit_if_collapsed(converted),
        "INFO:After Effects: this project must be converted. \nPROGRESS: Adding specified comp to Render Queue\n"
    );
}

/// A line-structured log is read line by line, unchanged: a frame-like text inside a message is
/// not taken for a frame line.
#[test]
fn line_structured_log_is_not_resplit() {
    let log = "PROGRESS:  Start: 0:00:00:00\nWARNING:After Effects warning: layer 0:00:00:01 (2): missing\nPROGRESS:  Frame Rate: 25 (comp)\n";
    assert_eq!(resplit_if_collapsed(log), log);
    let summary = parse_log(log);
    assert_eq!(summary.frame_lines_seen, 0);
    assert_eq!(
        summary.warnings[0].line,
        "WARNING:After Effects warning: layer 0:00:00:01 (2): missing"
    );
}
