//! The live progress display: on a terminal one line redrawn in place (a bar, frames, chunks
//! leased, ETA); otherwise plain lines when the state changes and at most once a second for
//! progress, so CI logs stay short.

use std::io::Write;

use flatrender_proto::pb;
use tokio::time::{Duration, Instant};

const BAR_WIDTH: usize = 30;
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(1);

/// Prints a job's progress as it changes.
pub struct ProgressDisplay {
    terminal: bool,
    started: Instant,
    last_status: Option<pb::JobStatus>,
    last_frames_done: i32,
    last_plain_line: Option<Instant>,
    line_open: bool,
    last_job: Option<pb::RenderJob>,
}

impl ProgressDisplay {
    /// A display redrawing one line when `terminal`, printing plain lines otherwise.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            started: Instant::now(),
            last_status: None,
            last_frames_done: -1,
            last_plain_line: None,
            line_open: false,
            last_job: None,
        }
    }

    /// Shows the job's latest state.
    pub fn update(&mut self, job: &pb::RenderJob) {
        let line = progress_line(job, self.started.elapsed());
        let status_changed = self.last_status != Some(job.status());
        let frames_done = job.progress.as_ref().map_or(0, |progress| progress.frames_done);
        let mut out = std::io::stdout().lock();
        if self.terminal {
            // \r + "erase line": redraw in place, whatever the previous line's length.
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
            self.line_open = true;
        } else {
            let progress_due = frames_done != self.last_frames_done
                && self
                    .last_plain_line
                    .is_none_or(|printed| printed.elapsed() >= PLAIN_LINE_INTERVAL);
            if status_changed || progress_due || is_terminal_status(job.status()) {
                let _ = writeln!(out, "{line}");
                self.last_plain_line = Some(Instant::now());
                self.last_frames_done = frames_done;
            }
        }
        self.last_status = Some(job.status());
        self.last_job = Some(job.clone());
    }

    /// Redraws the terminal line so the elapsed time keeps moving between updates.
    pub fn tick(&mut self) {
        if !self.terminal || is_terminal_status(self.last_status.unwrap_or_default()) {
            return;
        }
        if let Some(job) = self.last_job.take() {
            self.update(&job);
        }
    }

    /// Ends the redrawn line so that what follows starts on a new one.
    pub fn finish(&mut self) {
        if self.line_open {
            let _ = writeln!(std::io::stdout());
            self.line_open = false;
        }
    }
}

/// Whether the job will not change any more.
pub fn is_terminal_status(status: pb::JobStatus) -> bool {
    matches!(
        status,
        pb::JobStatus::Completed | pb::JobStatus::Failed | pb::JobStatus::Cancelled
    )
}

/// The status as a word for people.
pub fn status_name(status: pb::JobStatus) -> &'static str {
    match status {
        pb::JobStatus::Unspecified => "unknown",
        pb::JobStatus::Queued => "queued",
        pb::JobStatus::Rendering => "rendering",
        pb::JobStatus::Rendered => "rendered",
        pb::JobStatus::Encoding => "encoding",
        pb::JobStatus::Completed => "completed",
        pb::JobStatus::Failed => "failed",
        pb::JobStatus::Cancelled => "cancelled",
    }
}

/// `rendering  [#########.....................]  45/150 frames  2 chunks leased  eta 3s  (4.1s)`.
pub fn progress_line(job: &pb::RenderJob, elapsed: Duration) -> String {
    let progress = job.progress.unwrap_or_default();
    let total = progress.frames_total.max(0);
    let done = progress.frames_done.clamp(0, total);
    let filled = if total == 0 {
        0
    } else {
        usize::try_from(i64::from(done) * BAR_WIDTH as i64 / i64::from(total)).unwrap_or(0)
    };
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled));
    let eta = progress
        .eta
        .as_ref()
        .filter(|_| !is_terminal_status(job.status()))
        .map(|eta| format!("  eta {}s", eta.seconds.max(0)))
        .unwrap_or_default();
    format!(
        "{:<9}  [{bar}]  {done:>4}/{total} frames  {} chunk(s) leased{eta}  ({:.1}s)",
        status_name(job.status()),
        progress.chunks_leased,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: pb::JobStatus, done: i32, total: i32) -> pb::RenderJob {
        let mut job = pb::RenderJob {
            progress: Some(pb::JobProgress {
                frames_total: total,
                frames_done: done,
                chunks_leased: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        job.set_status(status);
        job
    }

    /// The bar fills in proportion to the frames done and names the state and counts.
    #[test]
    fn progress_line_shows_bar_counts_and_state() {
        let line = progress_line(&job(pb::JobStatus::Rendering, 50, 100), Duration::from_millis(1500));
        assert!(line.starts_with("rendering"), "{line}");
        assert!(
            line.contains(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))),
            "{line}"
        );
        assert!(line.contains("  50/100 frames"), "{line}");
        assert!(line.contains("2 chunk(s) leased"), "{line}");
        assert!(line.ends_with("(1.5s)"), "{line}");
    }

    /// A job with no progress yet, or more frames reported than exist, still draws a valid bar.
    #[test]
    fn progress_line_survives_empty_and_overfull_progress() {
        let empty = progress_line(&job(pb::JobStatus::Queued, 0, 0), Duration::ZERO);
        assert!(empty.contains(&format!("[{}]", ".".repeat(BAR_WIDTH))), "{empty}");
        let overfull = progress_line(&job(pb::JobStatus::Completed, 12, 10), Duration::ZERO);
        assert!(overfull.contains(&format!("[{}]", "#".repeat(BAR_WIDTH))), "{overfull}");
        assert!(overfull.contains("10/10 frames"), "{overfull}");
    }

    /// Only completed, failed and cancelled jobs are final.
    #[test]
    fn terminal_states_are_the_final_ones() {
        assert!(is_terminal_status(pb::JobStatus::Completed));
        assert!(is_terminal_status(pb::JobStatus::Failed));
        assert!(is_terminal_status(pb::JobStatus::Cancelled));
        assert!(!is_terminal_status(pb::JobStatus::Rendering));
        assert!(!is_terminal_status(pb::JobStatus::Rendered));
    }
}
