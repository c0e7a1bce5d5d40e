//! Failure modes of §10.3 and the error forms of §3.1/§3.5 inside whole transcripts.

use super::super::{ErrorClass, Outcome, parse_log};
use super::{classes, success_transcript};

/// Silent early exit (§10.3 mode 3): banner and launch only.
#[test]
fn silent_early_exit_is_incomplete() {
    let summary = parse_log("aerender version 24.2.1x2\nPROGRESS: Launching After Effects...\n");
    assert_eq!(
        (summary.outcome, summary.comp, summary.expected_frames),
        (Outcome::Incomplete, None, None)
    );
}

/// `-version` prints only the banner: incomplete, version known.
#[test]
fn version_only_output_is_incomplete_with_version() {
    let summary = parse_log("aerender version 23.4x53\r\n");
    assert_eq!(
        (summary.outcome, summary.ae_version.as_deref()),
        (Outcome::Incomplete, Some("23.4x53"))
    );
}

/// Help text (exit 2) is a failed invocation.
#[test]
fn help_text_is_a_failed_invocation() {
    let summary =
        parse_log("aerender version 23.4x53\nUSAGE: aerender [arguments]\n1] aerender renders After Effects comps.\n");
    assert_eq!(
        (summary.outcome, classes(&summary.errors)),
        (Outcome::Failed, vec![ErrorClass::SyntaxError])
    );
}

/// A fatal line wins over a finish line: errors with exit 0 happen (§4).
#[test]
fn fatal_line_fails_even_after_a_finish_line() {
    let summary = parse_log(&format!(
        "{}aerender ERROR: Runtime error in After Effects.\n",
        success_transcript()
    ));
    assert_eq!(summary.outcome, Outcome::Failed);
}

/// nexrender-patched multi-line failure (logs 06/07): three fatal lines, the footage one explains.
#[test]
fn multi_line_script_failure_keeps_every_line_and_explains_with_the_specific_one() {
    let summary = parse_log(
        "aerender ERROR: Error executing script: C:\\tmp\\s.jsx\r\nError: After Effects error: The source compression type is not supported.\r\naerender ERROR: Runtime error in After Effects.\r\n",
    );
    assert_eq!(
        classes(&summary.errors),
        vec![
            ErrorClass::ScriptError,
            ErrorClass::FootageError,
            ErrorClass::AeRuntimeError
        ]
    );
    assert_eq!(
        summary.primary_error().map(|entry| entry.class),
        Some(ErrorClass::FootageError)
    );
}

/// An unrecognised `Error:` continuation line keeps the class of the fatal line before it.
#[test]
fn unrecognised_error_continuation_inherits_the_previous_class() {
    let summary = parse_log("aerender ERROR: Error executing script: /tmp/s.jsx\nError: nexrender: layer not found\n");
    assert_eq!(
        classes(&summary.errors),
        vec![ErrorClass::ScriptError, ErrorClass::ScriptError]
    );
}

/// Mid-render AE error then `INFO: Render aborted.` (§10.3 mode 1).
#[test]
fn mid_render_error_then_abort_fails_with_footage_error_first() {
    let transcript = success_transcript();
    let cut = transcript.find("PROGRESS:  0:00:01:00").unwrap();
    let summary = parse_log(&format!(
        "{}aerender Error: After Effects error: Could not read from source. Please check the settings and try again.\nINFO: Render aborted.\n",
        &transcript[..cut]
    ));
    assert_eq!(
        classes(&summary.errors),
        vec![ErrorClass::FootageError, ErrorClass::RenderAborted]
    );
    assert_eq!((summary.outcome, summary.frames_completed), (Outcome::Failed, 25));
}

/// Completed with damage (§10.3 mode 5, log 14): a File Not Found warning after the total time.
#[test]
fn warning_after_total_time_keeps_success_and_reports_missing_footage() {
    let summary = parse_log(&format!(
        "{}WARNING:After Effects warning: logged one error  error: Unable to Render: File Not Found /f/a.mov\n",
        success_transcript()
    ));
    assert_eq!(
        (summary.outcome, classes(&summary.warnings)),
        (Outcome::Succeeded, vec![ErrorClass::MissingFootage])
    );
}

/// Missing fonts before rendering (§10.3 mode 6) leave the render successful, with warnings.
#[test]
fn missing_fonts_before_render_keep_success() {
    let summary = parse_log(&format!(
        "WARNING:After Effects warning: Project has missing fonts.\n{}",
        success_transcript()
    ));
    assert_eq!(
        (summary.outcome, classes(&summary.warnings)),
        (Outcome::Succeeded, vec![ErrorClass::MissingFonts])
    );
}

/// Warnings-only no-render exit (§10.3 mode 4): incomplete with the warning.
#[test]
fn warnings_only_exit_is_incomplete() {
    let summary = parse_log(
        "WARNING:After Effects warning: timeSpanStart of -0,87 seconds will cause render to have frames outside of range\naerender version 22.2x2\n",
    );
    assert_eq!(summary.outcome, Outcome::Incomplete);
    assert_eq!(classes(&summary.warnings), vec![ErrorClass::TimeSpanOutOfRange]);
}

/// With `-v ERRORS` only fatal lines print (§3.2); a fatal one fails the log.
#[test]
fn errors_only_verbosity_reports_the_fatal_line() {
    let summary = parse_log(
        "aerender version 24.2.1x2\nPROGRESS: Adding specified comp to Render Queue\naerender ERROR: No output module template was found with the given name.\n",
    );
    assert_eq!(classes(&summary.errors), vec![ErrorClass::TemplateNotFound]);
}

/// The three lines of a field the agent's script could not apply (docs/content.md §3), on stdout
/// with `\n` or `\r\n`, and as they stand in a `-log` file among the script's other lines: the
/// field line is the explaining error, whole, whatever template names it quotes.
#[test]
fn field_not_applied_is_the_explaining_error() {
    let field_line =
        "Error: flatrender: field \"headline\" (layer \"Title\"): no layer of that name in composition \"Intro\"";
    let stdout = format!(
        "PROGRESS: Running Script: /state/work/j/scene-000-f/apply.jsx\naerender ERROR: Error executing script: /state/work/j/scene-000-f/apply.jsx\n{field_line}\n"
    );
    let crlf = stdout.replace('\n', "\r\n");
    // With -log the script writes the same lines into the file (CRLF on Windows), after its own.
    let log_file = format!(
        "PROGRESS: Launching After Effects...\r\nINFO:After Effects: this project must be converted from version 23.1\r\n{}",
        crlf.replace("/state/work/j/scene-000-f/", "C:\\state\\work\\j\\scene-000-f\\")
    );
    for text in [stdout.as_str(), crlf.as_str(), log_file.as_str()] {
        let summary = parse_log(text);
        assert_eq!(
            classes(&summary.errors),
            vec![ErrorClass::ScriptError, ErrorClass::FieldNotApplied],
            "{text:?}"
        );
        let primary = summary.primary_error().expect("an error");
        assert_eq!(primary.class, ErrorClass::FieldNotApplied);
        assert_eq!(primary.line, field_line);
        assert_eq!(summary.outcome, Outcome::Failed);
    }
    // Streaming, line by line, as the runner feeds it.
    let mut parser = crate::aerender_log::LogParser::new();
    for line in crlf.split_inclusive("\r\n") {
        parser.feed_line(line);
    }
    assert_eq!(
        parser.summary().primary_error().map(|entry| entry.class),
        Some(ErrorClass::FieldNotApplied)
    );
}

/// Template names inside the field line (a layer called like a banner, a log prefix or console
/// noise) neither split it nor hide it.
#[test]
fn field_line_quoting_log_words_stays_one_entry() {
    for layer in [
        "aerender version 99.0x1",
        "x WARNING: y",
        "PROGRESS:  Finished composition \"Intro\"",
        "Using DXGI",
        "aerender ERROR: No comp was found with the given name.",
    ] {
        let field_line = format!("Error: flatrender: field \"k\" (layer \"{layer}\"): not a text layer");
        let summary = parse_log(&format!(
            "aerender ERROR: Error executing script: /a.jsx\n{field_line}\n"
        ));
        assert_eq!(
            classes(&summary.errors),
            vec![ErrorClass::ScriptError, ErrorClass::FieldNotApplied],
            "{layer}"
        );
        assert_eq!(
            summary.primary_error().map(|entry| entry.line.as_str()),
            Some(field_line.as_str())
        );
        assert!(summary.warnings.is_empty(), "{layer}: {:?}", summary.warnings);
        assert_eq!(summary.ae_version, None, "{layer}");
    }
    // Console noise between the two lines does not make it a plain continuation.
    let summary = parse_log(
        "aerender ERROR: Error executing script: /a.jsx\nUsing DXGI: Device: x\nError: flatrender: field \"k\" (layer \"L\"): needs a property\n",
    );
    assert_eq!(
        summary.primary_error().map(|entry| entry.class),
        Some(ErrorClass::FieldNotApplied)
    );
}
