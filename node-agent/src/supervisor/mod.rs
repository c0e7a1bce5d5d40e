//! aerender supervision: find aerender, build its command line for a chunk, run it as a whole
//! process tree, read its output, watch the frames it writes, and kill the tree so that nothing of
//! it is left (docs/aerender.md §1.1, §2, §5, §8).
//!
//! # Layout
//! * `discover` — where aerender is installed (configured path, or the newest
//!   `Adobe After Effects <ver>` folder on Windows/macOS).
//! * `command` — [`ChunkCommand`] → aerender's exact flags; `[#####]` output patterns
//!   ([`FramePattern`]); AE version parsing and the `-mfr` gate.
//! * `process` — [`spawn`] and [`RunningProcess`]: line reader over stdout + stderr, raw log,
//!   exit status, [`RunningProcess::kill_tree`].
//! * `lines` — the byte-stream → line splitter (`\n`, `\r\n`, lone `\r`, lossy UTF-8).
//! * `processes` — process-table scans: the process tag, [`sweep_tagged`],
//!   [`count_processes_named`].
//! * `output_watch` — [`OutputWatcher`] (frames as they appear, via `notify`) and
//!   [`scan_frames`] (which expected frames exist with a plausible size).
//! * `unix` / `windows` — the per-OS tree handle: a process group, or a Job Object.
//!
//! # How a tree is found again
//! Every process started by [`spawn`] gets `FLATRENDER_PROCESS_TAG=<tag>` in its environment,
//! which all its descendants inherit (After Effects passes its environment on), so AE processes
//! that outlive aerender, are reparented to init or moved to another process group are still
//! found by scanning the process table for the tag. The tree handle (process group / Job Object)
//! is the fast path; the tag scan is the safety net and the verification after a kill.

mod command;
mod discover;
mod lines;
mod output_watch;
mod process;
mod processes;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

use std::path::PathBuf;

pub use command::{ChunkCommand, FramePattern, MfrSetting, output_pattern};
pub use discover::{AerenderInstall, InstallLayout, find_aerender};
pub use output_watch::{FrameFile, OutputWatcher, scan_frames};
pub use process::{ExitInfo, OutputLine, OutputStream, RunningProcess, spawn, spawn_aerender};
pub use processes::{KillReport, ProcessCount, count_processes_named, sweep_tagged};

/// Errors of the supervisor; messages say what was attempted and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No aerender found in the default install locations.
    #[error(
        "aerender not found: searched {} for `Adobe After Effects <version>` folders containing `{binary}`; \
         install After Effects or set `aerender_path` in the agent configuration",
        display_paths(searched)
    )]
    AerenderNotFound {
        /// The folders that were searched.
        searched: Vec<PathBuf>,
        /// The binary's path inside an install folder.
        binary: String,
    },
    /// The configured aerender path is unusable.
    #[error("configured aerender path {path:?} {reason}; fix `aerender_path` in the agent configuration")]
    ConfiguredAerenderInvalid {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The program could not be started.
    #[error("could not start {program:?}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process could not be put into its own Job Object (Windows).
    #[error("could not set up the job object for the render process: {0}")]
    JobObject(std::io::Error),
    /// An output pattern without `[#…#]` or with several of them.
    #[error("invalid output pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The output folder could not be watched.
    #[error("could not watch output folder {dir:?}: {source}")]
    Watch {
        /// The folder.
        dir: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
    /// Any other I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Result of supervisor operations.
pub type SupervisorResult<T> = Result<T, SupervisorError>;

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no default location on this OS".to_owned();
    }
    paths
        .iter()
        .map(|path| format!("{}", path.display()))
        .collect::<Vec<_>>()
        .join(", ")
}
