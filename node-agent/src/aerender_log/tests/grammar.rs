//! The pure line grammar (§3.1–§3.4): splitting, prefixes, names, times, settings, frame lines.

use super::super::grammar::{
    Field, Prefix, SettingKey, TimeValue, parse_banner, parse_finished_line, parse_frame_rate, parse_render_log_header,
    parse_setting, parse_starting_line, parse_time_value, parse_total_time, scan_frame_lines, split_collapsed,
    split_lines, strip_prefix, unquote_name,
};

/// `\r\n`, `\n` and lone `\r` each end one line; CRLF does not produce an empty line in between.
#[test]
fn split_lines_accepts_crlf_lf_and_lone_cr() {
    let lines: Vec<&str> = split_lines("a\r\nb\nc\rd\r\n\r\ne").collect();
    assert_eq!(lines, vec!["a", "b", "c", "d", "", "e"]);
    assert_eq!(split_lines("no break").collect::<Vec<_>>(), vec!["no break"]);
    assert_eq!(split_lines("").count(), 0);
}

/// Lines collapsed onto one physical line are split at each severity prefix and `aerender` marker.
#[test]
fn split_collapsed_cuts_at_every_line_start_marker() {
    let collapsed = "LoadLibrary \"n\" failed!PROGRESS:  0:00:00:00 (1): 0 SecondsPROGRESS:  0:00:00:01 (2): 0 Seconds";
    assert_eq!(
        split_collapsed(collapsed),
        vec![
            "LoadLibrary \"n\" failed!",
            "PROGRESS:  0:00:00:00 (1): 0 Seconds",
            "PROGRESS:  0:00:00:01 (2): 0 Seconds"
        ]
    );
    let with_fatal = "PROGRESS:  0:00:00:00 (1): 0 Secondsaerender Error: After Effects error: x";
    assert_eq!(split_collapsed(with_fatal).len(), 2);
    assert_eq!(
        split_collapsed("aerender version 24.2.1x2WARNING:x"),
        vec!["aerender version 24.2.1x2", "WARNING:x"]
    );
}

/// "Try running aerender without the -reuse flag" inside the busy message is not a line start,
/// and lower-case `warning:` inside a message is not a prefix.
#[test]
fn split_collapsed_keeps_messages_that_mention_aerender_or_warning_whole() {
    let busy = "aerender ERROR: After Effects can not render for aerender. Another instance of aerender, or another script, may be running; or, AE may be waiting for response from a modal dialog, or for a render to complete. Try running aerender without the -reuse flag to invoke a separate instance of After Effects";
    assert_eq!(split_collapsed(busy), vec![busy]);
    let warning = "WARNING:After Effects warning: Project has missing fonts.";
    assert_eq!(split_collapsed(warning), vec![warning]);
}

/// Every severity of §1/§3.1 is recognised; unprefixed text is returned unchanged.
#[test]
fn strip_prefix_recognises_each_severity() {
    assert_eq!(
        strip_prefix("PROGRESS:  Start: 0"),
        (Some(Prefix::Progress), "  Start: 0")
    );
    assert_eq!(
        strip_prefix("INFO:After Effects: x"),
        (Some(Prefix::Info), "After Effects: x")
    );
    assert_eq!(
        strip_prefix("WARNING:After Effects warning: y"),
        (Some(Prefix::Warning), "After Effects warning: y")
    );
    assert_eq!(strip_prefix("DEBUG:z"), (Some(Prefix::Debug), "z"));
    assert_eq!(strip_prefix("ERROR: w"), (Some(Prefix::Error), " w"));
    assert_eq!(
        strip_prefix("  0:00:08:07 (200): 0 Seconds"),
        (None, "  0:00:08:07 (200): 0 Seconds")
    );
}

/// Banners of every version format in the doc, also when not at the start of the segment.
#[test]
fn parse_banner_reads_every_version_format() {
    for (line, version) in [
        ("aerender version 13.5x347", "13.5x347"),
        ("aerender version 14.2.1x34", "14.2.1x34"),
        ("aerender version 24.2.1x2", "24.2.1x2"),
        ("aerender version 23.4x53", "23.4x53"),
        ("junk aerender version 22.0x7 trailing", "22.0x7"),
    ] {
        assert_eq!(parse_banner(line).as_deref(), Some(version), "{line}");
    }
    assert_eq!(parse_banner("aerender version "), None);
    assert_eq!(parse_banner("PROGRESS: Launching After Effects..."), None);
}

/// The render-log file header gives the AE version and the project (§3.4).
#[test]
fn parse_render_log_header_reads_version_and_project() {
    let header = "Adobe After Effects v22.0 Windows 64 render log for project “vfx-3.aep”";
    assert_eq!(
        parse_render_log_header(header),
        Some((Some("22.0".to_owned()), Some("vfx-3.aep".to_owned())))
    );
    assert_eq!(
        parse_render_log_header("Rendering started on 19.05.2022 at 15:23:11"),
        None
    );
}

/// Comp names: unquoted with period, straight quotes, curly quotes with period (§3.4).
#[test]
fn unquote_name_handles_every_quoting_style() {
    assert_eq!(unquote_name(" main.").as_deref(), Some("main"));
    assert_eq!(unquote_name(" \"Composition\"").as_deref(), Some("Composition"));
    assert_eq!(unquote_name(" “_Example 1”.").as_deref(), Some("_Example 1"));
    assert_eq!(unquote_name(" “render”.").as_deref(), Some("render"));
    assert_eq!(unquote_name(" 00003 (30p).").as_deref(), Some("00003 (30p)"));
    assert_eq!(
        unquote_name(" \"a \"quoted\" comp\".").as_deref(),
        Some("a \"quoted\" comp")
    );
    assert_eq!(unquote_name(" ."), None);
    assert_eq!(unquote_name(""), None);
}

/// The start line of §3.2 item 7 and §10.2.
#[test]
fn parse_starting_line_reads_the_comp() {
    assert_eq!(
        parse_starting_line("4/30/2019 1:59:13 AM: Starting composition main."),
        Some(Some("main".to_owned()))
    );
    assert_eq!(
        parse_starting_line("11/25/2025 1:59:13 AM: Starting composition main."),
        Some(Some("main".to_owned()))
    );
    assert_eq!(parse_starting_line("Start: 0:00:00:00"), None);
}

/// Every finish-line form of §3.2 item 11 and §3.4 (dates, quotes, localisations).
#[test]
fn parse_finished_line_reads_every_documented_form() {
    for (body, comp) in [
        (
            "5/7/2018 6:22:38 PM: Finished composition \"Composition\"",
            Some("Composition"),
        ),
        (
            "4/7/19 3:01:44 AM EDT: Finished composition 00003 (30p).",
            Some("00003 (30p)"),
        ),
        (
            "15/03/2022 19:28:47 GMT+2: Finished composition “_Example 1”.",
            Some("_Example 1"),
        ),
        ("11/25/2025 2:00:01 AM: Finished composition \"main\".", Some("main")),
        ("19.05.2022 15:23:11: Finished composition “render”.", Some("render")),
        ("19.05.2022 15:23:11: fin de la composition « titre ».", Some("titre")),
        ("19.05.2022 15:23:11: Komposition „Haupt“ beendet.", Some("Haupt")),
        ("Finished composition", None),
    ] {
        assert_eq!(parse_finished_line(body), Some(comp.map(str::to_owned)), "{body}");
    }
    assert_eq!(parse_finished_line("Starting composition main."), None);
}

/// `Total Time Elapsed` in each format of §3.2 item 12 / §10.2; an unparsable one is still seen.
#[test]
fn parse_total_time_reads_seconds_minutes_and_hours() {
    assert_eq!(parse_total_time("Total Time Elapsed: 0 Seconds"), Some(Some(0)));
    assert_eq!(parse_total_time("Total Time Elapsed: 17 Seconds"), Some(Some(17)));
    assert_eq!(parse_total_time("Total Time Elapsed: 48 Seconds"), Some(Some(48)));
    assert_eq!(parse_total_time("Total Time Elapsed: 1 Min, 28 Sec"), Some(Some(88)));
    assert_eq!(
        parse_total_time("Total Time Elapsed: 26 Hr, 15 Min"),
        Some(Some(94_500))
    );
    assert_eq!(parse_total_time("**Total Time Elapsed: 17 Seconds"), Some(Some(17)));
    assert_eq!(parse_total_time("Total Time Elapsed: soon"), Some(None));
    assert_eq!(parse_total_time("Time Span: Work Area"), None);
}

/// The four progress keys in English and German; look-alike keys are not taken.
#[test]
fn parse_setting_recognises_progress_keys_only() {
    assert_eq!(
        parse_setting("  Start: 0:00:00:00"),
        Some((SettingKey::Start, "0:00:00:00"))
    );
    assert_eq!(parse_setting("End: 0:00:04:24"), Some((SettingKey::End, "0:00:04:24")));
    assert_eq!(
        parse_setting("Duration: 0:00:05:00"),
        Some((SettingKey::Duration, "0:00:05:00"))
    );
    assert_eq!(
        parse_setting("Frame Rate: 25.00 (comp)"),
        Some((SettingKey::FrameRate, "25.00 (comp)"))
    );
    assert_eq!(
        parse_setting("Anfang: 0:00:00:00"),
        Some((SettingKey::Start, "0:00:00:00"))
    );
    assert_eq!(
        parse_setting("Dauer: 0:00:05:00"),
        Some((SettingKey::Duration, "0:00:05:00"))
    );
    assert_eq!(parse_setting("Start Frame: 0"), None);
    assert_eq!(parse_setting("Time Span: Work Area"), None);
    assert_eq!(parse_setting("Output To: /tmp/a:b.mov"), None);
}

/// Frame rates with decimal point or locale comma, fractional NTSC rates; junk is unknown.
#[test]
fn parse_frame_rate_accepts_decimal_commas() {
    assert_eq!(parse_frame_rate("25.00 (comp)"), Some(25.0));
    assert_eq!(parse_frame_rate("25,00 (comp)"), Some(25.0));
    assert_eq!(parse_frame_rate("23.976 (comp)"), Some(23.976));
    assert_eq!(parse_frame_rate("29,97"), Some(29.97));
    assert_eq!(parse_frame_rate("30"), Some(30.0));
    assert_eq!(parse_frame_rate("(comp)"), None);
    assert_eq!(parse_frame_rate("0"), None);
    assert_eq!(parse_frame_rate("NaN"), None);
}

/// Timecodes (`:` and drop-frame `;`), plain frame numbers and negatives parse; junk does not.
#[test]
fn parse_time_value_reads_timecodes_and_frame_numbers() {
    assert_eq!(
        parse_time_value("0:00:04:24"),
        Some(TimeValue::Timecode {
            negative: false,
            hours: 0,
            minutes: 0,
            seconds: 4,
            frames: 24,
            drop_frame: false
        })
    );
    assert_eq!(
        parse_time_value("1;34;40;09"),
        Some(TimeValue::Timecode {
            negative: false,
            hours: 1,
            minutes: 34,
            seconds: 40,
            frames: 9,
            drop_frame: true
        })
    );
    assert_eq!(parse_time_value("124"), Some(TimeValue::Frames(124)));
    assert_eq!(parse_time_value("-5"), Some(TimeValue::Frames(-5)));
    assert!(matches!(
        parse_time_value("-0:00:00:05"),
        Some(TimeValue::Timecode { negative: true, .. })
    ));
    assert_eq!(parse_time_value("0:00:04"), None);
    assert_eq!(parse_time_value("a:b:c:d"), None);
    assert_eq!(parse_time_value(""), None);
}

/// Non-drop timecodes convert with the rounded rate as timebase (23.976 → 24).
#[test]
fn non_drop_timecodes_convert_to_frames() {
    let frames = |text: &str, rate: f64| parse_time_value(text).and_then(|time| time.to_frames(Some(rate)));
    assert_eq!(frames("0:00:04:24", 25.0), Some(124));
    assert_eq!(frames("0:00:05:00", 25.0), Some(125));
    assert_eq!(frames("0:00:27:16", 23.976), Some(664));
    assert_eq!(frames("0:00:09:23", 24.0), Some(239));
    assert_eq!(frames("1:00:00:00", 25.0), Some(90_000));
}

/// Drop-frame timecodes skip two frame numbers a minute except every tenth minute (29.97).
#[test]
fn drop_frame_timecodes_convert_to_frames() {
    let frames = |text: &str, rate: f64| parse_time_value(text).and_then(|time| time.to_frames(Some(rate)));
    assert_eq!(frames("0;00;10;00", 29.97), Some(300));
    assert_eq!(frames("0;01;00;02", 29.97), Some(1800));
    assert_eq!(frames("0;10;00;00", 29.97), Some(17_982));
    assert_eq!(frames("1;34;40;09", 29.97), Some(170_239));
    assert_eq!(frames("0;01;00;04", 59.94), Some(3600));
}

/// Without a frame rate a timecode has no frame number; frame numbers need none; a frames
/// field beyond the timebase means the rate is wrong, so no number is given.
#[test]
fn timecode_conversion_refuses_to_guess() {
    assert_eq!(
        parse_time_value("0:00:04:24").and_then(|time| time.to_frames(None)),
        None
    );
    assert_eq!(TimeValue::Frames(12).to_frames(None), Some(12));
    assert_eq!(
        parse_time_value("0:00:00:29").and_then(|time| time.to_frames(Some(25.0))),
        None
    );
}

/// A frame line yields its index, timecode and seconds (§3.3).
#[test]
fn scan_frame_lines_reads_a_plain_frame_line() {
    let frame_lines = scan_frame_lines("  0:00:00:01 (2): 0 Seconds");
    assert_eq!(frame_lines.len(), 1);
    assert_eq!(frame_lines[0].index, 2);
    assert_eq!(frame_lines[0].timecode, "0:00:00:01");
    assert_eq!(frame_lines[0].seconds, Some(0));
    assert_eq!(frame_lines[0].field, None);
}

/// Field suffixes `U`/`L`, drop-frame timecodes and frame-number display all read.
#[test]
fn scan_frame_lines_reads_fields_drop_frame_and_frame_numbers() {
    assert_eq!(
        scan_frame_lines("0:00:00:11 (12U): 1 Seconds")[0].field,
        Some(Field::Upper)
    );
    assert_eq!(
        scan_frame_lines("0:00:00:11 (12L): 1 Seconds")[0].field,
        Some(Field::Lower)
    );
    assert_eq!(scan_frame_lines("1;34;40;09 (21280): 1 Seconds")[0].index, 21_280);
    let numbered = scan_frame_lines("12 (13): 0 Seconds");
    assert_eq!((numbered[0].index, numbered[0].time), (13, TimeValue::Frames(12)));
}

/// Several frame lines collapsed onto one yield one entry each, with or without separation.
#[test]
fn scan_frame_lines_reads_collapsed_lines() {
    let indices = |text: &str| scan_frame_lines(text).iter().map(|line| line.index).collect::<Vec<_>>();
    assert_eq!(
        indices("0:00:00:00 (1): 0 Seconds  0:00:00:01 (2): 0 Seconds"),
        vec![1, 2]
    );
    assert_eq!(
        indices("0:00:00:00 (1): 0 Seconds0:00:00:01 (2): 0 Seconds"),
        vec![1, 2]
    );
}

/// A truncated frame line still counts; its seconds are unknown.
#[test]
fn scan_frame_lines_counts_a_truncated_line() {
    let frame_lines = scan_frame_lines("0:00:00:07 (8):");
    assert_eq!((frame_lines[0].index, frame_lines[0].seconds), (8, None));
}

/// Header lines with parentheses and lines not starting with a time are not frame lines.
#[test]
fn scan_frame_lines_rejects_look_alikes() {
    assert!(scan_frame_lines("Frame Rate: 24.00 (comp)").is_empty());
    assert!(scan_frame_lines("Finished composition 00003 (30p).").is_empty());
    assert!(scan_frame_lines("Output Audio: On (if comp has audio)").is_empty());
    assert!(scan_frame_lines("footage 0:00:00:01 (2): 0 Seconds").is_empty());
    assert!(scan_frame_lines("0:00:00:01 (x): 0 Seconds").is_empty());
    assert!(scan_frame_lines("Using DXGI: Device: \"NVIDIA\" has dedicated video RAM (MB): 6052").is_empty());
    assert!(scan_frame_lines("(1): 0 Seconds").is_empty());
}
