//! Running ffmpeg or ffprobe as a supervised process tree, exactly as aerender runs
//! (`supervisor::spawn`: own process group or Job Object, tagged environment, line reader): its
//! lines go to a callback as they arrive, the last stderr lines are kept for the error message,
//! and whatever happens (exit, cancellation, deadline) the whole tree is killed before returning.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::error::{EncodeError, EncodeResult};
use crate::supervisor::{self, ExitInfo, OutputLine, OutputStream, RunningProcess, SupervisorError};

/// How long a tool gets to stop on a polite request before it is killed. Short: whatever a
/// stopped run was writing is thrown away, and ffmpeg asked to stop flushes its encoders first
/// (seconds for a VP9 encoder's look-ahead at 4K).
const KILL_GRACE: Duration = Duration::from_millis(500);
/// How many stderr lines an error quotes.
const TAIL_LINES: usize = 20;

/// Where the FFmpeg programs are: by default `ffmpeg` and `ffprobe` found on `PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegTools {
    /// The `ffmpeg` program.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
}

impl Default for FfmpegTools {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
        }
    }
}

/// One run of a tool.
pub(crate) struct Invocation<'a> {
    /// `ffmpeg` or `ffprobe`, for messages.
    pub tool: &'static str,
    /// The program.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// The process tag: unique to this run.
    pub tag: &'a str,
    /// Stops the run (the tree is killed, the result is [`EncodeError::Cancelled`]).
    pub cancel: &'a CancellationToken,
    /// Kills the run after this long ([`EncodeError::ToolTimedOut`]).
    pub deadline: Option<Duration>,
}

/// How a run that was not stopped ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The main process's exit.
    pub exit: ExitInfo,
    /// Its last stderr lines.
    pub stderr_tail: Vec<String>,
}

impl Finished {
    /// A [`EncodeError::ToolFailed`] quoting the stderr tail.
    pub fn failure(&self, tool: &'static str) -> EncodeError {
        let exit = match (self.exit.code, self.exit.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "no exit status".to_owned(),
        };
        EncodeError::ToolFailed {
            tool,
            exit,
            stderr_tail: self.stderr_tail.join("\n"),
        }
    }
}

enum Outcome {
    Exited(ExitInfo),
    Cancelled,
    TimedOut,
}

/// Runs the tool to its end, handing every output line to `on_line`.
pub(crate) async fn run(
    invocation: Invocation<'_>,
    on_line: &mut (dyn FnMut(&OutputLine) + Send),
) -> EncodeResult<Finished> {
    let Invocation {
        tool,
        program,
        args,
        tag,
        cancel,
        deadline,
    } = invocation;
    let mut process = supervisor::spawn(program, args, &[], tag).map_err(|error| match error {
        SupervisorError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            EncodeError::ToolMissing {
                tool,
                program: program.to_path_buf(),
            }
        }
        source => EncodeError::Spawn { tool, source },
    })?;
    let deadline_at = deadline.map(|deadline| Instant::now() + deadline);
    let mut stderr_tail = VecDeque::with_capacity(TAIL_LINES);
    let mut streams_open = true;
    let outcome = loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Outcome::Cancelled,
            () = sleep_until_opt(deadline_at) => break Outcome::TimedOut,
            event = next_event(&mut process, streams_open) => match event {
                Event::Line(line) => {
                    if line.stream == OutputStream::Stderr {
                        if stderr_tail.len() == TAIL_LINES {
                            stderr_tail.pop_front();
                        }
                        stderr_tail.push_back(line.text.clone());
                    }
                    on_line(&line);
                }
                Event::StreamsClosed => streams_open = false,
                Event::Exited(exit) => break Outcome::Exited(exit),
            },
        }
    };
    // Always: a tool's children (none expected) must not outlive it, and a stopped run must end.
    let report = process.kill_tree(KILL_GRACE).await;
    if !report.survivors.is_empty() {
        warn!(tool, tag, survivors = ?report.survivors, "processes survived the kill");
    }
    match outcome {
        Outcome::Exited(exit) => Ok(Finished {
            exit,
            stderr_tail: stderr_tail.into(),
        }),
        Outcome::Cancelled => Err(EncodeError::Cancelled),
        Outcome::TimedOut => Err(EncodeError::ToolTimedOut {
            tool,
            seconds: deadline.map_or(0, |deadline| deadline.as_secs()),
        }),
    }
}

enum Event {
    Line(OutputLine),
    StreamsClosed,
    Exited(ExitInfo),
}

/// The next thing the process does: a line while its streams are open, then its exit.
async fn next_event(process: &mut RunningProcess, streams_open: bool) -> Event {
    if streams_open {
        match process.next_line().await {
            Some(line) => Event::Line(line),
            None => Event::StreamsClosed,
        }
    } else {
        Event::Exited(process.wait().await)
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
