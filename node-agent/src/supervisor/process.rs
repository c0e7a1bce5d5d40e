//! One supervised process tree: [`spawn`] starts a program in its own process group (Unix) or
//! Job Object (Windows) with the tree's tag in its environment, and [`RunningProcess`] reads its
//! output, reports its exit and kills the whole tree.
//!
//! Output: stdout and stderr are read concurrently by two tasks and split into lines (see
//! `lines`); [`RunningProcess::next_line`] yields them in arrival order. A copy of every byte, both
//! streams interleaved as they arrived, is kept in memory (the first [`RAW_LOG_LIMIT`] bytes) and
//! returned by [`RunningProcess::raw_log`]; the runner writes it into the job folder.
//!
//! A grandchild that survives aerender (After Effects does) inherits the pipes, so end of file may
//! never come: once the main process has exited and no line arrived for the idle grace
//! ([`DEFAULT_IDLE_GRACE`], see [`RunningProcess::set_idle_grace`]), `next_line` stops reading
//! and returns `None`. [`RunningProcess::wait`] never waits for the pipes.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::command::AERENDER_ENV;
use super::lines::LineSplitter;
use super::processes::{KillReport, PROCESS_TAG_ENV, TagMatch, TreeControl, terminate_tree};
#[cfg(unix)]
use super::unix as platform;
#[cfg(windows)]
use super::windows as platform;
use super::{SupervisorError, SupervisorResult};

/// How long `next_line` keeps reading after the main process exited while no line arrives.
pub const DEFAULT_IDLE_GRACE: Duration = Duration::from_secs(1);
/// How many raw output bytes are kept; later bytes are counted but dropped.
pub const RAW_LOG_LIMIT: usize = 32 * 1024 * 1024;
/// How long `kill_tree` waits for the killed main process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output, without its line ending, decoded lossily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// The pipe it came from.
    pub stream: OutputStream,
    /// The text.
    pub text: String,
}

/// How the main process ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code, if it exited normally. On Windows a crash is an NTSTATUS code read as `i32`
    /// (0xC0000005 → -1073741819).
    pub code: Option<i32>,
    /// The signal that ended it (Unix only).
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The raw output copy shared by the two reader tasks. A `std` mutex: appends are short and never
/// held across an `.await`.
#[derive(Debug, Default)]
struct RawLog {
    bytes: Vec<u8>,
    dropped_bytes: u64,
}

impl RawLog {
    fn append(&mut self, chunk: &[u8]) {
        let room = RAW_LOG_LIMIT.saturating_sub(self.bytes.len());
        let kept = chunk.len().min(room);
        self.bytes.extend_from_slice(&chunk[..kept]);
        self.dropped_bytes += (chunk.len() - kept) as u64;
    }
}

/// A running process tree started by [`spawn`].
///
/// Dropping it stops the readers and kills the tree's root, its process group (Unix) or its Job
/// Object (Windows) as a last resort; processes moved out of the group are only found by
/// [`RunningProcess::kill_tree`] (or [`super::sweep_tagged`]), so call that before dropping.
#[derive(Debug)]
pub struct RunningProcess {
    child: Child,
    pid: u32,
    tag: String,
    tree: platform::TreeHandle,
    lines: mpsc::UnboundedReceiver<OutputLine>,
    stop_readers: watch::Sender<bool>,
    readers_stopped: bool,
    raw_log: Arc<Mutex<RawLog>>,
    exit: Option<ExitInfo>,
    exited_at: Option<Instant>,
    last_line_at: Instant,
    idle_grace: Duration,
    tree_verified_gone: bool,
}

/// Starts aerender: [`spawn`] with [`AERENDER_ENV`] added to the environment.
pub fn spawn_aerender<I, S>(program: &Path, args: I, tag: &str) -> SupervisorResult<RunningProcess>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let env: Vec<(String, String)> = AERENDER_ENV
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    spawn(program, args, &env, tag)
}

/// Starts `program` with `args`, the agent's environment plus `env`, and
/// `FLATRENDER_PROCESS_TAG=<tag>` (set last, so `env` cannot override it); stdin is null, stdout
/// and stderr are piped to the line reader. Use a tag unique to this run (e.g.
/// `<node prefix>/<frame job id>/<attempt>`): `kill_tree` kills every process carrying it.
/// Must be called inside a Tokio runtime.
pub fn spawn<I, S>(program: &Path, args: I, env: &[(String, String)], tag: &str) -> SupervisorResult<RunningProcess>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    if tag.is_empty() {
        return Err(SupervisorError::Spawn {
            program: program.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the process tag must not be empty"),
        });
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .env(PROCESS_TAG_ENV, tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    platform::prepare(&mut command);
    let spawn_error = |source| SupervisorError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let pid = child
        .id()
        .ok_or_else(|| spawn_error(std::io::Error::other("the process exited before its pid was read")))?;
    let tree = platform::TreeHandle::attach(&child)?;

    let (lines_sender, lines) = mpsc::unbounded_channel();
    let (stop_readers, stop_receiver) = watch::channel(false);
    let raw_log = Arc::new(Mutex::new(RawLog::default()));
    if let Some(stdout) = child.stdout.take() {
        let reader = read_stream(
            stdout,
            OutputStream::Stdout,
            lines_sender.clone(),
            raw_log.clone(),
            stop_receiver.clone(),
        );
        tokio::spawn(reader);
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_stream(
            stderr,
            OutputStream::Stderr,
            lines_sender,
            raw_log.clone(),
            stop_receiver,
        ));
    }
    tracing::info!(pid, tag, program = %program.display(), "supervised process started");
    Ok(RunningProcess {
        child,
        pid,
        tag: tag.to_owned(),
        tree,
        lines,
        stop_readers,
        readers_stopped: false,
        raw_log,
        exit: None,
        exited_at: None,
        last_line_at: Instant::now(),
        idle_grace: DEFAULT_IDLE_GRACE,
        tree_verified_gone: false,
    })
}

/// Reads one pipe until end of file, an error, or a stop request; sends complete lines and flushes
/// the unterminated rest at the end.
async fn read_stream<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: OutputStream,
    lines_sender: mpsc::UnboundedSender<OutputLine>,
    raw_log: Arc<Mutex<RawLog>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut splitter = LineSplitter::default();
    let mut buffer = vec![0_u8; 16 * 1024];
    let mut lines = Vec::new();
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => break,
            read = reader.read(&mut buffer) => read,
        };
        let num_bytes = match read {
            Ok(0) => break,
            Ok(num_bytes) => num_bytes,
            Err(error) => {
                tracing::warn!(%error, ?stream, "reading render process output failed");
                break;
            }
        };
        let chunk = &buffer[..num_bytes];
        raw_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .append(chunk);
        splitter.push(chunk, &mut lines);
        for text in lines.drain(..) {
            if lines_sender.send(OutputLine { stream, text }).is_err() {
                return;
            }
        }
    }
    if let Some(text) = splitter.finish() {
        let _ = lines_sender.send(OutputLine { stream, text });
    }
}

impl RunningProcess {
    /// The main process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Changes how long `next_line` keeps reading after the main process exited.
    pub fn set_idle_grace(&mut self, idle_grace: Duration) {
        self.idle_grace = idle_grace;
    }

    /// The next output line; `None` once both pipes are closed, or once the main process has
    /// exited and no line arrived for the idle grace, or after [`Self::stop_reading`]. Lines
    /// already read are always returned before `None`. Cancel-safe.
    pub async fn next_line(&mut self) -> Option<OutputLine> {
        loop {
            let idle_deadline = self
                .exited_at
                .filter(|_| !self.readers_stopped)
                .map(|exited_at| exited_at.max(self.last_line_at) + self.idle_grace);
            tokio::select! {
                biased;
                line = self.lines.recv() => {
                    if line.is_some() {
                        self.last_line_at = Instant::now();
                    }
                    return line;
                }
                status = self.child.wait(), if self.exit.is_none() => {
                    self.record_exit(status);
                }
                () = sleep_until_opt(idle_deadline), if idle_deadline.is_some() => {
                    tracing::debug!(pid = self.pid, "main process gone and pipes idle: stop reading");
                    self.stop_reading();
                }
            }
        }
    }

    /// Stops reading: lines already read (and unterminated rests) are still returned by
    /// `next_line`, then it returns `None`.
    pub fn stop_reading(&mut self) {
        self.readers_stopped = true;
        let _ = self.stop_readers.send(true);
    }

    /// Waits for the main process to exit (not for its pipes or descendants).
    pub async fn wait(&mut self) -> ExitInfo {
        if let Some(exit) = self.exit {
            return exit;
        }
        let status = self.child.wait().await;
        self.record_exit(status)
    }

    /// The exit of the main process, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitInfo> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.record_exit(Ok(status));
                }
                Ok(None) => {}
                Err(error) => {
                    self.record_exit(Err(error));
                }
            }
        }
        self.exit
    }

    /// The raw output so far (both streams interleaved in arrival order, first
    /// [`RAW_LOG_LIMIT`] bytes) and the number of bytes dropped beyond the limit.
    pub fn raw_log(&self) -> (Vec<u8>, u64) {
        let raw_log = self.raw_log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (raw_log.bytes.clone(), raw_log.dropped_bytes)
    }

    /// Kills the whole tree: asks the process group / Job Object and every process carrying the
    /// tag to terminate (SIGTERM; on Windows there is no polite request for a windowless console
    /// tree, so the job is terminated at once), waits up to `grace`, kills what is left (SIGKILL),
    /// reaps the main process and scans again until nothing carrying the tag is alive (a few
    /// seconds at most). `survivors` lists what could not be killed.
    pub async fn kill_tree(&mut self, grace: Duration) -> KillReport {
        let tag_match = TagMatch::Exact(self.tag.clone());
        let mut report = terminate_tree(&tag_match, grace, self).await;
        if self.exit.is_none() {
            let _ = self.child.start_kill();
            match tokio::time::timeout(REAP_TIMEOUT, self.child.wait()).await {
                Ok(status) => {
                    self.record_exit(status);
                }
                Err(_) => report.survivors.push(self.pid),
            }
        }
        if !report.signalled.contains(&self.pid) && !report.survivors.contains(&self.pid) {
            // The root ended on the group signal before the first scan saw it.
            report.signalled.push(self.pid);
            report.signalled.sort_unstable();
        }
        self.tree_verified_gone = report.survivors.is_empty();
        tracing::info!(
            pid = self.pid,
            tag = %self.tag,
            num_signalled = report.signalled.len(),
            num_forced = report.forced.len(),
            num_survivors = report.survivors.len(),
            "render process tree killed"
        );
        report
    }

    fn record_exit(&mut self, status: std::io::Result<ExitStatus>) -> ExitInfo {
        let exit = match status {
            Ok(status) => platform::exit_info(status),
            Err(error) => {
                tracing::warn!(pid = self.pid, %error, "could not read the render process exit status");
                ExitInfo::default()
            }
        };
        self.exit = Some(exit);
        self.exited_at = Some(Instant::now());
        tracing::debug!(pid = self.pid, code = ?exit.code, signal = ?exit.signal, "render process exited");
        exit
    }
}

impl TreeControl for RunningProcess {
    fn signal_tree(&mut self, forcibly: bool) {
        self.tree.signal(forcibly);
        if forcibly && self.exit.is_none() {
            let _ = self.child.start_kill();
        }
    }

    fn root_exited(&mut self) -> bool {
        self.try_exit().is_some()
    }
}

impl Drop for RunningProcess {
    fn drop(&mut self) {
        let _ = self.stop_readers.send(true);
        if !self.tree_verified_gone {
            // Last resort; `kill_on_drop` also kills the root. See the type's doc.
            self.tree.signal(true);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
