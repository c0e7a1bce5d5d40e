//! One aerender run under watchdogs: stream its lines into the log parser, watch frames appear
//! in the output folder, and stop it (killing the whole tree) when it hangs at start-up, stalls
//! mid-render, hangs after its finish line, passes the absolute cap, or is cancelled.

use std::{collections::BTreeSet, path::Path, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{
    aerender_log::{LogEvent, LogParser, LogSummary},
    config::WatchdogConfig,
    metrics::AgentMetrics,
    recovery::Watchdog,
    supervisor::{self, FramePattern, OutputWatcher, RunningProcess},
};

/// What a run left behind.
#[derive(Debug)]
pub struct RunRecord {
    /// The parsed log.
    pub log: LogSummary,
    /// Exit code, when it exited with one.
    pub exit_code: Option<i32>,
    /// Signal, when one ended it.
    pub signal: Option<i32>,
    /// How waiting ended.
    pub watchdog: Watchdog,
    /// The last lines of output (for crash reports).
    pub log_tail: String,
    /// When the first frame was confirmed, measured from launch.
    pub time_to_first_frame: Option<Duration>,
    /// Everything aerender printed, as bytes (stdout and stderr interleaved).
    pub raw_log: Vec<u8>,
}

/// Callback for progress: the frames (comp numbers) known written so far.
pub type ProgressFn<'a> = &'a mut (dyn FnMut(&BTreeSet<i32>) + Send);

const TAIL_LINES: usize = 60;

/// Supervises `process` until it exits or a watchdog fires; always leaves no process behind.
/// With `metrics`, each frame's render time from its progress line goes to the frame histogram
/// as the line arrives.
pub async fn supervise(
    mut process: RunningProcess,
    output_dir: &Path,
    pattern: &FramePattern,
    budgets: &WatchdogConfig,
    cancel: &CancellationToken,
    on_progress: ProgressFn<'_>,
    metrics: Option<&AgentMetrics>,
) -> RunRecord {
    let started = Instant::now();
    let mut parser = LogParser::new();
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let mut last_activity = started;
    let mut first_frame: Option<Instant> = None;
    let mut finished_at: Option<Instant> = None;
    let mut last_frame_at = started;
    let mut slowest_frame = Duration::ZERO;
    let mut written: BTreeSet<i32> = BTreeSet::new();
    let mut watcher = match OutputWatcher::start(output_dir, pattern).await {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!(%error, "cannot watch the output folder; relying on aerender's output");
            None
        }
    };
    let mut streams_open = true;
    let watchdog = loop {
        let now = Instant::now();
        let deadline = next_deadline(
            budgets,
            started,
            last_activity,
            first_frame.is_some(),
            finished_at,
            slowest_frame,
        );
        if now >= deadline.0 {
            break deadline.1;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break Watchdog::Cancelled,
            event = next_event(&mut process, streams_open) => match event {
                ProcessEvent::Line(line) => {
                    last_activity = Instant::now();
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.text.clone());
                    for event in parser.feed_line(&line.text) {
                        match event {
                            LogEvent::FrameDone(frame) => {
                                // The parser reports each frame once, however often the log repeats it.
                                if let (Some(metrics), Some(seconds)) = (metrics, frame.seconds) {
                                    metrics.observe_frame_seconds(seconds as f64);
                                }
                                let at = Instant::now();
                                slowest_frame = slowest_frame.max(at.duration_since(last_frame_at));
                                last_frame_at = at;
                                first_frame.get_or_insert(at);
                                if let Some(comp_frame) = frame.comp_frame.and_then(|f| i32::try_from(f).ok()) {
                                    written.insert(comp_frame);
                                    on_progress(&written);
                                }
                            }
                            LogEvent::Finished { .. } => {
                                finished_at.get_or_insert_with(Instant::now);
                            }
                            _ => {}
                        }
                    }
                }
                ProcessEvent::StreamsClosed => streams_open = false,
                ProcessEvent::Exited => {
                    debug!("aerender exited");
                    break Watchdog::Exited;
                }
            },
            frame = async { match watcher.as_mut() { Some(watcher) => watcher.next_frame().await, None => std::future::pending().await } } => {
                match frame {
                    Some(file) => {
                        last_activity = Instant::now();
                        first_frame.get_or_insert(last_activity);
                        if written.insert(file.frame) {
                            on_progress(&written);
                        }
                    }
                    None => watcher = None,
                }
            },
            () = tokio::time::sleep_until(deadline.0) => {}
        }
    };
    let (exit_code, signal) = if watchdog == Watchdog::Exited {
        let exit = process.wait().await;
        (exit.code, exit.signal)
    } else {
        (None, None)
    };
    // Kill the tree in every case: AE children may outlive a clean aerender exit.
    let report = process.kill_tree(Duration::from_secs(budgets.kill_grace_seconds)).await;
    let (raw_log, _) = process.raw_log();
    if !report.survivors.is_empty() {
        warn!(survivors = ?report.survivors, "processes survived the kill");
    }
    RunRecord {
        log: parser.summary(),
        exit_code,
        signal,
        watchdog,
        log_tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
        time_to_first_frame: first_frame.map(|at| at.duration_since(started)),
        raw_log,
    }
}

enum ProcessEvent {
    Line(supervisor::OutputLine),
    StreamsClosed,
    Exited,
}

/// The next thing the process does: a line while its streams are open, then its exit.
async fn next_event(process: &mut RunningProcess, streams_open: bool) -> ProcessEvent {
    if streams_open {
        match process.next_line().await {
            Some(line) => ProcessEvent::Line(line),
            None => ProcessEvent::StreamsClosed,
        }
    } else {
        process.wait().await;
        ProcessEvent::Exited
    }
}

/// The earliest watchdog deadline and what firing it means.
fn next_deadline(
    budgets: &WatchdogConfig,
    started: Instant,
    last_activity: Instant,
    any_frame: bool,
    finished_at: Option<Instant>,
    slowest_frame: Duration,
) -> (Instant, Watchdog) {
    let cap = (
        started + Duration::from_secs(budgets.absolute_cap_seconds),
        Watchdog::AbsoluteCap,
    );
    let phase = if let Some(finished) = finished_at {
        (
            finished + Duration::from_secs(budgets.tail_seconds),
            Watchdog::HungAfterFinish,
        )
    } else if !any_frame {
        (
            started + Duration::from_secs(budgets.startup_seconds),
            Watchdog::StartupTimeout,
        )
    } else {
        let scaled = slowest_frame.saturating_mul(budgets.no_output_frame_multiplier);
        let budget = scaled.max(Duration::from_secs(budgets.no_output_min_seconds));
        (last_activity + budget, Watchdog::Stalled)
    };
    if cap.0 < phase.0 { cap } else { phase }
}

/// Frames of `range` that exist in `dir` with a plausible size.
pub fn frames_on_disk(dir: &Path, pattern: &FramePattern, first: i32, last: i32) -> BTreeSet<i32> {
    supervisor::scan_frames(dir, pattern, first..=last)
        .into_keys()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> WatchdogConfig {
        WatchdogConfig {
            startup_seconds: 100,
            no_output_min_seconds: 30,
            no_output_frame_multiplier: 10,
            tail_seconds: 20,
            absolute_cap_seconds: 1000,
            kill_grace_seconds: 1,
        }
    }

    /// Each phase has its own budget, and the absolute cap bounds them all.
    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let start = Instant::now();
        let b = budgets();
        assert_eq!(
            next_deadline(&b, start, start, false, None, Duration::ZERO),
            (start + Duration::from_secs(100), Watchdog::StartupTimeout)
        );
        let later = start + Duration::from_secs(50);
        assert_eq!(
            next_deadline(&b, start, later, true, None, Duration::from_secs(1)),
            (later + Duration::from_secs(30), Watchdog::Stalled)
        );
        assert_eq!(
            next_deadline(&b, start, later, true, None, Duration::from_secs(6)),
            (later + Duration::from_secs(60), Watchdog::Stalled),
            "slow frames stretch the stall budget"
        );
        assert_eq!(
            next_deadline(&b, start, later, true, Some(later), Duration::ZERO),
            (later + Duration::from_secs(20), Watchdog::HungAfterFinish)
        );
        let near_cap = start + Duration::from_secs(990);
        assert_eq!(
            next_deadline(&b, start, near_cap, true, None, Duration::ZERO).1,
            Watchdog::AbsoluteCap
        );
    }
}
