//! `frctl jobs watch`: follows `WatchRenderJob` until the job ends. On a terminal it redraws one
//! status block (bar, frames, chunks, per-node activity, elapsed, ETA); otherwise it prints one
//! line per change, or one JSON object per update with `--output json`. A dropped stream while
//! the job still runs (control-plane restart) is reopened rather than fatal.

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use chrono::Utc;
use flatrender_proto::{
    pb::{self, render_service_client::RenderServiceClient},
    types::{FrameJobState, JobStatus},
};
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
        redraw: format == OutputFormat::Table && std::io::stdout().is_terminal(),
        lines_drawn: 0,
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
                eprintln!("frctl: stream lost ({}); reconnecting", first_line(&failure.message));
                watcher.lines_drawn = 0;
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
    lines_drawn: usize,
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
                let block = block_lines(snapshot);
                let mut stdout = std::io::stdout().lock();
                // Move to the start of the previous block and clear it before drawing the new one.
                if self.lines_drawn > 0 {
                    let _ = write!(stdout, "\x1b[{}F\x1b[J", self.lines_drawn);
                }
                for line in &block {
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
                self.lines_drawn = block.len();
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

    fn finish(&self, snapshot: &Snapshot) {
        if self.format == OutputFormat::Json {
            return;
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

/// `[#####-----]` for `done` of `total`.
fn bar(done: i32, total: i32, width: usize) -> String {
    let filled = if total <= 0 {
        0
    } else {
        let ratio = f64::from(done.clamp(0, total)) / f64::from(total);
        // Rounded down to whole cells: the bar is full only when every frame is done.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cells = (ratio * width as f64).floor() as usize;
        cells.min(width)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

fn eta_text(eta: Option<Duration>) -> String {
    eta.map_or_else(|| "-".to_owned(), duration::format)
}

fn block_lines(snapshot: &Snapshot) -> Vec<String> {
    let progress = snapshot.job.progress.unwrap_or_default();
    let mut lines = vec![
        format!("job {}  {}", snapshot.job.id, job_status(snapshot.job.status)),
        format!(
            "{} {:5.1}%  {}/{} frames",
            bar(progress.frames_done, progress.frames_total, BAR_WIDTH),
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
    lines
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

    /// The bar is empty at 0, full only at 100%, and survives a zero total.
    #[test]
    fn bar_fills_with_progress() {
        assert_eq!(bar(0, 10, 10), "[----------]");
        assert_eq!(bar(5, 10, 10), "[#####-----]");
        assert_eq!(bar(9, 10, 4), "[###-]");
        assert_eq!(bar(10, 10, 4), "[####]");
        assert_eq!(bar(3, 0, 4), "[----]");
        assert!((percent(1, 4) - 25.0).abs() < f64::EPSILON);
    }

    /// The status block names each node with the chunk it renders.
    #[test]
    fn block_shows_per_node_activity() {
        let snapshot = Snapshot {
            job: pb::RenderJob {
                id: "job-1".into(),
                status: pb::JobStatus::Rendering as i32,
                progress: Some(pb::JobProgress {
                    frames_total: 20,
                    frames_done: 5,
                    chunks_total: 4,
                    chunks_completed: 1,
                    chunks_leased: 1,
                    eta: None,
                }),
                ..Default::default()
            },
            running: vec![pb::FrameJob {
                chunk_index: 1,
                frame_range: Some(pb::FrameRange { start: 5, end: 9 }),
                frames_done: 2,
                node_name: "node-a".into(),
                ..Default::default()
            }],
            elapsed: Duration::from_secs(75),
            eta: Some(Duration::from_secs(200)),
        };
        let block = block_lines(&snapshot).join("\n");
        assert!(block.contains("5/20 frames"), "{block}");
        assert!(block.contains("node-a"), "{block}");
        assert!(block.contains("frames 5-9  2/5 done"), "{block}");
        assert!(block.contains("elapsed 1m15s   eta 3m20s"), "{block}");
        assert!(status_line(&snapshot).contains("nodes node-a:chunk1"));
    }
}
