//! One aerender invocation from launch to exit, in the order of `aerender` + the script:
//! banner and launch, argument parsing, `-log`, value checks, project, queue item, templates,
//! frame range, then rendering (in `render`). Returns the process exit code.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::args::{self, FlagProfile, ScriptArgs};
use super::clock;
use super::content::{self, Applied};
use super::project::Project;
use super::queue;
use super::render::{self, ItemOutcome, ItemPlan, Renderer};
use super::scenario::{Mode, Scenario};
use super::sink::Sink;
use super::tree::{self, AeChild, InstanceLock};

pub const BUSY_LINE: &str = "aerender ERROR: After Effects can not render for aerender. Another instance of aerender, or another script, may be running; or, AE may be waiting for response from a modal dialog, or for a render to complete. Try running aerender without the -reuse flag to invoke a separate instance of After Effects";
const LAUNCH_FAILURE_LINE: &str = "aerender ERROR -1701: AEGetParamPt failed at line 894";
const AE_RUNTIME_LINE: &str = "aerender ERROR: Runtime error in After Effects.";
/// Exit code for failures of the aerender launcher itself (busy AE, -1701): the script never
/// ran, so none of its codes apply; 1 is its `EXIT_FAILURE_CODE_FROM_APP`.
pub const LAUNCHER_FAILURE_EXIT: i32 = 1;

/// Script exit codes 3/5/7/9 become 4/6/8/10 once a `-log` file is in use.
pub fn with_user_log(code: i32, has_user_log: bool) -> i32 {
    if has_user_log && matches!(code, 3 | 5 | 7 | 9) {
        code + 1
    } else {
        code
    }
}

pub(super) struct Invocation {
    pub(super) scenario: Scenario,
    pub(super) sink: Sink,
    child: Option<AeChild>,
    _lock: Option<InstanceLock>,
}

impl Invocation {
    pub(super) fn forced(&self, kind: &str) -> bool {
        self.scenario.mode == Mode::Error && self.scenario.error == kind
    }

    /// Normal process end: AE quits, held output is printed, the scenario may override the code.
    fn exit(mut self, code: i32) -> i32 {
        clock::sleep_ms(self.scenario.tail_ms);
        if let Some(child) = self.child.take() {
            child.quit();
        }
        self.sink.finish();
        self.scenario.exit_code.unwrap_or(code)
    }

    /// A fatal script line (`aerender ERROR: …`) and its exit code.
    fn fail(mut self, line: &str, code: i32) -> i32 {
        self.sink.script(line);
        let code = with_user_log(code, self.sink.has_log_file());
        self.exit(code)
    }
}

fn emit_noise(sink: &mut Sink, scenario: &Scenario) {
    if scenario.noise {
        sink.noise(br#"Using DXGI: Device: "Microsoft Basic Render Driver" has video RAM(MB): 0"#);
        sink.noise(br#"LoadLibrary "n" failed!"#);
        sink.noise(b"2025-11-25 01:59:13 : INFO  Environment: Scale factor from PP is 1.000000");
        sink.noise(b"[ERROR] NVAPI error (-6): NVAPI_NVIDIA_DEVICE_NOT_FOUND");
        sink.noise(b"2025-11-25 01:59:14 : ERROR *** IVCAutoReleasePool: pool not drained ***");
    }
    if scenario.invalid_utf8 {
        sink.noise(b"Using DXGI: Device: \"Intel(R) UHD Graphics \x81\xff\x8e\" has video RAM(MB): 128");
    }
}

fn value_after<'a>(script_args: &'a [String], flag: &str) -> Option<&'a String> {
    script_args
        .iter()
        .position(|arg| arg == flag)
        .and_then(|position| script_args.get(position + 1))
}

/// Everything after the launcher decided to render.
pub fn run(reuse: bool, script_args: &[String], scenario: Scenario) -> i32 {
    let hold_launcher_lines = scenario
        .banner_last
        .unwrap_or(!scenario.windows_profile && !std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let sink = Sink::new(
        scenario.windows_profile,
        hold_launcher_lines,
        scenario.buffered,
        scenario.noise_to_stderr,
    );
    let lock = if scenario.lock {
        InstanceLock::acquire().map(Some)
    } else {
        Some(None)
    };
    let mut invocation = Invocation {
        scenario,
        sink,
        child: None,
        _lock: None,
    };
    invocation
        .sink
        .launcher(&format!("aerender version {}", invocation.scenario.version));
    let Some(lock) = lock else {
        invocation.sink.launcher(BUSY_LINE);
        return invocation.exit(LAUNCHER_FAILURE_EXIT);
    };
    invocation._lock = lock;
    if invocation.scenario.mode == Mode::Busy || invocation.forced("busy") {
        invocation.sink.launcher(BUSY_LINE);
        return invocation.exit(LAUNCHER_FAILURE_EXIT);
    }
    let _ = reuse; // a fresh or reused AE behaves the same here
    invocation.sink.launcher("PROGRESS: Launching After Effects...");
    if invocation.scenario.child {
        let hold: Vec<PathBuf> = value_after(script_args, "-project")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        invocation.child = tree::spawn_child(&invocation.scenario, &hold);
    }
    emit_noise(&mut invocation.sink, &invocation.scenario);
    clock::sleep_ms(invocation.scenario.launch_ms);
    if invocation.forced("launch_1701") {
        invocation.sink.launcher(LAUNCH_FAILURE_LINE);
        return invocation.exit(LAUNCHER_FAILURE_EXIT);
    }
    invocation
        .sink
        .launcher("PROGRESS: ...After Effects successfully launched");
    match invocation.scenario.mode {
        Mode::SilentExit => {
            clock::sleep_ms(invocation.scenario.exit_after_ms);
            return invocation.exit(0);
        }
        Mode::LicensePopup if invocation.scenario.license_before => clock::sleep_forever(),
        _ => {}
    }
    if invocation.forced("socket") {
        return invocation.exit(11);
    }
    let profile = FlagProfile {
        supports_2022_flags: invocation.scenario.major_version() >= 22,
        reject_late_reuse: invocation.scenario.reject_late_reuse,
        script_hook: content::hook_installed(),
    };
    let parsed = match args::parse_script_args(script_args, profile) {
        Ok(parsed) => parsed,
        Err(message) => return invocation.fail(&format!("aerender SYNTAX ERROR: {message}"), 3),
    };
    script(invocation, &parsed)
}

/// Opens the `-log` file the way the script does; `Err` is the line to write to the socket.
fn open_user_log(path: &str) -> Result<File, String> {
    let parent = Path::new(path)
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.exists() {
        return Err(format!(
            "aerender ERROR: Directory specified for log file does not exist: {path}"
        ));
    }
    if !parent.is_dir() {
        return Err(format!(
            "aerender ERROR: Directory specified for log file is a file, not a directory: {path}"
        ));
    }
    File::create(path).map_err(|_| {
        format!("aerender ERROR: Can not open log file. Try checking write protection of directory: {path}")
    })
}

fn check_values(parsed: &ScriptArgs) -> Result<(), &'static str> {
    if let Some(verbose) = &parsed.verbose {
        if verbose != "ERRORS" && verbose != "ERRORS_AND_PROGRESS" {
            return Err("aerender SYNTAX ERROR: Bad value for -verbose.");
        }
    }
    if let Some(close) = &parsed.close {
        if !matches!(close.as_str(), "DO_NOT_CLOSE" | "DO_NOT_SAVE_CHANGES" | "SAVE_CHANGES") {
            return Err("aerender SYNTAX ERROR: Bad value for -close.");
        }
    }
    if let Some(sound) = &parsed.sound {
        if !matches!(sound.as_str(), "ON" | "OFF" | "on" | "off") {
            return Err("aerender SYNTAX ERROR: Bad value for -sound.");
        }
    }
    if let Some((enable, _)) = &parsed.mfr {
        if !matches!(enable.as_str(), "ON" | "OFF" | "on" | "off") {
            return Err("aerender SYNTAX ERROR: Bad value for -mfr.");
        }
    }
    Ok(())
}

fn emit_missing_fonts(sink: &mut Sink, scenario: &Scenario) {
    let Some(kind) = scenario.missing_fonts.as_deref() else {
        return;
    };
    if kind == "simple" || kind == "both" {
        sink.ae("WARNING:After Effects warning: Project has missing fonts.");
    }
    if kind == "grouped" || kind == "both" {
        sink.ae(&format!(
            "WARNING:After Effects warning: Grouped_Message_{{some layers have missing dependencies. Press Ctrl-C to copy this list.|||a layer has missing dependencies.###@0 dependencies are missing:}}Text Layer: Font family: {}, Font style: {}",
            scenario.font_family, scenario.font_style
        ));
    }
}

/// The script's `my_ReallyRender`, from the `-log` file on.
fn script(mut invocation: Invocation, parsed: &ScriptArgs) -> i32 {
    if let Some(log_path) = &parsed.log {
        match open_user_log(log_path) {
            Ok(file) => invocation.sink.set_log_file(file),
            Err(line) => {
                invocation.sink.script(&line);
                return invocation.fail(AE_RUNTIME_LINE, 9);
            }
        }
    }
    if let Err(line) = check_values(parsed) {
        return invocation.fail(line, 3);
    }
    invocation.sink.set_verbose(parsed.verbose.as_deref() != Some("ERRORS"));

    let project_file = parsed.project.as_deref().map(Path::new);
    let project = match (project_file, &parsed.teamproject) {
        (Some(path), _) => Project::open(path).filter(|_| path.is_file()),
        (None, Some(_)) => Some(Project::default()),
        (None, None) => None,
    };
    let Some(project) = project.filter(|_| !invocation.forced("no_project")) else {
        return invocation.fail("aerender ERROR: No project provided and no project open.", 7);
    };
    if let Some(render_log) = invocation.scenario.render_log.clone() {
        if let Ok(file) = File::create(&render_log) {
            let name = project_file
                .and_then(Path::file_name)
                .map(|name| name.to_string_lossy().into_owned());
            let (version, windows, locale) = (
                invocation.scenario.version.clone(),
                invocation.scenario.windows_profile,
                invocation.scenario.locale,
            );
            invocation
                .sink
                .open_render_log(file, &version, windows, &name.unwrap_or_default(), locale);
        }
    }
    emit_missing_fonts(&mut invocation.sink, &invocation.scenario);
    if invocation.forced("compression") || invocation.forced("script") {
        let path = invocation.scenario.script_path.clone();
        invocation
            .sink
            .script(&format!("aerender ERROR: Error executing script: {path}"));
        let detail = match (invocation.forced("compression"), &invocation.scenario.error_message) {
            (true, _) => "After Effects error: The source compression type is not supported.".to_owned(),
            (false, Some(message)) => message.clone(),
            (false, None) => "ReferenceError: Function app.project.item(1).layer is undefined".to_owned(),
        };
        invocation.sink.script(&format!("Error: {detail}"));
        return invocation.fail(AE_RUNTIME_LINE, 9);
    }
    if invocation.forced("custom") {
        let line = invocation
            .scenario
            .error_message
            .clone()
            .unwrap_or_else(|| AE_RUNTIME_LINE.to_owned());
        return invocation.fail(&line, 9);
    }
    // FlatRender's hook runs `-r`'s script when the renderer looks up `-comp`'s queue item, so
    // without `-comp` it never runs (docs/content.md).
    let applied = match (&parsed.script, &parsed.comp) {
        (Some(path), Some(_)) => {
            invocation.sink.script(&format!("PROGRESS: Running Script: {path}"));
            match content::run_script(path, &project) {
                Ok(applied) => applied,
                Err(failure) => {
                    for line in failure.lines(path) {
                        invocation.sink.script(&line);
                    }
                    // Thrown inside the renderer's try: its catch sets EXIT_AE_RUNTIME (§4).
                    let code = with_user_log(9, invocation.sink.has_log_file());
                    return invocation.exit(code);
                }
            }
        }
        _ => None,
    };
    match queue::select_items(&mut invocation, parsed, &project) {
        Ok(plans) => render_all(invocation, parsed, plans, applied.as_ref()),
        Err((line, code)) => invocation.fail(&line, code),
    }
}

fn render_all(invocation: Invocation, parsed: &ScriptArgs, plans: Vec<ItemPlan>, applied: Option<&Applied>) -> i32 {
    let Invocation {
        scenario,
        mut sink,
        child,
        _lock,
    } = invocation;
    let mut renderer = Renderer {
        scenario: &scenario,
        sink: &mut sink,
        mfr_on: parsed.mfr_on(),
        continue_on_missing_footage: parsed.continue_on_missing_footage,
        applied,
    };
    let mut code = 0;
    for plan in &plans {
        if plan.before_comp_start || plan.frames.is_empty() || scenario.mode == Mode::NoRender {
            render::warn_nothing_rendered(&mut renderer, plan);
            continue;
        }
        match render::render_item(&mut renderer, plan) {
            ItemOutcome::Completed => {}
            ItemOutcome::Failed(script_code) => {
                code = script_code;
                break;
            }
        }
    }
    let code = with_user_log(code, sink.has_log_file());
    let invocation = Invocation {
        scenario,
        sink,
        child,
        _lock,
    };
    invocation.exit(code)
}
