//! The process side of the double: the run counter, the instance lock, ignoring termination
//! signals in stuck modes, and the "After Effects" child process that aerender launches (§1.1).
//!
//! The child is this same executable started with `FAKE_AERENDER_INTERNAL_ROLE=child`, under the
//! real child's name (`aerendercore` for the macOS profile, `AfterFX.com` for Windows) through a
//! symlink on Unix. It holds the project and output files open and reads its stdin, a pipe whose
//! other end is the parent: end of file means aerender died (the script's `checkParentDied`).
//! It then exits, or with `child_survives` keeps running (for `child_linger_ms`, else forever).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::clock;
use super::scenario::{ENV_STATE_DIR, Scenario};

pub const ENV_ROLE: &str = "FAKE_AERENDER_INTERNAL_ROLE";
pub const ENV_RUN: &str = "FAKE_AERENDER_INTERNAL_RUN";
const ENV_SIGNALS_IGNORED: &str = "FAKE_AERENDER_INTERNAL_SIGNALS_IGNORED";
const ENV_CHILD_SURVIVES: &str = "FAKE_AERENDER_INTERNAL_CHILD_SURVIVES";
const ENV_CHILD_LINGER_MS: &str = "FAKE_AERENDER_INTERNAL_CHILD_LINGER_MS";
const ENV_CHILD_HOLD: &str = "FAKE_AERENDER_INTERNAL_CHILD_HOLD";

pub fn state_dir() -> Option<PathBuf> {
    std::env::var_os(ENV_STATE_DIR).map(PathBuf::from)
}

/// Takes a small exclusive lock file, waiting up to ~2 s, then steals it (a crashed holder).
fn with_file_lock<T>(lock_path: &Path, action: impl FnOnce() -> T) -> T {
    for _ in 0..2000 {
        if OpenOptions::new().write(true).create_new(true).open(lock_path).is_ok() {
            break;
        }
        clock::sleep_ms(1);
    }
    let result = action();
    let _ = std::fs::remove_file(lock_path);
    result
}

/// This invocation's 1-based run number: counted in `<state dir>/runs`, 1 without a state dir.
pub fn run_number() -> u64 {
    if let Some(run) = std::env::var(ENV_RUN).ok().and_then(|run| run.parse().ok()) {
        return run;
    }
    let Some(dir) = state_dir() else { return 1 };
    let _ = std::fs::create_dir_all(&dir);
    let counter_path = dir.join("runs");
    with_file_lock(&dir.join("runs.lock"), || {
        let previous: u64 = std::fs::read_to_string(&counter_path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        let _ = std::fs::write(&counter_path, format!("{}\n", previous + 1));
        previous + 1
    })
}

/// In stuck modes, re-executes this process through `/bin/sh` with SIGINT/SIGTERM/SIGHUP set to
/// ignored (ignored dispositions survive `exec` and are inherited by the child), same pid.
#[cfg(unix)]
pub fn reexec_ignoring_signals(run: u64) {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(ENV_SIGNALS_IGNORED).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error = Command::new("/bin/sh")
        .arg("-c")
        .arg("trap '' INT TERM HUP; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV_SIGNALS_IGNORED, "1")
        .env(ENV_RUN, run.to_string())
        .exec();
    eprintln!("fake-aerender: could not re-exec to ignore signals: {error}");
}

#[cfg(not(unix))]
pub fn reexec_ignoring_signals(_run: u64) {}

/// The global "one After Effects at a time" guard (scenario `lock=true`).
pub struct InstanceLock(PathBuf);

impl InstanceLock {
    /// `None` when another live instance holds the lock.
    pub fn acquire() -> Option<Self> {
        let dir = state_dir().unwrap_or_else(std::env::temp_dir);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("aerender-instance.lock");
        for _ in 0..2 {
            if let Ok(mut file) = OpenOptions::new().write(true).create_new(true).open(&path) {
                let _ = write!(file, "{}", std::process::id());
                return Some(Self(path));
            }
            let holder: Option<u32> = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            if holder.is_some_and(process_is_alive) {
                return None;
            }
            let _ = std::fs::remove_file(&path);
        }
        None
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn process_is_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // A zombie (state Z) is not a holder any more.
        !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')
    } else {
        true
    }
}

/// Path of the executable to start as the child: a symlink carrying the real child's name.
fn child_executable(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    #[cfg(unix)]
    {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        exe.hash(&mut hasher);
        let dir = std::env::temp_dir().join(format!("fake-aerender-{:016x}", hasher.finish()));
        let link = dir.join(name);
        if std::fs::read_link(&link).ok().as_deref() == Some(exe.as_path()) {
            return Some(link);
        }
        let _ = std::fs::create_dir_all(&dir);
        let temporary = dir.join(format!(".{name}.{}", std::process::id()));
        if std::os::unix::fs::symlink(&exe, &temporary).is_ok() && std::fs::rename(&temporary, &link).is_ok() {
            return Some(link);
        }
        let _ = std::fs::remove_file(&temporary);
    }
    let _ = name;
    Some(exe)
}

/// The running "After Effects" child; dropping the handle does not kill it.
pub struct AeChild {
    child: Child,
    survives: bool,
}

impl AeChild {
    /// aerender's normal exit: tell AE to quit (close its pipe) and wait for it, unless this AE
    /// is the kind that outlives its parent.
    pub fn quit(mut self) {
        drop(self.child.stdin.take());
        if !self.survives {
            let _ = self.child.wait();
        }
    }
}

/// Starts the "After Effects" child, which holds `hold_paths` open while it lives.
pub fn spawn_child(scenario: &Scenario, hold_paths: &[PathBuf]) -> Option<AeChild> {
    let default_name = if scenario.windows_profile {
        "AfterFX.com"
    } else {
        "aerendercore"
    };
    let name = scenario.child_name.as_deref().unwrap_or(default_name);
    let exe = child_executable(name)?;
    let mut command = Command::new(exe);
    let hold = std::env::join_paths(hold_paths).unwrap_or_default();
    command
        .env(ENV_ROLE, "child")
        .env(ENV_CHILD_SURVIVES, if scenario.child_survives { "1" } else { "0" })
        .env(ENV_CHILD_HOLD, hold)
        .stdin(Stdio::piped());
    if let Some(linger) = scenario.child_linger_ms {
        command.env(ENV_CHILD_LINGER_MS, linger.to_string());
    }
    if !scenario.child_inherits_stdio {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    #[cfg(unix)]
    if scenario.child_detach {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command.spawn().ok()?;
    if let Some(dir) = state_dir() {
        if let Ok(mut pids) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("child.pids"))
        {
            let _ = writeln!(pids, "{}", child.id());
        }
    }
    Some(AeChild {
        child,
        survives: scenario.child_survives,
    })
}

/// Main of the child process. Never returns.
pub fn child_main() -> ! {
    let held_files: Vec<File> = std::env::var_os(ENV_CHILD_HOLD)
        .map(|paths| {
            std::env::split_paths(&paths)
                .filter_map(|path| File::open(path).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut parent_pipe = std::io::stdin();
    let mut buffer = [0_u8; 64];
    while matches!(parent_pipe.read(&mut buffer), Ok(count) if count > 0) {}
    // aerender is gone: stop "rendering"; exit unless this AE outlives its parent.
    let survives = std::env::var(ENV_CHILD_SURVIVES).is_ok_and(|value| value == "1");
    if !survives {
        std::process::exit(0);
    }
    match std::env::var(ENV_CHILD_LINGER_MS)
        .ok()
        .and_then(|millis| millis.parse::<u64>().ok())
    {
        Some(linger_ms) => {
            clock::sleep_ms(linger_ms);
            drop(held_files);
            std::process::exit(0);
        }
        None => clock::sleep_forever(),
    }
}
