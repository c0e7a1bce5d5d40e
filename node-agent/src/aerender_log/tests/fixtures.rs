//! The four real logs of `node-agent/tests/fixtures/aerender-logs/` (the repository's copy of the
//! shared fixtures), read as their README says.

use super::super::{ErrorClass, ExpectedFramesSource, LogParser, Outcome, parse_log};
use super::classes;

pub(super) const LOG_01: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aerender-logs/01-success-win-cc2017-abbreviated.log"
));
pub(super) const LOG_04: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aerender-logs/04-error-win-cc2015-missing-fonts-no-comp.log"
));
pub(super) const LOG_17: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aerender-logs/17-header-macos-ae2020-progress-block.log"
));
pub(super) const LOG_18: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/aerender-logs/18-renderlog-macos-ae2022-finished-then-hang-tail.log"
));

/// The four fixtures, in file order.
pub(super) const ALL_LOGS: [&str; 4] = [LOG_01, LOG_04, LOG_17, LOG_18];

/// Log 01 is a success: comp "Composition" finished, 1 min 28 s total, CC 2017 banner.
#[test]
fn log_01_reads_as_succeeded_composition_in_88_seconds() {
    let summary = parse_log(LOG_01);
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(summary.ae_version.as_deref(), Some("14.2.1x34"));
    assert_eq!(summary.comp.as_deref(), Some("Composition"));
    assert_eq!(summary.total_time_seconds, Some(88));
    assert_eq!(
        summary.expected_frames, None,
        "the abbreviated log has no settings block"
    );
}

/// Log 01's `Using DXGI…`, `has video RAM` and `LoadLibrary "n" failed!` lines are benign noise.
#[test]
fn log_01_console_noise_yields_no_errors_or_warnings() {
    let summary = parse_log(LOG_01);
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

/// Log 04 fails on "No comp was found" after two (non-fatal) missing-font warnings.
#[test]
fn log_04_reads_as_failed_comp_not_found_after_two_font_warnings() {
    let summary = parse_log(LOG_04);
    assert_eq!(summary.outcome, Outcome::Failed);
    assert_eq!(summary.ae_version.as_deref(), Some("13.5x347"));
    assert_eq!(classes(&summary.errors), vec![ErrorClass::CompNotFound]);
    assert_eq!(
        summary.errors[0].line,
        "aerender ERROR: No comp was found with the given name."
    );
    assert_eq!(
        classes(&summary.warnings),
        vec![ErrorClass::MissingFonts, ErrorClass::MissingFonts]
    );
    assert!(summary.warnings[1].line.contains("Font family: Roboto"));
}

/// Log 04 rendered nothing and never names the comp it could not find.
#[test]
fn log_04_has_no_comp_and_no_frames() {
    let summary = parse_log(LOG_04);
    assert_eq!(summary.comp, None);
    assert_eq!(summary.frames_completed, 0);
    assert_eq!(summary.expected_frames, None);
    assert!(summary.items.is_empty());
}

/// Log 17 is in progress: 23.976 fps, Duration 0:00:27:16 = 27 × 24 + 16 = 664 frames, 4 done
/// (End 0:00:27:15 from Start 0:00:00:00 confirms 664).
#[test]
fn log_17_reads_as_incomplete_with_664_expected_and_4_done() {
    let summary = parse_log(LOG_17);
    assert_eq!(summary.outcome, Outcome::Incomplete);
    assert_eq!(summary.frame_rate, Some(23.976));
    assert_eq!(summary.expected_frames, Some(664));
    assert_eq!(summary.start_frame, Some(0));
    assert_eq!(summary.end_frame, Some(663));
    assert_eq!(summary.frames_completed, 4);
    assert_eq!(summary.ae_version, None, "the excerpt has no banner");
}

/// Log 17's `PROGRESS:  ` separators and output-module block produce neither frames nor problems.
#[test]
fn log_17_separators_and_output_module_block_are_ignored() {
    let summary = parse_log(LOG_17);
    assert!(summary.errors.is_empty() && summary.warnings.is_empty());
    assert_eq!(summary.items.len(), 1);
    let indices: Vec<u32> = summary.items[0].frame_indices.iter().copied().collect();
    assert_eq!(indices, vec![1, 2, 3, 4]);
}

/// Log 18 (render-log format) succeeded: "_Example 1" in curly quotes, 240 of 240 frames, 17 s.
#[test]
fn log_18_reads_as_succeeded_240_of_240() {
    let summary = parse_log(LOG_18);
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(summary.comp.as_deref(), Some("_Example 1"));
    assert_eq!(summary.expected_frames, Some(240));
    assert_eq!(summary.frames_completed, 240);
    assert_eq!(
        summary.total_time_seconds,
        Some(17),
        "markdown `**` before the key is tolerated"
    );
}

/// Log 18 is a tail excerpt: only frames 200–240 are printed, and the count of 240 comes from the
/// last index of a finished item, which the summary says.
#[test]
fn log_18_distinguishes_printed_frame_lines_from_completed_frames() {
    let summary = parse_log(LOG_18);
    assert_eq!(summary.frame_lines_seen, 41);
    assert_eq!(
        summary.items[0].expected_frames_source,
        Some(ExpectedFramesSource::LastFrameIndex)
    );
}

/// Every fixture reads the same with CRLF and lone-CR line endings as with LF.
#[test]
fn fixtures_read_the_same_with_crlf_and_lone_cr_endings() {
    for log in ALL_LOGS {
        let with_lf = parse_log(log);
        assert_eq!(parse_log(&log.replace('\n', "\r\n")), with_lf);
        assert_eq!(parse_log(&log.replace('\n', "\r")), with_lf);
    }
}

/// Feeding a fixture line by line gives the same summary as parsing it whole.
#[test]
fn fixtures_streamed_line_by_line_match_whole_text_parsing() {
    for log in ALL_LOGS {
        let mut parser = LogParser::new();
        for line in log.lines() {
            parser.feed_line(line);
        }
        assert_eq!(parser.summary(), parse_log(log));
    }
}

/// Every fixture survives being cut at arbitrary points into lines (a reader's worst case)
/// without panicking.
#[test]
fn fixtures_cut_at_every_byte_never_panic() {
    for log in ALL_LOGS {
        for cut in (0..log.len()).filter(|&cut| log.is_char_boundary(cut)) {
            let mut parser = LogParser::new();
            parser.feed_line(&log[..cut]);
            parser.feed_line(&log[cut..]);
            let _ = parser.summary();
        }
    }
}
