//! Classification of aerender problem lines into [`ErrorClass`]es, and the benign-noise filter.
//!
//! Rules come from `docs/aerender.md` §3.1 (line grammar), §3.5 (lines worth classifying) and the
//! message constants of AE's `commandLineRenderer.jsx` that §2/§10.1 quote. Matching is on
//! documented phrases, never on the bare word "error" (§3.5, last paragraph).

use std::fmt;

use serde::Serialize;

/// What went wrong (or what is suspicious) in an aerender log line.
///
/// Serialised in snake_case (`comp_not_found`); [`fmt::Display`] prints the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Bad flag, missing flag value, bad flag value, or usage shown (exit 2/3/4).
    SyntaxError,
    /// `-comp` names no comp in the project.
    CompNotFound,
    /// `-rqindex` is out of range.
    RenderQueueItemNotFound,
    /// No project given and none open.
    ProjectMissing,
    /// `-RStemplate` / `-OMtemplate` names no template.
    TemplateNotFound,
    /// The queue item needs an output path and none was given.
    OutputNotProvided,
    /// The `-log` file or its directory could not be used.
    LogFileError,
    /// A script passed with nexrender's `-r` could not be opened or failed.
    ScriptError,
    /// An After Effects runtime error (`aerender Error: After Effects error: …`, `Runtime error in After Effects.`).
    AeRuntimeError,
    /// Footage could not be decoded (`Could not read from source`, unsupported compression).
    FootageError,
    /// AE is busy or blocked by a modal dialog ("can not render for aerender").
    AeBusy,
    /// aerender could not launch or talk to AE (`ERROR -1701: AEGetParamPt`, Apple events, socket).
    LaunchFailure,
    /// AE or a plug-in licence is missing or in conflict.
    LicenseError,
    /// Writing the output failed; the file may be damaged.
    OutputModuleFailed,
    /// `INFO: Render aborted.`: the render was stopped, usually after another fatal line.
    RenderAborted,
    /// An `aerender ERROR…` line whose message no rule recognises.
    UnknownError,
    /// Fonts are missing and get substituted.
    MissingFonts,
    /// A footage file was not found (`Unable to Render: File Not Found`).
    MissingFootage,
    /// The project references an effect (plug-in) that is not installed.
    MissingEffect,
    /// Layers have missing dependencies whose kind the line does not say.
    MissingDependencies,
    /// A flag was ignored because neither `-comp` nor `-rqindex` was given.
    ArgumentIgnored,
    /// The requested time span starts or ends outside the comp.
    TimeSpanOutOfRange,
    /// Any other `WARNING:` line.
    AeWarning,
    /// A saved project's field value could not be applied to the template: the node agent's
    /// `apply.jsx` names the field and the layer (`Error: flatrender: field "<key>" (layer
    /// "<layer>"): <reason>`, docs/content.md §3).
    FieldNotApplied,
}

impl ErrorClass {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyntaxError => "syntax_error",
            Self::CompNotFound => "comp_not_found",
            Self::RenderQueueItemNotFound => "render_queue_item_not_found",
            Self::ProjectMissing => "project_missing",
            Self::TemplateNotFound => "template_not_found",
            Self::OutputNotProvided => "output_not_provided",
            Self::LogFileError => "log_file_error",
            Self::ScriptError => "script_error",
            Self::AeRuntimeError => "ae_runtime_error",
            Self::FootageError => "footage_error",
            Self::AeBusy => "ae_busy",
            Self::LaunchFailure => "launch_failure",
            Self::LicenseError => "license_error",
            Self::OutputModuleFailed => "output_module_failed",
            Self::RenderAborted => "render_aborted",
            Self::UnknownError => "unknown_error",
            Self::MissingFonts => "missing_fonts",
            Self::MissingFootage => "missing_footage",
            Self::MissingEffect => "missing_effect",
            Self::MissingDependencies => "missing_dependencies",
            Self::ArgumentIgnored => "argument_ignored",
            Self::TimeSpanOutOfRange => "time_span_out_of_range",
            Self::AeWarning => "ae_warning",
            Self::FieldNotApplied => "field_not_applied",
        }
    }

    /// True for classes that only say "something failed" and rarely name the cause; a more
    /// specific class in the same log is the better explanation (see [`super::LogSummary::primary_error`]).
    pub fn is_generic(self) -> bool {
        matches!(
            self,
            Self::AeRuntimeError | Self::ScriptError | Self::RenderAborted | Self::UnknownError
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How the node agent's `apply.jsx` starts the line that names a field it could not apply
/// (after the stock renderer's `aerender ERROR: Error executing script: <path>`).
const FIELD_NOT_APPLIED_PREFIX: &str = "Error: flatrender: field \"";

/// True for the line naming a field the agent's script could not apply (docs/content.md §3).
/// Matched exactly, as the script writes it: the rest of the line holds template names (layers,
/// compositions) that must not be read as further log entries.
pub(super) fn is_field_not_applied(line: &str) -> bool {
    line.trim_start().starts_with(FIELD_NOT_APPLIED_PREFIX)
}

/// Whether a classified line makes the render fail or only deserves attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Severity {
    Fatal,
    Warning,
}

/// Lines the AE process prints straight to the console that contain "ERROR"/"Error"/"Warning" but
/// mean nothing for the render (§1 "Lines printed by the AE process", §3.5 "non fatal" rows).
const BENIGN_NOISE_MARKERS: &[&str] = &[
    "Using DXGI",
    "has video RAM",
    "LoadLibrary \"",
    " : INFO ",
    "*** GPU Warning",
    "NVAPI error",
    "IVCAutoReleasePool",
    "Unable to read VR Path Registry",
    "GL_VERS:",
    "Create Buffer Error:",
];

/// True when `text` is known console noise from the AE process that must never be classified.
pub(super) fn is_benign_noise(text: &str) -> bool {
    BENIGN_NOISE_MARKERS.iter().any(|marker| text.contains(marker))
}

/// Classifies the text of a fatal `aerender …` line, given the part after `aerender `
/// (e.g. `ERROR: No comp was found with the given name.`). Always returns a class: the line is
/// fatal by its form (§3.1 "Fatal lines"), the class only says why.
pub(super) fn classify_aerender_fatal(after_aerender: &str) -> ErrorClass {
    let lower = after_aerender.to_lowercase();
    if lower.starts_with("syntax error") {
        return ErrorClass::SyntaxError;
    }
    // Usage is printed when aerender rejects its invocation (exit 2, §4): same remedy as a syntax error.
    if lower.starts_with("usage") {
        return ErrorClass::SyntaxError;
    }
    // `aerender ERROR -1701: AEGetParamPt failed at line 894` has no colon after ERROR; these
    // numbered errors come from the aerender binary's Apple-event launch of AE (§1, §3.1).
    if lower.starts_with("error -") {
        return ErrorClass::LaunchFailure;
    }
    let message = lower
        .split_once(':')
        .map_or(lower.as_str(), |(_, message)| message)
        .trim();
    classify_script_message(message)
        .or_else(|| classify_free_text(message).map(|(class, _severity)| class))
        .unwrap_or(ErrorClass::UnknownError)
}

/// The fixed messages of `commandLineRenderer.jsx` (quoted in §2, §3.5 and §10.1), lower-cased.
fn classify_script_message(lower_message: &str) -> Option<ErrorClass> {
    const SCRIPT_MESSAGES: &[(&str, ErrorClass)] = &[
        ("no comp was found", ErrorClass::CompNotFound),
        ("no render queue item was found", ErrorClass::RenderQueueItemNotFound),
        ("no render settings template", ErrorClass::TemplateNotFound),
        ("no output module template", ErrorClass::TemplateNotFound),
        ("needs output file", ErrorClass::OutputNotProvided),
        ("no project provided", ErrorClass::ProjectMissing),
        // Flag combinations the script refuses: the command line is wrong, like a syntax error.
        ("can't use -rendersettings", ErrorClass::SyntaxError),
        ("can't use -outputsettings", ErrorClass::SyntaxError),
        ("tried to parse an undefined argument", ErrorClass::SyntaxError),
        ("directory specified for log file", ErrorClass::LogFileError),
        ("can not open log file", ErrorClass::LogFileError),
        ("error executing script", ErrorClass::ScriptError),
        ("can not open script file", ErrorClass::ScriptError),
        ("can not render for aerender", ErrorClass::AeBusy),
        // The socket is aerender's channel to the AE it launched (§1); failing it is a launch failure.
        ("can not open socket", ErrorClass::LaunchFailure),
        ("runtime error in after effects", ErrorClass::AeRuntimeError),
    ];
    SCRIPT_MESSAGES
        .iter()
        .find(|(phrase, _class)| lower_message.contains(phrase))
        .map(|(_phrase, class)| *class)
}

/// Classifies free text (the body of a `WARNING:`/`INFO:`/`PROGRESS:` line, an unprefixed line,
/// or the message of an `aerender` fatal line) by the documented phrases of §3.5. Returns `None`
/// when nothing documented matches.
pub(super) fn classify_free_text(text: &str) -> Option<(ErrorClass, Severity)> {
    use ErrorClass as Class;
    use Severity::{Fatal, Warning};

    let lower = text.to_lowercase();
    let contains_any = |phrases: &[&str]| phrases.iter().any(|phrase| lower.contains(phrase));

    // Fatal phrases first: a line can mention both a fatal cause and a warning word.
    if contains_any(&["could not read from source", "source compression type is not supported"]) {
        // AE may log this bare and still exit 0 with black frames; AWS treats it as fatal (§3.5).
        return Some((Class::FootageError, Fatal));
    }
    if contains_any(&[
        "unable to obtain a license",
        "invalid serial number",
        "is using the same serial number",
    ]) {
        return Some((Class::LicenseError, Fatal));
    }
    if contains_any(&[
        "unexpected failure during application startup",
        "aesend failed to send apple event",
    ]) {
        return Some((Class::LaunchFailure, Fatal));
    }
    if lower.contains("can not render for aerender") {
        return Some((Class::AeBusy, Fatal));
    }
    // §3.5 lists the write failure as a WARNING line, but "the file may be damaged": calling such a
    // render a success would be a lie, so it is fatal here. Deadline always fails on the name clash.
    if contains_any(&[
        "an output module failed",
        "rendering error while writing to file",
        "name of an output module for this render item is already in use",
    ]) {
        return Some((Class::OutputModuleFailed, Fatal));
    }
    if lower.trim_start().starts_with("render aborted") {
        return Some((Class::RenderAborted, Fatal));
    }
    if contains_any(&[
        "internal verification failure",
        "error in background rendering so switching to foreground",
        "after effects error:",
    ]) {
        return Some((Class::AeRuntimeError, Fatal));
    }
    // Warnings: the render may "succeed" with placeholders or substitutes; policy decides (§8).
    if lower.contains("file not found") {
        return Some((Class::MissingFootage, Warning));
    }
    // The grouped form carries the font on the same line (log 04); Deadline notes the detail may
    // also come on the next line, which then matches "font family:" on its own.
    if contains_any(&["missing fonts", "font family:"]) {
        return Some((Class::MissingFonts, Warning));
    }
    if lower.contains("missing effect") || lower.trim_start().starts_with("this project contains") {
        return Some((Class::MissingEffect, Warning));
    }
    if lower.contains("missing dependencies") {
        return Some((Class::MissingDependencies, Warning));
    }
    if contains_any(&["argument ignored since no -comp", "arguments ignored since no -comp"]) {
        return Some((Class::ArgumentIgnored, Warning));
    }
    if lower.contains("timespanstart") || lower.contains("frames outside of range") {
        return Some((Class::TimeSpanOutOfRange, Warning));
    }
    None
}
