//! Acceptance checks (docs/aerender.md §10.4) for the `fake-aerender` test double: each runs the
//! built binary and checks its lines, files, exit codes and process tree.
// These tests drive real processes with real deadlines; there is no async runtime to pause.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// Helpers outside `#[test]` fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flatrender_e2e::frames::check_png;

// FlatRender's `-r` scripts: the double with and without the startup hook.
#[path = "fake_aerender/content.rs"]
mod content;

const BINARY: &str = env!("CARGO_BIN_EXE_fake-aerender");
/// How long a test waits for the double to do what it must (generous: the machine is shared).
const PATIENCE: Duration = flatrender_proto::testing::PATIENCE;
const PROJECT: &str = "comp \"Main\" fps=25 frames=10\n";
/// `errno` for "text file busy" on Linux and macOS.
const ETXTBSY: i32 = 26;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(project: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let number = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fake-aerender-test-{}-{number}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::write(dir.join("project.aep"), project).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// The usual agent command line for frames `start..=end` of comp Main as a PNG sequence.
    fn render_args(&self, start: i64, end: i64) -> Vec<String> {
        let mut args = vec![
            "-project".to_owned(),
            self.arg("project.aep"),
            "-comp".into(),
            "Main".into(),
        ];
        args.extend(["-s".into(), start.to_string(), "-e".into(), end.to_string()]);
        args.extend(["-output".into(), self.arg("out/frame_[#####].png")]);
        args.extend(
            [
                "-v",
                "ERRORS_AND_PROGRESS",
                "-close",
                "DO_NOT_SAVE_CHANGES",
                "-sound",
                "OFF",
            ]
            .map(String::from),
        );
        args
    }

    fn frame(&self, number: i64) -> PathBuf {
        self.path(&format!("out/frame_{number:05}.png"))
    }

    fn child_pids(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(self.path("state/child.pids")).unwrap_or_default();
        text.lines().filter_map(|line| line.trim().parse().ok()).collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for pid in self.child_pids() {
            kill(&pid.to_string(), "KILL");
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kill(target: &str, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .stderr(Stdio::null())
        .status();
}

fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
}

/// A running double in its own process group; the whole group is killed on drop.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    status: Option<ExitStatus>,
}

fn spawn(scratch: &Scratch, args: &[String], env: &[(&str, &str)]) -> Running {
    spawn_program(Path::new(BINARY), scratch, args, env)
}

/// Like `spawn`, for a copy of the double at `program`.
fn spawn_program(program: &Path, scratch: &Scratch, args: &[String], env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&scratch.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
        .env("FAKE_AERENDER_STATE_DIR", scratch.path("state"))
        .env("FAKE_AERENDER_FRAME_MS", "2");
    command.envs(env.iter().copied()).process_group(0);
    // A freshly copied binary can be briefly "busy" while another thread's fork still holds the
    // copy's write handle (ETXTBSY); that passes, so try again until a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = loop {
        match command.spawn() {
            Ok(child) => break child,
            Err(error) if error.raw_os_error() == Some(ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("cannot start {}: {error}", program.display()),
        }
    };
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let mut pipe = child.stdout.take().unwrap();
    let sink = Arc::clone(&stdout);
    std::thread::spawn(move || {
        let mut buffer = [0_u8; 4096];
        while let Ok(count) = pipe.read(&mut buffer) {
            if count == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buffer[..count]);
        }
    });
    Running {
        child,
        stdout,
        status: None,
    }
}

impl Running {
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                // Let the reader drain what the process wrote before exiting.
                std::thread::sleep(Duration::from_millis(30));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn wait_for_output(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill(&format!("-{}", self.child.id()), "KILL");
        let _ = self.child.wait();
    }
}

/// Runs to completion (at most 10 s) and returns (exit code or signal, stdout).
fn run(scratch: &Scratch, args: &[String], env: &[(&str, &str)]) -> (ExitStatus, String) {
    run_program(Path::new(BINARY), scratch, args, env)
}

/// Like `run`, for a copy of the double at `program`.
fn run_program(program: &Path, scratch: &Scratch, args: &[String], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut running = spawn_program(program, scratch, args, env);
    let status = running.wait(PATIENCE).expect("fake-aerender did not exit");
    (status, running.output())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// Replaces the render-log dates so transcripts can be compared exactly.
fn without_dates(output: &str) -> String {
    output
        .lines()
        .map(|line| {
            match line
                .find(": Starting composition")
                .or_else(|| line.find(": Finished composition"))
            {
                Some(at) if line.starts_with("PROGRESS:  ") => format!("PROGRESS:  <date>{}", &line[at..]),
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SUCCESS_TRANSCRIPT: &str = "aerender version 24.2.1x2
PROGRESS: Launching After Effects...
PROGRESS: ...After Effects successfully launched
PROGRESS: Adding specified comp to Render Queue
PROGRESS:  <date>: Starting composition Main.


PROGRESS:  Render Settings: Best Settings
PROGRESS:  Quality: Best
PROGRESS:  Resolution: Full
PROGRESS:  Size: 1920 x 1080
PROGRESS:  Proxy Use: Use No Proxies
PROGRESS:  Effects: Current Settings
PROGRESS:  Disk Cache: Read Only
PROGRESS:  Color Depth: Current Settings
PROGRESS:  Frame Blending: On for Checked Layers
PROGRESS:  Field Render: Off
PROGRESS:  Pulldown: Off
PROGRESS:  Motion Blur: On for Checked Layers
PROGRESS:  Solos: Current Settings
PROGRESS:  Time Span: Custom
PROGRESS:  Start: 0:00:00:02
PROGRESS:  End: 0:00:00:05
PROGRESS:  Duration: 0:00:00:04
PROGRESS:  Frame Rate: 25.00 (comp)
PROGRESS:  Guide Layers: All Off
PROGRESS:  Skip Existing Files: Off
PROGRESS:  
PROGRESS:  Output Module: Lossless
PROGRESS:  Output To: <out>
PROGRESS:  Format: PNG Sequence
PROGRESS:  Output Info: PNG
PROGRESS:  Start Frame: 0
PROGRESS:  Include: Project Link
PROGRESS:  Output Audio: Off
PROGRESS:  Channels: RGB
PROGRESS:  Depth: Millions of Colors
PROGRESS:  Color: Premultiplied
PROGRESS:  Resize: -
PROGRESS:  Crop: -
PROGRESS:  Final Size: 1920 x 1080
PROGRESS:  Profile: -
PROGRESS:  Post-Render Action: None
PROGRESS:  
PROGRESS:  0:00:00:02 (1): 0 Seconds
PROGRESS:  0:00:00:03 (2): 0 Seconds
PROGRESS:  0:00:00:04 (3): 0 Seconds
PROGRESS:  0:00:00:05 (4): 0 Seconds
PROGRESS:  <date>: Finished composition \"Main\".


PROGRESS:  Total Time Elapsed: 0 Seconds";

/// A clean render prints the §10.2 transcript, writes one valid PNG per frame and leaves no process.
#[test]
fn success_prints_documented_lines_and_writes_valid_pngs() {
    let scratch = Scratch::new(PROJECT);
    let (status, output) = run(&scratch, &scratch.render_args(2, 5), &[]);
    assert_eq!(status.code(), Some(0));
    let expected = SUCCESS_TRANSCRIPT.replace("<out>", &scratch.arg("out/frame_[#####].png"));
    assert_eq!(without_dates(&output), expected);
    assert!(output.ends_with('\n') && !output.contains('\r'));
    for frame in 2..=5 {
        assert_eq!(check_png(&scratch.frame(frame)), Ok((64, 36)), "frame {frame}");
    }
    assert!(!scratch.frame(1).exists() && !scratch.frame(6).exists());
    let children = scratch.child_pids();
    assert_eq!(children.len(), 1);
    assert!(
        !is_alive(children[0]),
        "the After Effects child must exit with aerender"
    );
}

/// No arguments, `-help` or `-h` print the banner and usage and exit 2; `-version` exits 0.
#[test]
fn usage_and_version_follow_the_launcher_rules() {
    let scratch = Scratch::new(PROJECT);
    for args in [vec![], strings(&["-comp", "Main", "-help"]), strings(&["-h"])] {
        let (status, output) = run(&scratch, &args, &[]);
        assert_eq!(status.code(), Some(2));
        assert!(output.starts_with("aerender version 24.2.1x2\nUSAGE:"), "{output}");
    }
    let (status, output) = run(&scratch, &strings(&["-version"]), &[]);
    assert_eq!(
        (status.code(), output.as_str()),
        (Some(0), "aerender version 24.2.1x2\n")
    );
    assert!(scratch.child_pids().is_empty());
}

/// Flag errors print the script's SYNTAX ERROR texts after launch, with exit 3, or 4 once `-log` is open.
#[test]
fn syntax_errors_exit_3_or_4_with_log() {
    let scratch = Scratch::new(PROJECT);
    let cases: [(&[&str], &str, i32); 5] = [
        (
            &["-project", "p", "-Comp", "Main"],
            "aerender SYNTAX ERROR: Illegal argument flag: -Comp",
            3,
        ),
        (
            &["-project", "p", "-comp"],
            "aerender SYNTAX ERROR: no value given for flag: -comp",
            3,
        ),
        (&["-v", "LOUD"], "aerender SYNTAX ERROR: Bad value for -verbose.", 3),
        (&["-sound", "MAYBE"], "aerender SYNTAX ERROR: Bad value for -sound.", 3),
        (&["-mfr", "YES", "90"], "aerender SYNTAX ERROR: Bad value for -mfr.", 3),
    ];
    for (args, line, code) in cases {
        let (status, output) = run(&scratch, &strings(args), &[]);
        assert_eq!(status.code(), Some(code), "{args:?}");
        assert!(
            output.contains("PROGRESS: ...After Effects successfully launched\n"),
            "{output}"
        );
        assert!(output.ends_with(&format!("{line}\n")), "{output}");
    }
    let mut args = scratch.render_args(0, 1);
    args.extend(strings(&["-i", "101", "-log", &scratch.arg("render.log")]));
    let (status, output) = run(&scratch, &args, &[]);
    assert_eq!(status.code(), Some(4));
    assert!(!output.contains("SYNTAX"), "with -log the error goes to the log file");
    let log = std::fs::read_to_string(scratch.path("render.log")).unwrap();
    assert!(log.contains("aerender SYNTAX ERROR: Bad value for -increment. Must be between 1 and 100, inclusive."));
}

/// Project, comp, queue-index, template and output errors print their texts and exit 7 (8 with `-log`).
#[test]
fn lookup_errors_exit_7_or_8_with_log() {
    let scratch = Scratch::new("comp \"Main\" fps=25 frames=10\nrq \"Main\"\n");
    let project = scratch.arg("project.aep");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (strings(&["-comp", "Main"]), "No project provided and no project open."),
        (
            strings(&["-project", &scratch.arg("missing.aep"), "-comp", "Main"]),
            "No project provided and no project open.",
        ),
        (
            strings(&["-project", &project, "-comp", "Nope", "-output", "x"]),
            "No comp was found with the given name.",
        ),
        (
            strings(&["-project", &project, "-rqindex", "2"]),
            "No render queue item was found with the given index.",
        ),
        (
            strings(&["-project", &project, "-rqindex", "1"]),
            "Specified render queue item needs output file but none provided.",
        ),
        (
            strings(&[
                "-project",
                &project,
                "-comp",
                "Main",
                "-output",
                "x",
                "-RStemplate",
                "Nope",
            ]),
            "No render settings template was found with the given name.",
        ),
        (
            strings(&[
                "-project",
                &project,
                "-comp",
                "Main",
                "-output",
                "x",
                "-OMtemplate",
                "Nope",
            ]),
            "No output module template was found with the given name.",
        ),
    ];
    for (args, message) in cases {
        let (status, output) = run(&scratch, &args, &[]);
        assert_eq!(status.code(), Some(7), "{args:?}");
        assert!(output.ends_with(&format!("aerender ERROR: {message}\n")), "{output}");
    }
    let args = strings(&[
        "-project",
        &project,
        "-comp",
        "Nope",
        "-output",
        "x",
        "-log",
        &scratch.arg("l.txt"),
    ]);
    let (status, _) = run(&scratch, &args, &[]);
    assert_eq!(status.code(), Some(8));
    let (status, output) = run(
        &scratch,
        &scratch.render_args(0, 1),
        &[
            ("FAKE_AERENDER_MODE", "error"),
            ("FAKE_AERENDER_ERROR", "comp_not_found"),
        ],
    );
    assert_eq!(status.code(), Some(7));
    assert!(output.ends_with("aerender ERROR: No comp was found with the given name.\n"));
}

/// A `-log` path in a missing directory gives the two documented lines and exit 9.
#[test]
fn missing_log_directory_exits_9() {
    let scratch = Scratch::new(PROJECT);
    let mut args = scratch.render_args(0, 1);
    args.extend(strings(&["-log", &scratch.arg("nope/log.txt")]));
    let (status, output) = run(&scratch, &args, &[]);
    assert_eq!(status.code(), Some(9));
    let expected = format!(
        "aerender ERROR: Directory specified for log file does not exist: {}\naerender ERROR: Runtime error in After Effects.\n",
        scratch.arg("nope/log.txt")
    );
    assert!(output.ends_with(&expected), "{output}");
}

/// A mid-render AE error prints the stock error and `INFO: Render aborted.`; `exit_code=0` makes it exit 0.
#[test]
fn render_error_aborts_with_9_or_lies_with_0() {
    let scratch = Scratch::new(PROJECT);
    let env = [("FAKE_AERENDER_MODE", "error"), ("FAKE_AERENDER_AT_FRAME", "3")];
    let (status, output) = run(&scratch, &scratch.render_args(0, 5), &env);
    assert_eq!(status.code(), Some(9));
    assert!(output.ends_with(
        "PROGRESS:  0:00:00:02 (3): 0 Seconds\naerender Error: After Effects error: Could not read from source. Please check the settings and try again.\nINFO: Render aborted.\n"
    ), "{output}");
    assert!(scratch.frame(2).exists() && !scratch.frame(3).exists());
    let env = [
        ("FAKE_AERENDER_MODE", "error"),
        ("FAKE_AERENDER_AT_FRAME", "3"),
        ("FAKE_AERENDER_EXIT_CODE", "0"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 5), &env);
    assert_eq!(status.code(), Some(0));
    assert!(output.contains("aerender Error: After Effects error:"));
}

/// The nexrender-patched script error, the busy instance and the -1701 launch failure use their documented texts.
#[test]
fn launcher_and_script_errors_use_documented_texts() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "error"),
        ("FAKE_AERENDER_ERROR", "compression"),
        ("FAKE_AERENDER_SCRIPT_PATH", "/t/s.jsx"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 1), &env);
    assert_eq!(status.code(), Some(9));
    assert!(output.ends_with("aerender ERROR: Error executing script: /t/s.jsx\nError: After Effects error: The source compression type is not supported.\naerender ERROR: Runtime error in After Effects.\n"));
    let (status, output) = run(&scratch, &scratch.render_args(0, 1), &[("FAKE_AERENDER_MODE", "busy")]);
    assert_eq!(status.code(), Some(1));
    assert!(output.starts_with(
        "aerender version 24.2.1x2\naerender ERROR: After Effects can not render for aerender. Another instance"
    ));
    let env = [("FAKE_AERENDER_MODE", "error"), ("FAKE_AERENDER_ERROR", "launch_1701")];
    let (status, output) = run(&scratch, &scratch.render_args(0, 1), &env);
    assert_eq!(status.code(), Some(1));
    assert!(
        output
            .ends_with("PROGRESS: Launching After Effects...\naerender ERROR -1701: AEGetParamPt failed at line 894\n")
    );
    let (status, output) = run(
        &scratch,
        &scratch.render_args(0, 1),
        &[("FAKE_AERENDER_MODE", "error"), ("FAKE_AERENDER_ERROR", "socket")],
    );
    assert_eq!(status.code(), Some(11));
    assert!(!output.contains("ERROR"));
}

/// A silent early exit prints only the launch lines, waits, and exits 0 without files.
#[test]
fn silent_exit_prints_launch_only() {
    let scratch = Scratch::new(PROJECT);
    let started = Instant::now();
    let env = [
        ("FAKE_AERENDER_MODE", "silent_exit"),
        ("FAKE_AERENDER_EXIT_AFTER_MS", "200"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 3), &env);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        output,
        "aerender version 24.2.1x2\nPROGRESS: Launching After Effects...\nPROGRESS: ...After Effects successfully launched\n"
    );
    assert!(!scratch.path("out").exists());
}

/// `no_render` (and a start frame before the comp) print warnings only and exit 0 without files.
#[test]
fn no_render_prints_warnings_only() {
    let scratch = Scratch::new("comp \"Main\" fps=25 frames=10 start=5\n");
    let (status, output) = run(&scratch, &scratch.render_args(0, 8), &[]);
    assert_eq!(status.code(), Some(0));
    assert!(output.ends_with("WARNING:After Effects warning: timeSpanStart of -0.20 seconds will cause render to have frames outside of range\n"), "{output}");
    let (status, output) = run(
        &scratch,
        &scratch.render_args(5, 8),
        &[("FAKE_AERENDER_MODE", "no_render")],
    );
    assert_eq!(status.code(), Some(0));
    assert!(output.contains("Skip Existing Files") && !output.contains("Starting composition"));
    assert!(!scratch.path("out").exists());
}

/// `damage` renders everything, then logs File Not Found after Total Time Elapsed, exit 0.
#[test]
fn damage_warns_after_total_time() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "damage"),
        ("FAKE_AERENDER_MISSING_FOOTAGE", "/f/plate.mov"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 2), &env);
    assert_eq!(status.code(), Some(0));
    assert!(output.ends_with("PROGRESS:  Total Time Elapsed: 0 Seconds\nWARNING:After Effects warning: logged one error  error: Unable to Render: File Not Found /f/plate.mov\n"));
    assert!((0..=2).all(|frame| scratch.frame(frame).exists()));
}

/// Missing frames are skipped with `-continueOnMissingFootage` and hang the render without it.
#[test]
fn missing_frames_skip_with_flag_and_hang_without() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "missing_frames"),
        ("FAKE_AERENDER_MISSING_FRAMES", "1,2"),
    ];
    let mut args = scratch.render_args(0, 3);
    args.push("-continueOnMissingFootage".into());
    let (status, output) = run(&scratch, &args, &env);
    assert_eq!(status.code(), Some(0));
    assert!(
        scratch.frame(0).exists()
            && !scratch.frame(1).exists()
            && !scratch.frame(2).exists()
            && scratch.frame(3).exists()
    );
    assert_eq!(
        output.matches(" Seconds\n").count(),
        3,
        "two frame lines plus the total"
    );
    assert!(output.contains("File Not Found"));
    let mut running = spawn(&scratch, &scratch.render_args(0, 3), &env);
    assert!(running.wait_for_output("(1): 0 Seconds", PATIENCE));
    assert!(
        running.wait(Duration::from_millis(300)).is_none(),
        "must hang at the missing frame"
    );
}

/// Missing fonts are reported before rendering in both forms and the render still succeeds.
#[test]
fn missing_fonts_warn_before_render() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MISSING_FONTS", "both"),
        ("FAKE_AERENDER_FONT_FAMILY", "Bebas"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 1), &env);
    assert_eq!(status.code(), Some(0));
    let fonts = output
        .find("WARNING:After Effects warning: Project has missing fonts.\n")
        .unwrap();
    let grouped = output
        .find("dependencies are missing:}Text Layer: Font family: Bebas, Font style: Black\n")
        .unwrap();
    let starting = output.find("Starting composition").unwrap();
    assert!(fonts < starting && grouped < starting);
    assert!(output.contains("Finished composition"));
}

/// A hang after finish prints the finish line, never exits, ignores SIGTERM and keeps its child alive.
#[test]
fn hang_after_finish_ignores_sigterm_and_keeps_child() {
    let scratch = Scratch::new(PROJECT);
    let mut running = spawn(
        &scratch,
        &scratch.render_args(0, 2),
        &[("FAKE_AERENDER_MODE", "hang_after_finish")],
    );
    assert!(running.wait_for_output("Finished composition \"Main\".\n\n\n", PATIENCE));
    kill(&running.child.id().to_string(), "TERM");
    assert!(
        running.wait(Duration::from_millis(400)).is_none(),
        "SIGTERM must be ignored while stuck"
    );
    assert!(!running.output().contains("Total Time Elapsed"));
    let children = scratch.child_pids();
    assert!(children.iter().all(|pid| is_alive(*pid)) && !children.is_empty());
    kill(&format!("-{}", running.child.id()), "KILL");
    assert!(running.wait(PATIENCE).is_some());
}

/// A stall stops output at the chosen frame and keeps running until killed.
#[test]
fn stall_stops_output_and_keeps_running() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "stall"),
        ("FAKE_AERENDER_AT_FRAME", "2"),
        ("FAKE_AERENDER_STALL_CPU", "true"),
    ];
    let mut running = spawn(&scratch, &scratch.render_args(0, 5), &env);
    assert!(running.wait_for_output("(2): 0 Seconds\n", PATIENCE));
    assert!(running.wait(Duration::from_millis(400)).is_none());
    assert!(!running.output().contains("(3)"));
    assert!(scratch.frame(1).exists() && !scratch.frame(2).exists());
}

/// A slow start delays `Starting composition` and a slow frame reports its whole seconds.
#[test]
fn slow_start_and_slow_frames_are_timed() {
    let scratch = Scratch::new(PROJECT);
    let started = Instant::now();
    let env = [
        ("FAKE_AERENDER_START_DELAY_MS", "300"),
        ("FAKE_AERENDER_SLOW_FRAMES", "1:1050"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 2), &env);
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() >= Duration::from_millis(1350));
    assert!(output.contains("PROGRESS:  0:00:00:01 (2): 1 Seconds\n"), "{output}");
    assert!(output.contains("PROGRESS:  Total Time Elapsed: 1 Seconds\n"));
}

/// A crash leaves the earlier frames valid, a truncated frame file, and dies by SIGABRT.
#[test]
fn crash_leaves_truncated_file_and_dies_by_signal() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "crash"),
        ("FAKE_AERENDER_AT_FRAME", "3"),
        ("FAKE_AERENDER_CRASH_MESSAGE", "aborted"),
    ];
    let (status, output) = run(&scratch, &scratch.render_args(0, 6), &env);
    assert_eq!(status.signal(), Some(6));
    assert!(
        output.ends_with("PROGRESS:  0:00:00:02 (3): 0 Seconds\nINFO: Render aborted.\n"),
        "{output}"
    );
    assert!((0..=2).all(|frame| check_png(&scratch.frame(frame)).is_ok()));
    assert!(scratch.frame(3).exists() && check_png(&scratch.frame(3)).is_err());
    assert!(!scratch.frame(4).exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        scratch.child_pids().iter().all(|pid| !is_alive(*pid)),
        "the child exits when aerender dies"
    );
    let env = [
        ("FAKE_AERENDER_MODE", "crash"),
        ("FAKE_AERENDER_AT_FRAME", "1"),
        ("FAKE_AERENDER_CRASH_EXIT", "-1073741819"),
    ];
    let (status, _) = run(&scratch, &scratch.render_args(0, 2), &env);
    assert_eq!(status.code(), Some(5), "0xC0000005 truncated to 8 bits on Unix");
}

/// `args` with the `-output` value replaced by `output`.
fn with_output(mut args: Vec<String>, output: &str) -> Vec<String> {
    let at = args.iter().position(|arg| arg == "-output").unwrap();
    args[at + 1] = output.to_owned();
    args
}

/// The lines the double prints when writing `path` fails (§3.5 text, AE error form).
fn write_failure_lines(path: &str) -> String {
    format!(
        "aerender Error: After Effects error: Rendering error while writing to file {path}. An output module failed. The file may be damaged or corrupted.\nINFO: Render aborted.\n"
    )
}

/// A frame that cannot be written (its folder is a regular file, which stops root too) is
/// reported as AE reports output write failures, and the run exits 9, not 0.
#[test]
fn unwritable_frame_folder_fails_with_a_write_error() {
    let scratch = Scratch::new(PROJECT);
    std::fs::write(scratch.path("blocker"), b"a file where the output folder should be").unwrap();
    let output = scratch.arg("blocker/frame_[#####].png");
    let (status, printed) = run(&scratch, &with_output(scratch.render_args(0, 3), &output), &[]);
    assert_eq!(status.code(), Some(9), "{printed}");
    let first_frame = scratch.arg("blocker/frame_00000.png");
    assert!(
        printed.ends_with(&format!(
            "PROGRESS:  Post-Render Action: None\nPROGRESS:  \n{}",
            write_failure_lines(&first_frame)
        )),
        "no frame line for the frame that was not written:\n{printed}"
    );
    assert!(!printed.contains("Finished composition"));
}

/// A movie output on a full disk (`/dev/full` answers every write with ENOSPC) fails the same way.
#[cfg(target_os = "linux")]
#[test]
fn movie_on_a_full_disk_fails_with_a_write_error() {
    let scratch = Scratch::new(PROJECT);
    let (status, printed) = run(&scratch, &with_output(scratch.render_args(0, 3), "/dev/full"), &[]);
    assert_eq!(status.code(), Some(9), "{printed}");
    assert!(printed.ends_with(&write_failure_lines("/dev/full")), "{printed}");
}

/// `disk_full` fills the disk at `at_frame`: earlier frames are complete, that one is truncated,
/// later ones are never written, and the run ends with the write error and exit 9.
#[test]
fn disk_full_mode_truncates_the_frame_and_exits_9() {
    let scratch = Scratch::new(PROJECT);
    let env = [("FAKE_AERENDER_MODE", "disk_full"), ("FAKE_AERENDER_AT_FRAME", "2")];
    let (status, printed) = run(&scratch, &scratch.render_args(0, 4), &env);
    assert_eq!(status.code(), Some(9), "{printed}");
    let frame_two = scratch.frame(2).to_string_lossy().into_owned();
    assert!(
        printed.ends_with(&format!(
            "PROGRESS:  0:00:00:01 (2): 0 Seconds\n{}",
            write_failure_lines(&frame_two)
        )),
        "{printed}"
    );
    assert!((0..=1).all(|frame| check_png(&scratch.frame(frame)).is_ok()));
    assert!(scratch.frame(2).exists() && check_png(&scratch.frame(2)).is_err());
    assert!(!scratch.frame(3).exists());
}

/// A crash dialog leaves the truncated file and keeps the whole tree alive and silent.
#[test]
fn crash_dialog_hangs_silently_after_truncated_file() {
    let scratch = Scratch::new(PROJECT);
    let env = [("FAKE_AERENDER_MODE", "crash_dialog"), ("FAKE_AERENDER_AT_FRAME", "1")];
    let mut running = spawn(&scratch, &scratch.render_args(0, 3), &env);
    assert!(running.wait_for_output("(1): 0 Seconds\n", PATIENCE));
    assert!(running.wait(Duration::from_millis(400)).is_none());
    assert!(running.output().ends_with("(1): 0 Seconds\n"));
    assert!(check_png(&scratch.frame(1)).is_err() && scratch.frame(1).exists());
}

/// With `child_survives`, the "aerendercore" child outlives a cleanly exiting aerender.
#[test]
fn surviving_child_outlives_its_parent() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_CHILD_SURVIVES", "true"),
        ("FAKE_AERENDER_CHILD_STDIO", "null"),
    ];
    // Keep the handle: dropping it kills the process group, the child included.
    let mut running = spawn(&scratch, &scratch.render_args(0, 1), &env);
    let status = running.wait(PATIENCE).expect("aerender must exit");
    assert_eq!(status.code(), Some(0));
    let children = scratch.child_pids();
    assert_eq!(children.len(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert!(is_alive(children[0]), "child must survive aerender");
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", children[0])).unwrap();
    assert_eq!(comm.trim(), "aerendercore");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", children[0])).unwrap();
    let parent_pid: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(parent_pid, running.child.id(), "the child was re-parented");
    kill(&children[0].to_string(), "KILL");
}

/// In a normal render, SIGTERM stops aerender promptly and the child follows.
#[test]
fn sigterm_stops_a_normal_render_and_its_child() {
    let scratch = Scratch::new(PROJECT);
    let mut running = spawn(
        &scratch,
        &scratch.render_args(0, 9),
        &[("FAKE_AERENDER_FRAME_MS", "200")],
    );
    assert!(running.wait_for_output("(1): 0 Seconds", PATIENCE));
    kill(&running.child.id().to_string(), "TERM");
    let status = running
        .wait(Duration::from_secs(2))
        .expect("SIGTERM must stop the render");
    assert_eq!(status.signal(), Some(15));
    std::thread::sleep(Duration::from_millis(100));
    assert!(scratch.child_pids().iter().all(|pid| !is_alive(*pid)));
}

/// The macOS piped ordering prints the three banner lines last.
#[test]
fn banner_last_prints_launcher_lines_at_the_end() {
    let scratch = Scratch::new(PROJECT);
    let (status, output) = run(
        &scratch,
        &scratch.render_args(0, 1),
        &[("FAKE_AERENDER_BANNER_LAST", "true")],
    );
    assert_eq!(status.code(), Some(0));
    assert!(output.starts_with("PROGRESS: Adding specified comp to Render Queue\n"));
    assert!(output.ends_with("Total Time Elapsed: 0 Seconds\naerender version 24.2.1x2\nPROGRESS: Launching After Effects...\nPROGRESS: ...After Effects successfully launched\n"));
}

/// With `-mfr ON` and shuffling, frame lines arrive out of order but every frame is written.
#[test]
fn mfr_frames_complete_out_of_order() {
    let scratch = Scratch::new(PROJECT);
    let mut args = scratch.render_args(0, 7);
    args.extend(strings(&["-mfr", "ON", "90"]));
    let (status, output) = run(&scratch, &args, &[("FAKE_AERENDER_MFR_ORDER", "shuffled")]);
    assert_eq!(status.code(), Some(0));
    let indices: Vec<u32> = output
        .lines()
        .filter_map(|line| line.strip_prefix("PROGRESS:  0:00:00:0"))
        .filter_map(|rest| rest.split(['(', ')']).nth(1)?.parse().ok())
        .collect();
    assert_eq!(indices, [4, 3, 2, 1, 8, 7, 6, 5]);
    assert!((0..=7).all(|frame| check_png(&scratch.frame(frame)).is_ok()));
}

/// With the instance lock, a second concurrent aerender gets the busy error.
#[test]
fn concurrent_instance_is_busy_under_lock() {
    let scratch = Scratch::new(PROJECT);
    let env = [("FAKE_AERENDER_LOCK", "true"), ("FAKE_AERENDER_FRAME_MS", "100")];
    let first = spawn(&scratch, &scratch.render_args(0, 9), &env);
    assert!(first.wait_for_output("Starting composition", PATIENCE));
    let (status, output) = run(&scratch, &scratch.render_args(0, 1), &env);
    assert_eq!(status.code(), Some(1));
    assert!(output.contains("aerender ERROR: After Effects can not render for aerender."));
}

/// `runs=1` makes only the first attempt crash; the retry with the same state dir succeeds.
#[test]
fn failure_targets_first_run_only() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_MODE", "crash"),
        ("FAKE_AERENDER_RUNS", "1"),
        ("FAKE_AERENDER_AT_FRAME", "1"),
    ];
    let (status, _) = run(&scratch, &scratch.render_args(0, 2), &env);
    assert_eq!(status.signal(), Some(6));
    let (status, output) = run(&scratch, &scratch.render_args(0, 2), &env);
    assert_eq!(status.code(), Some(0));
    assert!(output.contains("Total Time Elapsed"));
    assert!((0..=2).all(|frame| check_png(&scratch.frame(frame)).is_ok()));
    assert_eq!(std::fs::read_to_string(scratch.path("state/runs")).unwrap().trim(), "2");
}

/// Pre-2022 versions reject `-mfr`; the #699 profile rejects a late `-reuse`.
#[test]
fn version_profiles_reject_flags() {
    let scratch = Scratch::new(PROJECT);
    let mut args = scratch.render_args(0, 1);
    args.extend(strings(&["-mfr", "ON", "90"]));
    let (status, output) = run(&scratch, &args, &[("FAKE_AERENDER_VERSION", "13.5x347")]);
    assert_eq!(status.code(), Some(3));
    assert!(output.starts_with("aerender version 13.5x347\n") && output.ends_with("Illegal argument flag: -mfr\n"));
    let mut args = scratch.render_args(0, 1);
    args.push("-reuse".into());
    let (status, output) = run(&scratch, &args, &[("FAKE_AERENDER_REJECT_LATE_REUSE", "true")]);
    assert_eq!(status.code(), Some(3));
    assert!(output.ends_with("aerender SYNTAX ERROR: Illegal argument flag: -reuse\n"));
    let mut args = vec!["-reuse".to_owned()];
    args.extend(scratch.render_args(0, 1));
    let (status, _) = run(&scratch, &args, &[("FAKE_AERENDER_REJECT_LATE_REUSE", "true")]);
    assert_eq!(status.code(), Some(0));
}

/// The Windows profile uses CRLF and adds console noise, including invalid UTF-8.
#[test]
fn windows_profile_uses_crlf_and_noise() {
    let scratch = Scratch::new(PROJECT);
    let env = [
        ("FAKE_AERENDER_PROFILE", "windows"),
        ("FAKE_AERENDER_NOISE", "true"),
        ("FAKE_AERENDER_INVALID_UTF8", "true"),
    ];
    let mut running = spawn(&scratch, &scratch.render_args(0, 1), &env);
    assert_eq!(running.wait(PATIENCE).and_then(|status| status.code()), Some(0));
    let raw = running.stdout.lock().unwrap().clone();
    assert!(String::from_utf8(raw.clone()).is_err(), "noise carries invalid UTF-8");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("aerender version 24.2.1x2\r\nPROGRESS: Launching After Effects...\r\n"));
    assert!(text.contains("LoadLibrary \"n\" failed!\r\n") && text.contains("Total Time Elapsed: 0 Seconds\r\n"));
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
    let child = scratch.child_pids()[0];
    assert!(!is_alive(child));
}

/// `-v ERRORS` hides AE progress but keeps the script's own lines; files are still written.
#[test]
fn errors_only_verbosity_hides_progress() {
    let scratch = Scratch::new(PROJECT);
    let mut args = scratch.render_args(0, 1);
    args.extend(strings(&["-v", "ERRORS"]));
    let (status, output) = run(&scratch, &args, &[]);
    assert_eq!(status.code(), Some(0));
    assert!(
        output.ends_with("successfully launched\nPROGRESS: Adding specified comp to Render Queue\n"),
        "{output}"
    );
    assert!(scratch.frame(1).exists());
}

/// Without `-comp`, every queued item of a described project renders with its own block.
#[test]
fn whole_queue_renders_each_item() {
    let scratch = Scratch::new("");
    let project = format!(
        "comp \"A\" fps=24 frames=2\ncomp \"B\" fps=30 frames=3\nrq \"A\" output=\"{}\"\nrq \"B\" output=\"{}\"\n",
        scratch.arg("a_[##].png"),
        scratch.arg("b.mov")
    );
    std::fs::write(scratch.path("project.aep"), project).unwrap();
    let args = strings(&["-project", &scratch.arg("project.aep"), "-output", "ignored"]);
    let (status, output) = run(&scratch, &args, &[("FAKE_AERENDER_MOVIE_BYTES", "3000")]);
    assert_eq!(status.code(), Some(0));
    assert!(output.contains("WARNING: -output argument ignored since no -comp  or -rqindex provided.\n"));
    assert_eq!(output.matches("Starting composition").count(), 2);
    assert!(output.contains("Frame Rate: 24.00 (comp)") && output.contains("Frame Rate: 30.00 (comp)"));
    assert!(check_png(&scratch.path("a_01.png")).is_ok());
    assert_eq!(std::fs::metadata(scratch.path("b.mov")).unwrap().len(), 3000);
}
