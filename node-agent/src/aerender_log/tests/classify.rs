//! Every problem line quoted in §2, §3.1, §3.5 and §10 gets the right class and severity;
//! benign noise containing "ERROR" gets none.

use super::super::{ErrorClass, Outcome};
use super::{classes, parse_one};

/// Asserts that `line` alone is one fatal line of `class`.
fn assert_fatal(line: &str, class: ErrorClass) {
    let summary = parse_one(line);
    assert_eq!(classes(&summary.errors), vec![class], "{line}");
    assert!(summary.warnings.is_empty(), "{line}: {:?}", summary.warnings);
    assert_eq!(summary.outcome, Outcome::Failed, "{line}");
    assert_eq!(summary.errors[0].line, line.trim());
}

/// Asserts that `line` alone is one warning of `class` and not fatal.
fn assert_warning(line: &str, class: ErrorClass) {
    let summary = parse_one(line);
    assert_eq!(classes(&summary.warnings), vec![class], "{line}");
    assert!(summary.errors.is_empty(), "{line}: {:?}", summary.errors);
}

/// Asserts that `line` alone is neither error nor warning.
fn assert_ignored(line: &str) {
    let summary = parse_one(line);
    assert!(summary.errors.is_empty(), "{line}: {:?}", summary.errors);
    assert!(summary.warnings.is_empty(), "{line}: {:?}", summary.warnings);
}

/// Every `aerender SYNTAX ERROR` of §2/§10.1, usage, and the script's flag-combination refusals.
#[test]
fn syntax_errors_and_usage_are_syntax_error() {
    for line in [
        "aerender SYNTAX ERROR: Illegal argument flag: -reuse",
        "aerender SYNTAX ERROR: no value given for flag: -comp",
        "aerender SYNTAX ERROR: Bad value for -verbose.",
        "aerender SYNTAX ERROR: Bad value for -close.",
        "aerender SYNTAX ERROR: Bad value for -sound.",
        "aerender SYNTAX ERROR: Bad value for -mfr.",
        "aerender SYNTAX ERROR: Bad value for -increment. Must be between 1 and 100, inclusive.",
        "aerender USAGE: ",
        "USAGE:",
        "aerender ERROR: Can't use -renderSettings because no render queue item was specified.",
        "aerender ERROR: Can't use -outputSettings because no render queue item was specified.",
    ] {
        assert_fatal(line, ErrorClass::SyntaxError);
    }
}

/// The "not found" family of exit code 7 (§3.5, §10.1).
#[test]
fn lookup_failures_get_their_own_classes() {
    assert_fatal(
        "aerender ERROR: No comp was found with the given name.",
        ErrorClass::CompNotFound,
    );
    assert_fatal(
        "aerender ERROR: No render queue item was found with the given index.",
        ErrorClass::RenderQueueItemNotFound,
    );
    assert_fatal(
        "aerender ERROR: No render settings template was found with the given name.",
        ErrorClass::TemplateNotFound,
    );
    assert_fatal(
        "aerender ERROR: No output module template was found with the given name.",
        ErrorClass::TemplateNotFound,
    );
    assert_fatal(
        "aerender ERROR: Specified render queue item needs output file but none provided.",
        ErrorClass::OutputNotProvided,
    );
    assert_fatal(
        "aerender ERROR: No project provided and no project open.",
        ErrorClass::ProjectMissing,
    );
}

/// `-log` problems (§2 `-log` row).
#[test]
fn log_file_problems_are_log_file_error() {
    for line in [
        "aerender ERROR: Directory specified for log file does not exist: /nope/log.txt",
        "aerender ERROR: Directory specified for log file is a file, not a directory: /etc/hosts",
        "aerender ERROR: Can not open log file. Try checking write protection of directory: /ro",
    ] {
        assert_fatal(line, ErrorClass::LogFileError);
    }
}

/// AE runtime errors: the script's generic one and thrown `After Effects error:` objects.
#[test]
fn ae_runtime_errors_are_ae_runtime_error() {
    for line in [
        "aerender ERROR: Runtime error in After Effects.",
        "aerender Error: After Effects error: internal verification failure, sorry! {bad}",
        "After Effects error: internal verification failure, sorry! {missing}",
        "aerender Error: After Effects error: Something else went wrong.",
        "There is an error in background rendering so switching to foreground rendering",
    ] {
        assert_fatal(line, ErrorClass::AeRuntimeError);
    }
}

/// Footage decode failures, with the `aerender Error:` prefix, as a continuation, or bare (§3.5).
#[test]
fn footage_decode_failures_are_footage_error() {
    for line in [
        "aerender Error: After Effects error: Could not read from source. Please check the settings and try again.",
        "Error: After Effects error: The source compression type is not supported.",
        "Could not read from source",
    ] {
        assert_fatal(line, ErrorClass::FootageError);
    }
}

/// The busy/modal-dialog message (§3.5, §5.4).
#[test]
fn busy_instance_is_ae_busy() {
    assert_fatal(
        "aerender ERROR: After Effects can not render for aerender. Another instance of aerender, or another script, may be running; or, AE may be waiting for response from a modal dialog, or for a render to complete. Try running aerender without the -reuse flag to invoke a separate instance of After Effects",
        ErrorClass::AeBusy,
    );
}

/// macOS Apple-event failures (no colon after ERROR), start-up failures, the socket (§3.5).
#[test]
fn launch_problems_are_launch_failure() {
    for line in [
        "aerender ERROR -1701: AEGetParamPt failed at line 894",
        "aerender ERROR -1701: AEGetParamPt failed at line 918",
        "aerender ERROR: Can not open socket.",
        "unexpected failure during application startup",
        "AEsend failed to send apple event",
    ] {
        assert_fatal(line, ErrorClass::LaunchFailure);
    }
}

/// Licence lines Deadline fails on (§3.5).
#[test]
fn licence_lines_are_license_error() {
    for line in [
        "Unable to obtain a license",
        "Invalid Serial Number",
        "Trapcode Particular is using the same serial number on another machine",
    ] {
        assert_fatal(line, ErrorClass::LicenseError);
    }
}

/// Output write failures are fatal even under a WARNING prefix: the file may be damaged.
#[test]
fn output_write_failures_are_fatal_output_module_failed() {
    assert_fatal(
        "WARNING:After Effects warning: logged one error  error: Rendering error while writing to file /out/a.mov. An output module failed. The file may be damaged or corrupted.",
        ErrorClass::OutputModuleFailed,
    );
    assert_fatal(
        "The name of an output module for this render item is already in use",
        ErrorClass::OutputModuleFailed,
    );
}

/// nexrender-patched script failures (§3.1, logs 06/07).
#[test]
fn script_failures_are_script_error() {
    assert_fatal(
        "aerender ERROR: Error executing script: C:\\tmp\\script.jsx",
        ErrorClass::ScriptError,
    );
    assert_fatal(
        "aerender ERROR: Can not open script file. Make sure path is correct: C:\\tmp\\x.jsx",
        ErrorClass::ScriptError,
    );
}

/// `INFO: Render aborted.` means the render stopped (§3.5).
#[test]
fn render_aborted_is_fatal() {
    assert_fatal("INFO: Render aborted.", ErrorClass::RenderAborted);
}

/// An `aerender ERROR` nobody documented is still fatal, as `unknown_error`; so is a bare
/// `ERROR:`/`FATAL:` severity line and the German `aerender Fehler`.
#[test]
fn undocumented_fatal_lines_are_unknown_error() {
    assert_fatal(
        "aerender ERROR: Something nobody has seen before.",
        ErrorClass::UnknownError,
    );
    assert_fatal("ERROR: mystery", ErrorClass::UnknownError);
    assert_fatal("FATAL: mystery", ErrorClass::UnknownError);
    assert_fatal("aerender Fehler: Komposition nicht gefunden", ErrorClass::UnknownError);
}

/// Missing fonts in both forms of §3.1/§3.5, and the detail line on its own.
#[test]
fn missing_fonts_are_warnings() {
    assert_warning(
        "WARNING:After Effects warning: Project has missing fonts.",
        ErrorClass::MissingFonts,
    );
    assert_warning(
        "WARNING:After Effects warning: Grouped_Message_{some layers have missing dependencies. Press Ctrl-C to copy this list.|||a layer has missing dependencies.###@0 dependencies are missing:}Text Layer: Font family: Roboto, Font style: Black",
        ErrorClass::MissingFonts,
    );
    assert_warning(
        "Text Layer: Font family: Roboto, Font style: Black",
        ErrorClass::MissingFonts,
    );
}

/// `Unable to Render: File Not Found` is a warning: the render may "succeed" with placeholders.
#[test]
fn missing_footage_is_a_warning() {
    assert_warning(
        "WARNING:After Effects warning: logged one error  error: Unable to Render: File Not Found /footage/a.mov",
        ErrorClass::MissingFootage,
    );
}

/// Missing plug-ins are warnings (policy decides, §3.5).
#[test]
fn missing_effects_are_warnings() {
    assert_warning(
        "INFO:This project contains a reference to a missing effect",
        ErrorClass::MissingEffect,
    );
    assert_warning(
        "INFO:This project contains 2 references to missing effects.",
        ErrorClass::MissingEffect,
    );
    assert_warning(
        "WARNING:This project contains a reference to a missing effect",
        ErrorClass::MissingEffect,
    );
}

/// Layers with missing dependencies but no font detail.
#[test]
fn unspecified_missing_dependencies_are_a_warning() {
    assert_warning(
        "WARNING:After Effects warning: some layers have missing dependencies.",
        ErrorClass::MissingDependencies,
    );
}

/// The script's own warnings when flags lack `-comp`/`-rqindex` (§3.1, double spaces verbatim).
#[test]
fn ignored_flag_warnings_are_argument_ignored() {
    for line in [
        "WARNING: -RStemplate argument ignored since no -comp or -rqindex provided.",
        "WARNING: -OMtemplate argument ignored since no -comp  or -rqindex provided.",
        "WARNING: -output argument ignored since no -comp  or -rqindex provided.",
        "WARNING: -s and/or -e arguments ignored since no -comp  or -rqindex provided.",
        "WARNING: -i argument ignored since no -comp  or -rqindex provided.",
    ] {
        assert_warning(line, ErrorClass::ArgumentIgnored);
    }
}

/// Asking for frames outside the comp (§2.1, log 11), with a decimal comma.
#[test]
fn time_span_outside_the_comp_is_a_warning() {
    assert_warning(
        "WARNING:After Effects warning: timeSpanStart of -0,87 seconds will cause render to have frames outside of range",
        ErrorClass::TimeSpanOutOfRange,
    );
}

/// Other `WARNING:` lines are generic `ae_warning`s.
#[test]
fn other_warnings_are_ae_warning() {
    assert_warning(
        "WARNING:After Effects warning: Something unusual.",
        ErrorClass::AeWarning,
    );
}

/// The AE console noise of §1 and the "non fatal" rows of §3.5, though several say ERROR.
#[test]
fn benign_noise_is_neither_error_nor_warning() {
    for line in [
        "Using DXGI: Device: \"Microsoft Basic Render Driv",
        " has video RAM(MB): 0",
        "LoadLibrary \"n\" failed!",
        "2019-04-29 22:50:53 : INFO  Environment: Scale factor from PP is 1.000000",
        "*** GPU Warning: your GPU is not supported ***",
        "[ERROR] NVAPI error (-3) no nvidia device",
        "2021-05-01 10:00:00 : ERROR *** IVCAutoReleasePool: leaked objects",
        "Unable to read VR Path Registry from C:\\Users\\x\\AppData\\Local\\openvr\\openvrpaths.vrpath",
        "GL_VERS: 32Prog Error: 1280",
        "Create Buffer Error: 1280",
    ] {
        assert_ignored(line);
    }
}

/// Informational lines of §3.1/§3.2 are not problems.
#[test]
fn informational_lines_are_not_problems() {
    for line in [
        "INFO:After Effects: this project must be converted from version 23.1 (Macintosh 64). The original file will be unchanged.",
        "INFO: Skipping render queue item with correct comp name but marked to continue from a partly complete render.",
        "PROGRESS: Adding specified comp to Render Queue",
        "PROGRESS: Launching After Effects...",
        "PROGRESS: ...After Effects successfully launched",
        "Running Script: C:\\Users\\x\\AppData\\Local\\Temp\\nexrender\\script.jsx",
        "rqindex 1num 3",
        "Rendering started on 19.05.2022 at 15:23:11",
        "Log closed on 19.05.2022 at 15:23:40",
        "...",
        "Error: a footage file named Error: in a line with no fatal before it",
    ] {
        assert_ignored(line);
    }
}

/// Settings and output-module lines are never classified, whatever their paths say.
#[test]
fn settings_block_values_are_never_problems() {
    for line in [
        "PROGRESS:  Output To: /renders/File Not Found/Error: x.mov",
        "PROGRESS:  Render Settings: Could not read from source settings",
        "  Output Module: missing fonts template",
        "Running Script: C:\\licenses\\Unable to obtain a license.jsx",
    ] {
        assert_ignored(line);
    }
}

/// Display prints the serde name for every class.
#[test]
fn error_class_display_matches_its_serialised_name() {
    use ErrorClass::*;
    for class in [
        SyntaxError,
        CompNotFound,
        RenderQueueItemNotFound,
        ProjectMissing,
        TemplateNotFound,
        OutputNotProvided,
        LogFileError,
        ScriptError,
        AeRuntimeError,
        FootageError,
        AeBusy,
        LaunchFailure,
        LicenseError,
        OutputModuleFailed,
        RenderAborted,
        UnknownError,
        MissingFonts,
        MissingFootage,
        MissingEffect,
        MissingDependencies,
        ArgumentIgnored,
        TimeSpanOutOfRange,
        AeWarning,
    ] {
        assert_eq!(
            serde_json::to_value(class).unwrap(),
            serde_json::Value::String(class.to_string())
        );
    }
}
