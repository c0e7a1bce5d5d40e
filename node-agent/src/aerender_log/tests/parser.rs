//! Streaming semantics and summaries over whole transcripts assembled from §3.2, §10.2 and the
//! failure modes of §10.3.

use super::super::{ExpectedFramesSource, Field, FrameDone, LogEvent, LogParser, Outcome, decode_log_bytes, parse_log};
use super::{SETTINGS_25_FPS_125_FRAMES, success_transcript};

/// The §10.2 transcript succeeds with 125 of 125 frames and every header value read.
#[test]
fn full_success_transcript_reads_as_succeeded_with_all_values() {
    let summary = parse_log(&success_transcript());
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(summary.ae_version.as_deref(), Some("24.2.1x2"));
    assert_eq!(summary.comp.as_deref(), Some("main"));
    assert_eq!(
        (
            summary.expected_frames,
            summary.frames_completed,
            summary.frame_lines_seen
        ),
        (Some(125), 125, 125)
    );
    assert_eq!(
        (summary.frame_rate, summary.start_frame, summary.end_frame),
        (Some(25.0), Some(0), Some(124))
    );
    assert_eq!(summary.total_time_seconds, Some(48));
    assert!(summary.errors.is_empty() && summary.warnings.is_empty());
}

/// Events come out in log order: banner, launch, item, settings, frames, finish, total time.
#[test]
fn events_follow_the_log_order() {
    let mut parser = LogParser::new();
    let events = parser.feed_text(&success_transcript());
    assert_eq!(
        events[0],
        LogEvent::Banner {
            version: "24.2.1x2".to_owned()
        }
    );
    assert_eq!(events[1], LogEvent::Launching);
    assert_eq!(events[2], LogEvent::Launched);
    assert_eq!(
        events[3],
        LogEvent::ItemStarted {
            comp: Some("main".to_owned())
        }
    );
    let LogEvent::Settings(last_settings) = &events[7] else {
        panic!("{:?}", events[7])
    };
    assert_eq!(last_settings.expected_frames, Some(125));
    let num_frame_events = events
        .iter()
        .filter(|event| matches!(event, LogEvent::FrameDone(_)))
        .count();
    assert_eq!(num_frame_events, 125);
    let tail = &events[events.len() - 2..];
    assert_eq!(
        tail[0],
        LogEvent::Finished {
            comp: Some("main".to_owned())
        }
    );
    assert_eq!(tail[1], LogEvent::TotalTime { seconds: Some(48) });
}

/// A frame event carries index, timecode, seconds and the comp frame from the frame rate.
#[test]
fn frame_events_carry_the_comp_frame_number() {
    let mut parser = LogParser::new();
    parser.feed_text(SETTINGS_25_FPS_125_FRAMES);
    let events = parser.feed_line("PROGRESS:  0:00:01:03 (29): 2 Seconds\r\n");
    let expected = FrameDone {
        index: 29,
        field: None,
        timecode: "0:00:01:03".to_owned(),
        comp_frame: Some(28),
        seconds: Some(2),
    };
    assert_eq!(events, vec![LogEvent::FrameDone(expected)]);
}

/// The same index printed twice (log 02) is one frame and one event.
#[test]
fn repeated_frame_index_is_counted_once() {
    let mut parser = LogParser::new();
    assert_eq!(parser.feed_line("PROGRESS:  1;34;40;09 (21280): 0 Seconds").len(), 1);
    assert!(parser.feed_line("PROGRESS:  1;34;40;09 (21280): 1 Seconds").is_empty());
    assert_eq!(parser.summary().frames_completed, 1);
}

/// Upper and lower field lines of one frame count as one frame.
#[test]
fn field_suffixes_of_one_index_count_once() {
    let mut parser = LogParser::new();
    let events = parser.feed_text("PROGRESS:  0:00:00:00 (1U): 0 Seconds\nPROGRESS:  0:00:00:00 (1L): 0 Seconds\n");
    assert!(matches!(
        &events[..],
        [LogEvent::FrameDone(FrameDone {
            field: Some(Field::Upper),
            ..
        })]
    ));
    assert_eq!(parser.summary().frames_completed, 1);
}

/// Out-of-order frames (MFR, §3.3) are counted as distinct indices and exposed as a set.
#[test]
fn out_of_order_mfr_frames_count_distinct_indices() {
    let mut parser = LogParser::new();
    for index in [3, 1, 4, 2, 6, 5, 4] {
        parser.feed_line(&format!("PROGRESS:  0:00:00:{:02} ({index}): 0 Seconds", index - 1));
    }
    assert_eq!(
        parser.completed_frame_indices().iter().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(parser.summary().frames_completed, 6);
}

/// Several frame lines collapsed onto one physical line all count, in both formats.
#[test]
fn collapsed_frame_lines_all_count() {
    let stdout = parse_log("PROGRESS:  0:00:00:00 (1): 0 SecondsPROGRESS:  0:00:00:01 (2): 0 Seconds\n");
    assert_eq!(stdout.frames_completed, 2);
    let render_log = parse_log("  0:00:00:00 (1): 0 Seconds  0:00:00:01 (2): 0 Seconds  0:00:00:02 (3): 0 Seconds\n");
    assert_eq!(render_log.frames_completed, 3);
}

/// On macOS the banner lines often come last (§3.4); the result is the same.
#[test]
fn banner_at_the_end_is_still_read() {
    let transcript = success_transcript();
    let (banner_lines, rest) = transcript.split_at(transcript.find("PROGRESS: Adding").unwrap());
    let summary = parse_log(&format!("{rest}{banner_lines}"));
    assert_eq!(summary.outcome, Outcome::Succeeded);
    assert_eq!(summary.ae_version.as_deref(), Some("24.2.1x2"));
}

/// Drop-frame settings (`0;00;10;00` at 29,97) give the expected frame count.
#[test]
fn drop_frame_settings_block_gives_expected_frames() {
    let summary = parse_log(
        "PROGRESS:  Start: 0;00;00;00\nPROGRESS:  End: 0;00;09;29\nPROGRESS:  Duration: 0;00;10;00\nPROGRESS:  Frame Rate: 29,97 (comp)\n",
    );
    assert_eq!(
        (summary.expected_frames, summary.end_frame, summary.frame_rate),
        (Some(300), Some(299), Some(29.97))
    );
}

/// German keys with a decimal comma read like English ones (§3.4).
#[test]
fn german_settings_keys_with_decimal_comma_are_read() {
    let summary =
        parse_log("PROGRESS:  Anfang: 0:00:01:00\nPROGRESS:  Dauer: 0:00:02:00\nPROGRESS:  Frame Rate: 25,00 (comp)\n");
    assert_eq!((summary.expected_frames, summary.start_frame), (Some(50), Some(25)));
}

/// Projects displaying frame numbers print plain numbers; no frame rate is needed.
#[test]
fn frame_number_display_settings_give_expected_frames() {
    let summary = parse_log(
        "PROGRESS:  Start: 0\nPROGRESS:  End: 124\nPROGRESS:  Duration: 125\nPROGRESS:  12 (13): 0 Seconds\n",
    );
    assert_eq!((summary.expected_frames, summary.frames_completed), (Some(125), 1));
}

/// Without `Duration`, `End − Start + 1` is the denominator (§3.3).
#[test]
fn start_and_end_give_expected_frames_without_duration() {
    let summary =
        parse_log("PROGRESS:  Start: 0:00:01:00\nPROGRESS:  End: 0:00:01:09\nPROGRESS:  Frame Rate: 24 (comp)\n");
    assert_eq!(summary.expected_frames, Some(10));
}

/// A timecode settings block without a frame rate leaves the count unknown rather than guessed.
#[test]
fn timecodes_without_frame_rate_leave_expected_frames_unknown() {
    let summary = parse_log("PROGRESS:  Start: 0:00:00:00\nPROGRESS:  Duration: 0:00:05:00\n");
    assert_eq!(summary.expected_frames, None);
    assert_eq!(summary.items[0].expected_frames_source, None);
}

/// A movie output prints no frame lines (§3.3); a finished item still counts all its frames.
#[test]
fn finished_item_without_frame_lines_counts_expected_frames() {
    let transcript = format!(
        "PROGRESS:  1/1/2024 1:00:00 AM: Starting composition main.\n{SETTINGS_25_FPS_125_FRAMES}PROGRESS:  1/1/2024 1:01:00 AM: Finished composition \"main\".\n"
    );
    let summary = parse_log(&transcript);
    assert_eq!(
        (summary.outcome, summary.frames_completed, summary.frame_lines_seen),
        (Outcome::Succeeded, 125, 0)
    );
    assert_eq!(
        summary.items[0].expected_frames_source,
        Some(ExpectedFramesSource::Settings)
    );
}

/// A render that stops printing mid-way (stall, crash, silent exit) is incomplete.
#[test]
fn render_without_finish_line_is_incomplete() {
    let transcript = success_transcript();
    let cut = transcript.find("PROGRESS:  0:00:02:00").unwrap();
    let summary = parse_log(&transcript[..cut]);
    assert_eq!((summary.outcome, summary.frames_completed), (Outcome::Incomplete, 50));
}

/// Without `-comp`, each queue item gets its own block; the totals add up (§3.2 last paragraph).
#[test]
fn several_queue_items_are_tracked_separately_and_summed() {
    let one_item = |comp: &str| {
        format!(
            "PROGRESS:  1/1/24 1:00:00 AM: Starting composition {comp}.\nPROGRESS:  Start: 0\nPROGRESS:  End: 1\nPROGRESS:  Duration: 2\nPROGRESS:  0 (1): 0 Seconds\nPROGRESS:  1 (2): 0 Seconds\nPROGRESS:  1/1/24 1:00:01 AM: Finished composition {comp}.\nPROGRESS:  Total Time Elapsed: 1 Seconds\n"
        )
    };
    let summary = parse_log(&format!("{}{}", one_item("first"), one_item("second")));
    assert_eq!(summary.items.len(), 2);
    assert_eq!(
        (summary.outcome, summary.comp.as_deref()),
        (Outcome::Succeeded, Some("second"))
    );
    assert_eq!((summary.expected_frames, summary.frames_completed), (Some(4), 4));
    assert_eq!(summary.total_time_seconds, Some(2));
}

/// A second item that started but did not finish makes the log incomplete.
#[test]
fn unfinished_second_item_is_incomplete() {
    let summary = parse_log(&format!(
        "{}PROGRESS:  1/1/24 1:00:00 AM: Starting composition second.\nPROGRESS:  0:00:00:00 (1): 0 Seconds\n",
        success_transcript()
    ));
    assert_eq!((summary.outcome, summary.items.len()), (Outcome::Incomplete, 2));
}

/// A render-log file with its header: version and project come from the header (§3.4).
#[test]
fn render_log_file_header_gives_version_and_project() {
    let summary = parse_log(
        "Adobe After Effects v22.0 Windows 64 render log for project “vfx-3.aep”\r\nRendering started on 19.05.2022 at 15:23:11\r\n  19.05.2022 15:23:11: Starting composition “render”.\r\n  Start: 0:00:00:00\r\n  Duration: 0:00:00:02\r\n  Frame Rate: 25,00 (comp)\r\n  0:00:00:00 (1): 0 Seconds\r\n  0:00:00:01 (2): 0 Seconds\r\n  19.05.2022 15:23:12: Finished composition “render”.\r\n  Total Time Elapsed: 1 Seconds\r\nLog closed on 19.05.2022 at 15:23:12\r\n",
    );
    assert_eq!(
        (summary.outcome, summary.ae_version.as_deref()),
        (Outcome::Succeeded, Some("22.0"))
    );
    assert_eq!(
        (summary.project.as_deref(), summary.comp.as_deref()),
        (Some("vfx-3.aep"), Some("render"))
    );
    assert_eq!((summary.expected_frames, summary.frames_completed), (Some(2), 2));
}

/// Benign noise lines containing ERROR scattered through a good render change nothing.
#[test]
fn noise_with_error_words_does_not_fail_a_good_render() {
    let noisy = success_transcript().replace(
        "PROGRESS: Adding",
        "[ERROR] NVAPI error (-3)\n2021-05-01 10:00:00 : ERROR *** IVCAutoReleasePool: x\nGL_VERS: 32Prog Error: 1280\nPROGRESS: Adding",
    );
    let summary = parse_log(&noisy);
    assert_eq!(
        (summary.outcome, summary.errors.len(), summary.warnings.len()),
        (Outcome::Succeeded, 0, 0)
    );
}

/// A line given with its line ending, or with embedded breaks, reads as separate lines.
#[test]
fn feed_line_tolerates_line_endings_inside_the_line() {
    let mut parser = LogParser::new();
    let events = parser.feed_line("aerender version 24.2.1x2\r\nPROGRESS: Launching After Effects...\r");
    assert_eq!(
        events,
        vec![
            LogEvent::Banner {
                version: "24.2.1x2".to_owned()
            },
            LogEvent::Launching
        ]
    );
}

/// Junk (NULs, replacement characters, binary, huge lines, a BOM) never panics nor invents data.
#[test]
fn arbitrary_junk_is_ignored() {
    let junk_bytes: Vec<u8> = (0..=255_u8).cycle().take(5000).collect();
    let mut text = decode_log_bytes(&junk_bytes);
    text.push_str("\u{feff}\0\0PROGRESS:\u{fffd}(\n(((((: ::: ;;; (1): \n");
    text.push_str(&"x".repeat(100_000));
    let summary = parse_log(&text);
    assert_eq!(
        (summary.outcome, summary.expected_frames, summary.ae_version),
        (Outcome::Incomplete, None, None)
    );
}

/// A UTF-8 BOM before the banner does not hide it.
#[test]
fn byte_order_mark_before_banner_is_ignored() {
    assert_eq!(
        parse_log("\u{feff}aerender version 24.2.1x2\n").ae_version.as_deref(),
        Some("24.2.1x2")
    );
}

/// UTF-16 logs with a BOM (either order) and UTF-8 with BOM or invalid bytes all decode.
#[test]
fn decode_log_bytes_handles_utf16_boms_and_invalid_utf8() {
    let text = "aerender version 24.2.1x2\r\n“é”";
    let utf16_le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16_be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    assert_eq!(decode_log_bytes(&utf16_le), text);
    assert_eq!(decode_log_bytes(&utf16_be), text);
    assert_eq!(decode_log_bytes(&[0xEF, 0xBB, 0xBF, b'o', b'k']), "ok");
    assert_eq!(decode_log_bytes(b"caf\x82 ok"), "caf\u{fffd} ok");
    assert_eq!(decode_log_bytes(&[0xFF, 0xFE, b'a', 0, b'b']), "a\u{fffd}");
}

/// The JSON has exactly the contract's keys (plus extras), nulls for unknowns, snake_case values.
#[test]
fn summary_serialises_to_the_parse_log_json_shape() {
    let json = serde_json::to_value(parse_log("aerender ERROR: No comp was found with the given name.\n")).unwrap();
    assert_eq!(json["outcome"], "failed");
    assert!(json["ae_version"].is_null() && json["comp"].is_null() && json["expected_frames"].is_null());
    assert_eq!(json["frames_completed"], 0);
    assert_eq!(
        json["errors"],
        serde_json::json!([{"class": "comp_not_found", "line": "aerender ERROR: No comp was found with the given name."}])
    );
    assert_eq!(json["warnings"], serde_json::json!([]));
    assert!(json["total_time_seconds"].is_null());
}
