//! The supervisor against real processes: the `fake-aerender` test double (which the supervisor
//! treats like any aerender) and `/bin/sh`. Every test tags its tree uniquely, checks with its own
//! `/proc` scan that nothing carrying the tag is left, and kills leftovers in a guard on panic.
//!
//! The double is found through `FAKE_AERENDER` if set, else next to this test's `deps/` folder
//! (`<target dir>/<profile>/fake-aerender`); build it first with
//! `cargo build -p flatrender-e2e --bin fake-aerender` into the same target dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flatrender_node_agent::supervisor::{
    ChunkCommand, FramePattern, KillReport, OutputLine, OutputStream, OutputWatcher, RunningProcess,
    count_processes_named, output_pattern, scan_frames, spawn, spawn_aerender, sweep_tagged,
};
use tokio::time::{Instant, timeout};

use crate::live_tagged_pids;

const PROJECT: &str = "comp \"Main\" fps=25 frames=50\n";
/// How long a test waits for output, an exit or a process before calling it lost: generous, so
/// that only a real failure reaches it on a loaded machine.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_millis(300);
const SIGABRT: i32 = 6;
const SIGKILL: i32 = 9;

fn fake_aerender() -> PathBuf {
    if let Some(path) = std::env::var_os("FAKE_AERENDER") {
        return PathBuf::from(path);
    }
    let test_exe = std::env::current_exe().unwrap();
    let profile_dir = test_exe.parent().and_then(Path::parent).unwrap();
    let candidate = profile_dir.join("fake-aerender");
    assert!(
        candidate.is_file(),
        "{} missing: run `cargo build -p flatrender-e2e --bin fake-aerender` with the same target dir, \
         or set FAKE_AERENDER",
        candidate.display()
    );
    candidate
}

fn process_group_of(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.split_whitespace().nth(2)?.parse().ok()
}

/// Kills everything carrying the tag prefix when dropped, so a failed test leaves nothing behind.
struct TreeGuard(String);

impl Drop for TreeGuard {
    fn drop(&mut self) {
        for pid in live_tagged_pids(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A temporary project, state and output folder plus a unique tag for one test.
struct Scratch {
    dir: tempfile::TempDir,
    tag: String,
    _guard: TreeGuard,
}

impl Scratch {
    fn new(test_name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("project.aep"), PROJECT).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let tag = format!("supervisor-test-{}-{test_name}", std::process::id());
        Self {
            dir,
            _guard: TreeGuard(tag.clone()),
            tag,
        }
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn chunk(&self, comp: &str, start_frame: i32, end_frame: i32) -> ChunkCommand {
        ChunkCommand {
            project: self.dir.path().join("project.aep"),
            comp: comp.to_owned(),
            start_frame,
            end_frame,
            output_pattern: output_pattern(&self.out_dir(), "frame_", "png"),
            output_module_template: None,
            render_settings_template: None,
            mem_usage: None,
            mfr: None,
            log_file: None,
            continue_on_missing_footage: false,
            script: None,
        }
    }

    /// Scenario variables for the double, plus its state folder.
    fn env(&self, scenario: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![(
            "FAKE_AERENDER_STATE_DIR".to_owned(),
            self.dir.path().join("state").display().to_string(),
        )];
        for (key, value) in scenario {
            env.push((
                format!("FAKE_AERENDER_{}", key.to_ascii_uppercase()),
                (*value).to_owned(),
            ));
        }
        env
    }

    fn spawn_render(&self, start_frame: i32, end_frame: i32, scenario: &[(&str, &str)]) -> RunningProcess {
        let args = self.chunk("Main", start_frame, end_frame).build_args(Some("24.2.1x2"));
        spawn(&fake_aerender(), args, &self.env(scenario), &self.tag).unwrap()
    }

    fn pattern(&self) -> FramePattern {
        FramePattern::parse("frame_[#####].png").unwrap()
    }
}

/// Reads lines until `next_line` returns `None`, failing the test after [`WAIT_LIMIT`].
async fn read_all_lines(process: &mut RunningProcess) -> Vec<OutputLine> {
    timeout(WAIT_LIMIT, async {
        let mut lines = Vec::new();
        while let Some(line) = process.next_line().await {
            lines.push(line);
        }
        lines
    })
    .await
    .expect("output did not end in time")
}

/// Reads lines until one contains `needle`, failing the test after [`WAIT_LIMIT`].
async fn read_until(process: &mut RunningProcess, needle: &str) {
    timeout(WAIT_LIMIT, async {
        while let Some(line) = process.next_line().await {
            if line.text.contains(needle) {
                return;
            }
        }
        panic!("output ended before {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {needle:?} in time"));
}

/// Polls `/proc` until `count` processes carry the tag (the double and its "After Effects" child).
async fn wait_for_tagged(tag: &str, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let pids = live_tagged_pids(tag);
        if pids.len() >= count {
            return pids;
        }
        assert!(Instant::now() < deadline, "only {pids:?} carry the tag {tag}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the tree and checks that the report and `/proc` agree nothing of it is left; for a
/// stuck tree (nothing exits by itself) also that every process alive before was signalled.
async fn kill_and_verify(process: &mut RunningProcess, tag: &str, stuck: bool) -> KillReport {
    let before = live_tagged_pids(tag);
    let report = process.kill_tree(GRACE).await;
    assert!(report.survivors.is_empty(), "{report:?}");
    assert!(live_tagged_pids(tag).is_empty(), "left: {:?}", live_tagged_pids(tag));
    if stuck {
        for pid in before {
            assert!(report.signalled.contains(&pid), "{pid} not in {report:?}");
        }
    }
    report
}

/// A clean chunk streams aerender's lines, exits 0, writes every frame and leaves no process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_chunk_streams_lines_and_writes_expected_frames() {
    let scratch = Scratch::new("success");
    let mut process = scratch.spawn_render(10, 19, &[("frame_ms", "5")]);
    let lines = read_all_lines(&mut process).await;
    let exit = process.wait().await;
    assert!(exit.success(), "{exit:?}");
    assert!(lines.iter().any(|line| line.text.contains("Finished composition")));
    assert!(
        lines
            .iter()
            .any(|line| line.text.starts_with("PROGRESS:  0:00:00:19 ("))
    );
    assert!(lines.iter().all(|line| !line.text.contains(['\r', '\n'])));
    let found = scan_frames(&scratch.out_dir(), &scratch.pattern(), 10..=19);
    assert_eq!(found.keys().copied().collect::<Vec<_>>(), (10..=19).collect::<Vec<_>>());
    let (raw_log, dropped_bytes) = process.raw_log();
    assert!(String::from_utf8_lossy(&raw_log).contains("Total Time Elapsed"));
    assert_eq!(dropped_bytes, 0);
    kill_and_verify(&mut process, &scratch.tag, false).await;
}

/// Lone CR, CRLF and LF all end lines, on stdout and stderr alike; an unterminated tail is kept.
#[tokio::test]
async fn lone_carriage_returns_split_into_lines() {
    let scratch = Scratch::new("carriage-return");
    let script = r#"printf 'one\rtwo\r\nthree\nfour'; printf 'err1\rerr2' >&2"#;
    let mut process = spawn(Path::new("/bin/sh"), ["-c", script], &[], &scratch.tag).unwrap();
    let lines = read_all_lines(&mut process).await;
    let texts = |stream| {
        lines
            .iter()
            .filter(|line| line.stream == stream)
            .map(|line| line.text.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(OutputStream::Stdout), ["one", "two", "three", "four"]);
    assert_eq!(texts(OutputStream::Stderr), ["err1", "err2"]);
    assert!(process.wait().await.success());
}

/// Every aerender gets the OpenMP duplicate-runtime workaround (`KMP_DUPLICATE_LIB_OK=TRUE`, as
/// Deadline and AWS Deadline Cloud set it; docs/aerender.md); other programs (ffmpeg) do not, and a
/// caller's `env` is passed as given.
#[tokio::test]
async fn aerender_environment_is_given_to_aerender_only() {
    let scratch = Scratch::new("aerender-env");
    let script = r#"printf '%s|%s\n' "${KMP_DUPLICATE_LIB_OK:-unset}" "${EXTRA:-unset}""#;
    let mut render = spawn_aerender(Path::new("/bin/sh"), ["-c", script], &scratch.tag).unwrap();
    let lines = read_all_lines(&mut render).await;
    assert!(render.wait().await.success());
    let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
    assert_eq!(texts, ["TRUE|unset"]);

    let extra = [("EXTRA".to_owned(), "yes".to_owned())];
    let mut other = spawn(Path::new("/bin/sh"), ["-c", script], &extra, &scratch.tag).unwrap();
    let lines = read_all_lines(&mut other).await;
    assert!(other.wait().await.success());
    let texts: Vec<&str> = lines.iter().map(|line| line.text.as_str()).collect();
    assert_eq!(texts, ["unset|yes"]);
}

/// Invalid UTF-8 (the double's OEM-code-page noise line) arrives as U+FFFD, raw bytes are kept.
#[tokio::test]
async fn invalid_utf8_is_decoded_lossily() {
    let scratch = Scratch::new("invalid-utf8");
    let mut process = scratch.spawn_render(0, 2, &[("frame_ms", "5"), ("invalid_utf8", "true")]);
    let lines = read_all_lines(&mut process).await;
    assert!(process.wait().await.success());
    let noise = lines.iter().find(|line| line.text.starts_with("Using DXGI")).unwrap();
    assert!(noise.text.contains('\u{fffd}'), "{noise:?}");
    let (raw_log, _) = process.raw_log();
    assert!(raw_log.windows(2).any(|pair| pair == b"\x81\xff"));
}

/// A render hung after "Finished composition" (signals ignored, AE child alive) is killed whole.
#[tokio::test]
async fn kill_tree_ends_render_hung_after_finish() {
    let scratch = Scratch::new("hang-after-finish");
    let mut process = scratch.spawn_render(0, 4, &[("frame_ms", "5"), ("mode", "hang_after_finish")]);
    read_until(&mut process, "Finished composition").await;
    let pids = wait_for_tagged(&scratch.tag, 2).await;
    let report = process.kill_tree(GRACE).await;
    assert!(report.survivors.is_empty() && report.forced == pids, "{report:?}");
    assert!(live_tagged_pids(&scratch.tag).is_empty());
    assert_eq!(process.wait().await.signal, Some(SIGKILL));
}

/// A render stalled mid-way is killed whole, and its output ends afterwards.
#[tokio::test]
async fn kill_tree_ends_stalled_render() {
    let scratch = Scratch::new("stall");
    let mut process = scratch.spawn_render(0, 19, &[("frame_ms", "5"), ("mode", "stall"), ("at_frame", "5")]);
    read_until(&mut process, "(5): ").await;
    wait_for_tagged(&scratch.tag, 2).await;
    kill_and_verify(&mut process, &scratch.tag, true).await;
    read_all_lines(&mut process).await;
}

/// A crash-dialog tree (parent and AE child alive, silent) is killed whole.
#[tokio::test]
async fn kill_tree_ends_crash_dialog_tree() {
    let scratch = Scratch::new("crash-dialog");
    let mut process = scratch.spawn_render(0, 9, &[("frame_ms", "5"), ("mode", "crash_dialog"), ("at_frame", "3")]);
    read_until(&mut process, "(3): ").await;
    wait_for_tagged(&scratch.tag, 2).await;
    kill_and_verify(&mut process, &scratch.tag, true).await;
}

/// An AE child that survives in its own process group holding the pipes neither blocks `wait`
/// nor makes `next_line` hang, and `kill_tree` finds it by its tag.
#[tokio::test]
async fn surviving_detached_child_is_found_by_tag_and_killed() {
    let scratch = Scratch::new("detached-child");
    let scenario = [("frame_ms", "5"), ("child_survives", "true"), ("child_detach", "true")];
    let mut process = scratch.spawn_render(0, 4, &scenario);
    process.set_idle_grace(Duration::from_millis(200));
    let exit = timeout(WAIT_LIMIT, process.wait()).await.expect("wait hung");
    assert!(exit.success(), "{exit:?}");
    let lines = read_all_lines(&mut process).await;
    assert!(lines.iter().any(|line| line.text.contains("Total Time Elapsed")));
    let survivors = live_tagged_pids(&scratch.tag);
    assert_eq!(survivors.len(), 1, "{survivors:?}");
    let child_group = process_group_of(survivors[0]).unwrap();
    assert_ne!(child_group, i32::try_from(process.pid()).unwrap());
    let report = kill_and_verify(&mut process, &scratch.tag, false).await;
    assert!(report.signalled.contains(&survivors[0]), "{report:?}");
}

/// A crash is reported as the signal that ended aerender, a clean error as its exit code.
#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    let scratch = Scratch::new("crash");
    let mut crashed = scratch.spawn_render(0, 9, &[("frame_ms", "5"), ("mode", "crash"), ("at_frame", "4")]);
    let crash_exit = timeout(WAIT_LIMIT, crashed.wait()).await.unwrap();
    assert_eq!((crash_exit.code, crash_exit.signal), (None, Some(SIGABRT)));
    assert!(scan_frames(&scratch.out_dir(), &scratch.pattern(), 4..=4).is_empty());
    kill_and_verify(&mut crashed, &scratch.tag, false).await;

    let args = scratch.chunk("No Such Comp", 0, 9).build_args(Some("24.2.1x2"));
    let mut failed = spawn(&fake_aerender(), args, &scratch.env(&[]), &scratch.tag).unwrap();
    let lines = read_all_lines(&mut failed).await;
    let error_exit = failed.wait().await;
    assert_eq!((error_exit.code, error_exit.signal), (Some(7), None));
    assert!(
        lines
            .iter()
            .any(|line| line.text == "aerender ERROR: No comp was found with the given name.")
    );
    kill_and_verify(&mut failed, &scratch.tag, false).await;
}

/// The output watcher reports complete frames while aerender is still rendering.
#[tokio::test]
async fn output_watcher_sees_frames_as_they_appear() {
    let scratch = Scratch::new("watcher");
    let mut watcher = OutputWatcher::start(&scratch.out_dir(), &scratch.pattern())
        .await
        .unwrap();
    let mut process = scratch.spawn_render(0, 9, &[("frame_ms", "60")]);
    let mut complete_frames = Vec::new();
    let mut running_when_first_seen = None;
    timeout(WAIT_LIMIT, async {
        while complete_frames.len() < 10 {
            let frame_file = watcher.next_frame().await.unwrap();
            if frame_file.complete && !complete_frames.contains(&frame_file.frame) {
                running_when_first_seen.get_or_insert(process.try_exit().is_none());
                complete_frames.push(frame_file.frame);
            }
        }
    })
    .await
    .expect("not all frames were seen");
    complete_frames.sort_unstable();
    assert_eq!(complete_frames, (0..=9).collect::<Vec<_>>());
    assert_eq!(running_when_first_seen, Some(true));
    assert!(process.wait().await.success());
    kill_and_verify(&mut process, &scratch.tag, false).await;
}

/// `sweep_tagged` kills a whole tree left by an earlier agent run, found by tag prefix only.
#[tokio::test]
async fn sweep_kills_leftovers_of_an_earlier_run() {
    let scratch = Scratch::new("sweep");
    let prefix = format!("{}/", scratch.tag);
    let args: Vec<OsString> = scratch.chunk("Main", 0, 19).build_args(None);
    let mut orphan = std::process::Command::new(fake_aerender());
    orphan
        .args(args)
        .envs(scratch.env(&[("frame_ms", "5"), ("mode", "stall"), ("at_frame", "2")]))
        .env("FLATRENDER_PROCESS_TAG", format!("{prefix}job-1"))
        .stdout(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut orphan, 0);
    let mut orphan = orphan.spawn().unwrap();
    let before = wait_for_tagged(&prefix, 2).await;
    let report = sweep_tagged(&prefix, GRACE).await;
    assert!(report.survivors.is_empty(), "{report:?}");
    assert_eq!(report.signalled, before);
    assert!(live_tagged_pids(&prefix).is_empty());
    let orphan_exit = timeout(WAIT_LIMIT, tokio::task::spawn_blocking(move || orphan.wait()))
        .await
        .expect("the swept orphan exits")
        .unwrap()
        .unwrap();
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&orphan_exit).is_some(),
        "the orphan was ended by the sweep's signal: {orphan_exit:?}"
    );
    assert!(sweep_tagged("", GRACE).await.signalled.is_empty());
}

/// Health counting finds the AE child by name and reports its memory.
#[tokio::test]
async fn counts_after_effects_processes_by_name() {
    let scratch = Scratch::new("count");
    let mut process = scratch.spawn_render(0, 19, &[("frame_ms", "5"), ("mode", "stall"), ("at_frame", "2")]);
    let pids = wait_for_tagged(&scratch.tag, 2).await;
    let child_pid = pids.into_iter().find(|pid| *pid != process.pid()).unwrap();
    let count = tokio::task::spawn_blocking(|| count_processes_named(&["aerendercore", "AfterFX.com"]))
        .await
        .unwrap();
    assert!(count.pids.contains(&child_pid), "{count:?}");
    assert!(count.memory_bytes > 0);
    kill_and_verify(&mut process, &scratch.tag, true).await;
}
