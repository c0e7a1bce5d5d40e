//! The live progress display: on a terminal one line redrawn in place by `indicatif` (a bar,
//! frames, chunks leased, ETA, and the elapsed time ticking between updates); otherwise plain
//! lines when the state changes and at most once a second for progress, so CI logs stay short.

use std::{fmt::Write as _, io::Write as _};

use flatrender_proto::pb;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tokio::time::{Duration, Instant};

const BAR_WIDTH: usize = 30;
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the redrawn line refreshes its elapsed time between updates.
const TICK: Duration = Duration::from_millis(250);

/// Prints a job's progress as it changes.
pub struct ProgressDisplay {
    mode: Mode,
}

enum Mode {
    /// One line on a terminal, redrawn by indicatif.
    Redrawn(ProgressBar),
    /// Plain lines for a pipe or a log file.
    Plain(PlainLines),
}

/// What the plain lines remember to print only what changed.
struct PlainLines {
    started: Instant,
    last_status: Option<pb::JobStatus>,
    last_frames_done: i32,
    last_line: Option<Instant>,
}

impl ProgressDisplay {
    /// A display on stdout: redrawn on a terminal, plain lines on a pipe, a file or a TERM=dumb
    /// terminal (where indicatif would draw nothing).
    pub fn stdout() -> Self {
        Self::new(ProgressDrawTarget::stdout())
    }

    /// A display redrawn on `target`, or plain lines on stdout when `target` is hidden.
    pub fn new(target: ProgressDrawTarget) -> Self {
        let mode = if target.is_hidden() {
            Mode::Plain(PlainLines {
                started: Instant::now(),
                last_status: None,
                last_frames_done: -1,
                last_line: None,
            })
        } else {
            let line = ProgressBar::with_draw_target(None, target).with_style(line_style());
            line.enable_steady_tick(TICK);
            Mode::Redrawn(line)
        };
        Self { mode }
    }

    /// Shows the job's latest state.
    pub fn update(&mut self, job: &pb::RenderJob) {
        match &mut self.mode {
            Mode::Redrawn(line) => {
                let progress = job.progress.unwrap_or_default();
                let total = progress.frames_total.max(0);
                // The position first: it alone may skip drawing (indicatif limits its rate, and
                // leaves it to the ticking clock); the setters after it draw the whole line.
                line.set_position(u64::try_from(progress.frames_done.clamp(0, total)).unwrap_or(0));
                // An empty bar while the total is unknown (indicatif shows a zero length as full).
                line.set_length(u64::try_from(total).unwrap_or(0).max(1));
                line.set_prefix(status_name(job.status()));
                line.set_message(counts_text(job));
                if is_terminal_status(job.status()) {
                    // Stops the ticking clock and draws the final state.
                    line.finish();
                }
            }
            Mode::Plain(plain) => plain.update(job),
        }
    }

    /// Runs `print` (a notice on stderr) with the redrawn line out of its way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.mode {
            Mode::Redrawn(line) => line.suspend(print),
            Mode::Plain(_) => print(),
        }
    }

    /// Leaves the line as last drawn, so that what follows starts on a new one.
    pub fn finish(&mut self) {
        if let Mode::Redrawn(line) = &self.mode {
            line.abandon();
        }
    }
}

impl PlainLines {
    fn update(&mut self, job: &pb::RenderJob) {
        let status_changed = self.last_status != Some(job.status());
        let frames_done = job.progress.as_ref().map_or(0, |progress| progress.frames_done);
        let progress_due = frames_done != self.last_frames_done
            && self
                .last_line
                .is_none_or(|printed| printed.elapsed() >= PLAIN_LINE_INTERVAL);
        if status_changed || progress_due || is_terminal_status(job.status()) {
            let _ = writeln!(std::io::stdout(), "{}", progress_line(job, self.started.elapsed()));
            self.last_line = Some(Instant::now());
            self.last_frames_done = frames_done;
        }
        self.last_status = Some(job.status());
    }
}

/// The redrawn line: the plain line's layout, with the bar and the clock drawn by indicatif.
fn line_style() -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:<9}}  [{{bar:{BAR_WIDTH}}}]  {{msg}}  ({{elapsed_tenths}})"
    ))
    .expect("the line template is valid (unit tests draw it)")
    .progress_chars("#.")
    .with_key(
        "elapsed_tenths",
        |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.1}s", state.elapsed().as_secs_f64());
        },
    )
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

/// `rendering  [#########.....................]  45/150 frames  2 chunk(s) leased  eta 3s  (4.1s)`.
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
    format!(
        "{:<9}  [{bar}]  {}  ({:.1}s)",
        status_name(job.status()),
        counts_text(job),
        elapsed.as_secs_f64()
    )
}

/// `  45/150 frames  2 chunk(s) leased  eta 3s`: the part after the bar.
fn counts_text(job: &pb::RenderJob) -> String {
    let progress = job.progress.unwrap_or_default();
    let total = progress.frames_total.max(0);
    let done = progress.frames_done.clamp(0, total);
    let mut text = format!("{done:>4}/{total} frames  {} chunk(s) leased", progress.chunks_leased);
    if let Some(eta) = progress.eta.as_ref().filter(|_| !is_terminal_status(job.status())) {
        let _ = write!(text, "  eta {}s", eta.seconds.max(0));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A one-line terminal: keeps the line as the last redraw left it.
    #[derive(Debug, Clone, Default)]
    struct OneLine(Arc<Mutex<String>>);

    impl OneLine {
        fn text(&self) -> String {
            self.0.lock().unwrap().trim_end().to_owned()
        }
    }

    impl TermLike for OneLine {
        fn width(&self) -> u16 {
            120
        }

        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            assert_eq!(n, 0, "a one-line display never moves up");
            Ok(())
        }

        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            assert_eq!(n, 0, "a one-line display never moves down");
            Ok(())
        }

        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }

        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }

        fn write_line(&self, _: &str) -> std::io::Result<()> {
            panic!("a redrawn line never ends the line");
        }

        fn write_str(&self, text: &str) -> std::io::Result<()> {
            let mut line = self.0.lock().unwrap();
            match text.rsplit_once('\r') {
                Some((_, rest)) => *line = rest.to_owned(),
                None => line.push_str(text),
            }
            Ok(())
        }

        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().clear();
            Ok(())
        }

        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Everything before the elapsed time, which the two clocks measure separately.
    fn without_clock(line: &str) -> &str {
        line.rsplit_once("  (").map_or(line, |(before, _)| before)
    }

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

    /// On a terminal the line is redrawn in place with the plain line's layout, the final
    /// state without an ETA.
    #[test]
    fn redrawn_line_has_the_plain_layout() {
        let screen = OneLine::default();
        let mut display = ProgressDisplay::new(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let mut rendering = job(pb::JobStatus::Rendering, 50, 100);
        if let Some(progress) = rendering.progress.as_mut() {
            let mut eta = progress.eta.unwrap_or_default();
            eta.seconds = 3;
            progress.eta = Some(eta);
        }
        display.update(&rendering);
        let drawn = screen.text();
        assert_eq!(
            without_clock(&drawn),
            without_clock(&progress_line(&rendering, Duration::ZERO)),
            "{drawn}"
        );
        assert!(drawn.contains("eta 3s") && drawn.ends_with("s)"), "{drawn}");
        let completed = job(pb::JobStatus::Completed, 100, 100);
        display.update(&completed);
        display.finish();
        let drawn = screen.text();
        assert!(
            drawn.starts_with(&format!("completed  [{}]   100/100 frames", "#".repeat(BAR_WIDTH))),
            "{drawn}"
        );
        assert!(!drawn.contains("eta"), "{drawn}");
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
