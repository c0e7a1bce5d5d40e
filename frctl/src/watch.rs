//! `frctl jobs watch`: follows `WatchRenderJob` until the job ends. On a terminal it redraws one
//! status block (bar, frames, chunks, per-node activity, elapsed, ETA) with `indicatif`, which
//! also counts wrapped lines when it redraws; otherwise it prints one line per change, or one JSON
//! object per update with `--output json`. A dropped stream while the job still runs
//! (control-plane restart) is reopened rather than fatal.

use std::time::Duration;

use chrono::Utc;
use flatrender_proto::{
    pb::{self, render_service_client::RenderServiceClient},
    types::{FrameJobState, JobStatus},
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::time::Instant;
use tonic::Code;

use crate::{
    args::OutputFormat,
    connect::{Client, Failure, exit},
    duration,
    frames::node_cell,
    jobs::job_chunks,
    output::{print_json_line, seconds, time},
    views::{ChunkJson, JobJson, job_status},
};

/// How long the control plane may stay away before `watch` gives up (exit 5).
const OUTAGE_LIMIT: Duration = Duration::from_secs(300);
const BAR_WIDTH: usize = 30;

#[derive(Serialize)]
struct WatchUpdateJson {
    job: JobJson,
    /// Chunks being rendered now, with the node rendering each.
    running: Vec<ChunkJson>,
    /// Seconds since the job started (or since watching began, before it starts).
    elapsed_seconds: u64,
    /// Server estimate, else frctl's from the observed frame rate; null when unknown.
    eta_seconds: Option<u64>,
}

/// What the display needs for one update.
struct Snapshot {
    job: pb::RenderJob,
    /// Leased chunks, each with the name of its node.
    running: Vec<pb::FrameJob>,
    elapsed: Duration,
    eta: Option<Duration>,
}

/// Follows the job; returns 0 when it completes, 8 when it fails or is cancelled.
pub async fn run(client: &Client, format: OutputFormat, job_id: &str) -> anyhow::Result<u8> {
    let mut watcher = Watcher {
        format,
        // indicatif draws nothing on a pipe or a TERM=dumb terminal: plain lines there.
        redraw: format == OutputFormat::Table && !ProgressDrawTarget::stdout().is_hidden(),
        block: None,
        last_line: String::new(),
        watch_started: Instant::now(),
        first_progress: None,
    };
    let mut outage_since: Option<Instant> = None;
    let mut seen_update = false;
    loop {
        match watcher
            .follow(client, job_id, &mut seen_update, &mut outage_since)
            .await
        {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => {}
            // Before the first update every failure is final (unknown job, bad token, no server).
            Err(failure) if !seen_update || failure.code != exit::UNREACHABLE => return Err(failure.into()),
            Err(failure) => {
                let since = *outage_since.get_or_insert_with(Instant::now);
                if since.elapsed() > OUTAGE_LIMIT {
                    return Err(failure.into());
                }
                // The last block stays on screen; the next update draws a new one below the notice.
                if let Some(block) = watcher.block.take() {
                    block.abandon();
                }
                eprintln!("frctl: stream lost ({}); reconnecting", first_line(&failure.message));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn first_line(message: &str) -> &str {
    message.split(';').next().unwrap_or(message)
}

struct Watcher {
    format: OutputFormat,
    redraw: bool,
    /// The redrawn block, once the first update came (terminal only).
    block: Option<ProgressBar>,
    last_line: String,
    watch_started: Instant,
    first_progress: Option<(Instant, i32)>,
}

impl Watcher {
    /// One stream: `Some(exit code)` when the job ended, `None` to reconnect.
    async fn follow(
        &mut self,
        client: &Client,
        job_id: &str,
        seen_update: &mut bool,
        outage_since: &mut Option<Instant>,
    ) -> Result<Option<u8>, Failure> {
        let channel = client.streaming_channel().await?;
        let mut render = RenderServiceClient::new(channel);
        let mut stream = render
            .watch_render_job(client.request(pb::WatchRenderJobRequest {
                job_id: job_id.to_owned(),
            }))
            .await
            .map_err(|status| client.failure(&status))?
            .into_inner();
        loop {
            let update = match stream.message().await {
                Ok(Some(update)) => update,
                Ok(None) => return Ok(None),
                Err(status) => {
                    let failure = client.failure(&status);
                    // A broken stream shows up as Unknown/Internal/Unavailable: treat those as an
                    // outage; refusals (auth, not found, bad id) stay final.
                    let final_codes = [
                        Code::InvalidArgument,
                        Code::Unauthenticated,
                        Code::PermissionDenied,
                        Code::NotFound,
                    ];
                    if final_codes.contains(&status.code()) {
                        return Err(failure);
                    }
                    return Err(Failure::new(exit::UNREACHABLE, failure.message));
                }
            };
            *seen_update = true;
            *outage_since = None;
            let job = update.job.unwrap_or_default();
            let snapshot = self.snapshot(client, job).await;
            self.show(&snapshot)?;
            let status = JobStatus::from_wire(snapshot.job.status, "status").ok();
            if let Some(status) = status.filter(JobStatus::is_terminal) {
                self.finish(&snapshot);
                return Ok(Some(if status == JobStatus::Completed {
                    0
                } else {
                    exit::JOB_UNSUCCESSFUL
                }));
            }
        }
    }

    async fn snapshot(&mut self, client: &Client, job: pb::RenderJob) -> Snapshot {
        let progress = job.progress.unwrap_or_default();
        let terminal = JobStatus::from_wire(job.status, "status").is_ok_and(|status| status.is_terminal());
        // Per-node activity is best effort: a failed look-up leaves the block without it.
        let running = if terminal || progress.chunks_leased == 0 {
            Vec::new()
        } else {
            job_chunks(client, &job.id, &[FrameJobState::Leased])
                .await
                .unwrap_or_default()
        };
        let elapsed = match time(job.started_at.as_ref()) {
            Some(started) => {
                let until = time(job.finished_at.as_ref()).unwrap_or_else(Utc::now);
                (until - started).to_std().unwrap_or(Duration::ZERO)
            }
            None => self.watch_started.elapsed(),
        };
        let eta = seconds(progress.eta.as_ref())
            .map(Duration::from_secs)
            .or_else(|| self.observed_eta(progress.frames_done, progress.frames_total));
        Snapshot {
            job,
            running,
            elapsed,
            eta,
        }
    }

    /// Time left at the frame rate seen since watching began.
    fn observed_eta(&mut self, frames_done: i32, frames_total: i32) -> Option<Duration> {
        let (since, done_then) = *self.first_progress.get_or_insert((Instant::now(), frames_done));
        let rendered = frames_done - done_then;
        if rendered <= 0 {
            return None;
        }
        let per_frame = since.elapsed().as_secs_f64() / f64::from(rendered);
        let left = f64::from((frames_total - frames_done).max(0));
        Some(Duration::from_secs_f64(per_frame * left))
    }

    fn show(&mut self, snapshot: &Snapshot) -> Result<(), Failure> {
        match (self.format, self.redraw) {
            (OutputFormat::Json, _) => {
                let json = WatchUpdateJson {
                    job: JobJson::from(&snapshot.job),
                    running: snapshot.running.iter().map(ChunkJson::new).collect(),
                    elapsed_seconds: snapshot.elapsed.as_secs(),
                    eta_seconds: snapshot.eta.map(|eta| eta.as_secs()),
                };
                print_json_line(&json).map_err(|error| Failure::new(exit::UNEXPECTED, error.to_string()))
            }
            (OutputFormat::Table, true) => {
                let block = self
                    .block
                    .get_or_insert_with(|| block_display(ProgressDrawTarget::stdout()));
                draw_block(block, snapshot);
                Ok(())
            }
            (OutputFormat::Table, false) => {
                let line = status_line(snapshot);
                if line != self.last_line {
                    outln!("{} {line}", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
                    self.last_line = line;
                }
                Ok(())
            }
        }
    }

    fn finish(&mut self, snapshot: &Snapshot) {
        if self.format == OutputFormat::Json {
            return;
        }
        // Draws the final state (whatever the redraw rate limit skipped) and leaves it on screen.
        if let Some(block) = self.block.take() {
            block.finish();
        }
        let progress = snapshot.job.progress.unwrap_or_default();
        let reason = if snapshot.job.failure_reason.is_empty() {
            String::new()
        } else {
            format!(": {}", snapshot.job.failure_reason)
        };
        outln!(
            "job {} {} after {} ({}/{} frames){reason}",
            snapshot.job.id,
            job_status(snapshot.job.status),
            duration::format(snapshot.elapsed),
            progress.frames_done,
            progress.frames_total
        );
    }
}

fn percent(done: i32, total: i32) -> f64 {
    if total <= 0 {
        0.0
    } else {
        f64::from(done) * 100.0 / f64::from(total)
    }
}

fn eta_text(eta: Option<Duration>) -> String {
    eta.map_or_else(|| "-".to_owned(), duration::format)
}

/// The status block's display on `target`: a header, the bar line, then [`block_details`].
fn block_display(target: ProgressDrawTarget) -> ProgressBar {
    let style = ProgressStyle::with_template(&format!("{{prefix}}\n[{{bar:{BAR_WIDTH}}}] {{msg}}"))
        .expect("the block template is valid (unit tests draw it)")
        .progress_chars("#-");
    ProgressBar::with_draw_target(None, target).with_style(style)
}

/// Redraws `block` for `snapshot` (indicatif limits the rate to 20 a second; `finish` draws the
/// last state).
fn draw_block(block: &ProgressBar, snapshot: &Snapshot) {
    let progress = snapshot.job.progress.unwrap_or_default();
    let total = progress.frames_total.max(0);
    let done = progress.frames_done.clamp(0, total);
    // The position first: it alone may skip drawing (indicatif limits its rate); the setters
    // after it draw the whole block.
    block.set_position(u64::try_from(done).unwrap_or(0));
    // An empty bar while the total is unknown (indicatif shows a zero length as full).
    block.set_length(u64::try_from(total).unwrap_or(0).max(1));
    block.set_prefix(format!("job {}  {}", snapshot.job.id, job_status(snapshot.job.status)));
    block.set_message(block_details(snapshot));
}

/// The block after the bar: percent and frames, chunks, elapsed and ETA, one line per running chunk.
fn block_details(snapshot: &Snapshot) -> String {
    let progress = snapshot.job.progress.unwrap_or_default();
    let mut lines = vec![
        format!(
            "{:5.1}%  {}/{} frames",
            percent(progress.frames_done, progress.frames_total),
            progress.frames_done,
            progress.frames_total
        ),
        format!(
            "chunks {}/{} completed, {} leased   elapsed {}   eta {}",
            progress.chunks_completed,
            progress.chunks_total,
            progress.chunks_leased,
            duration::format(snapshot.elapsed),
            eta_text(snapshot.eta)
        ),
    ];
    for chunk in &snapshot.running {
        let name = node_cell(chunk);
        let range = chunk.frame_range.unwrap_or_default();
        let frames = range.end - range.start + 1;
        lines.push(format!(
            "  {name:<20} chunk {:<4} frames {}-{}  {}/{frames} done",
            chunk.chunk_index, range.start, range.end, chunk.frames_done
        ));
    }
    lines.join("\n")
}

fn status_line(snapshot: &Snapshot) -> String {
    let progress = snapshot.job.progress.unwrap_or_default();
    let nodes: Vec<String> = snapshot
        .running
        .iter()
        .map(|chunk| format!("{}:chunk{}", node_cell(chunk), chunk.chunk_index))
        .collect();
    format!(
        "{} {}/{} frames ({:.1}%) chunks {}/{} leased {} eta {}{}",
        job_status(snapshot.job.status),
        progress.frames_done,
        progress.frames_total,
        percent(progress.frames_done, progress.frames_total),
        progress.chunks_completed,
        progress.chunks_total,
        progress.chunks_leased,
        eta_text(snapshot.eta),
        if nodes.is_empty() {
            String::new()
        } else {
            format!(" nodes {}", nodes.join(","))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::Screen;

    fn snapshot(frames_done: i32, running: Vec<pb::FrameJob>) -> Snapshot {
        Snapshot {
            job: pb::RenderJob {
                id: "job-1".into(),
                status: pb::JobStatus::Rendering as i32,
                progress: Some(pb::JobProgress {
                    frames_total: 20,
                    frames_done,
                    chunks_total: 4,
                    chunks_completed: 1,
                    chunks_leased: i32::try_from(running.len()).unwrap(),
                    eta: None,
                }),
                ..Default::default()
            },
            running,
            elapsed: Duration::from_secs(75),
            eta: Some(Duration::from_secs(200)),
        }
    }

    fn chunk_on_node_a() -> pb::FrameJob {
        pb::FrameJob {
            chunk_index: 1,
            frame_range: Some(pb::FrameRange { start: 5, end: 9 }),
            frames_done: 2,
            node_name: "node-a".into(),
            ..Default::default()
        }
    }

    /// The block shows the bar, frames, chunks, elapsed and ETA, and each node with its chunk.
    #[test]
    fn block_shows_progress_and_per_node_activity() {
        let screen = Screen::new();
        let block = block_display(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let snapshot = snapshot(5, vec![chunk_on_node_a()]);
        draw_block(&block, &snapshot);
        assert_eq!(
            screen.lines(),
            [
                "job job-1  rendering",
                "[#######-----------------------]  25.0%  5/20 frames",
                "chunks 1/4 completed, 1 leased   elapsed 1m15s   eta 3m20s",
                "  node-a               chunk 1    frames 5-9  2/5 done",
            ]
        );
        assert!(status_line(&snapshot).contains("nodes node-a:chunk1"));
    }

    /// A redraw replaces the block in place: a node line that is gone leaves no trace.
    #[test]
    fn block_is_redrawn_in_place() {
        let screen = Screen::new();
        let block = block_display(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        draw_block(&block, &snapshot(5, vec![chunk_on_node_a()]));
        draw_block(&block, &snapshot(20, Vec::new()));
        block.finish();
        assert_eq!(
            screen.lines(),
            [
                "job job-1  rendering",
                "[##############################] 100.0%  20/20 frames",
                "chunks 1/4 completed, 0 leased   elapsed 1m15s   eta 3m20s",
            ]
        );
    }

    /// No frames known yet: an empty bar at 0%, not a full one.
    #[test]
    fn block_bar_is_empty_without_a_total() {
        let screen = Screen::new();
        let block = block_display(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let mut snapshot = snapshot(0, Vec::new());
        snapshot.job.progress = None;
        draw_block(&block, &snapshot);
        assert_eq!(
            screen.lines()[1],
            format!("[{}]   0.0%  0/0 frames", "-".repeat(BAR_WIDTH))
        );
        assert!((percent(1, 4) - 25.0).abs() < f64::EPSILON);
    }
}
