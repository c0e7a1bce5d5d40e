//! One leased chunk, end to end (an encode item: `encode`): fetch the template (pinned in the cache), work out which frames
//! are still missing, run aerender over each missing stretch under watchdogs, judge the result,
//! and hand completion or failure to the outbox for delivery. Frames already on disk and valid
//! are kept and never rendered again. A chunk of a saved project's scene renders a working copy
//! with the scene's values (`content`): its frames go to `<job id>/scene-<iii>/`, and the working
//! folder is removed when the chunk's work ends, whatever the outcome.

mod encode;
pub(crate) mod layout;
mod watch;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use flatrender_proto::{
    pb,
    types::{ContentHash, CrashClass, HttpUrl, RecoveryAction, SafeName, TemplateId},
};
use tokio::time::Instant;
use tracing::{info, warn};

pub use encode::run_encode;
pub(crate) use layout::{FrameLayout, frames_dir};
pub use watch::frames_on_disk;
pub(crate) use watch::supervise;

use crate::{
    cache::{AssetCache, TemplateCache, TemplateSpec},
    canary::record,
    client::ControlPlaneClient,
    config::AgentConfig,
    content::{self, PreparedScene, SceneJob},
    encode::{FfmpegTools, FfmpegVersions},
    export::ExportStore,
    leases::{RunningLease, StopReason},
    metrics::AgentMetrics,
    outbox::{ChunkCompletion, ChunkFailure, FrameOutputRecord, Outbox, OutboxItem},
    recovery::{self, Failure, RunFacts, Verdict, Watchdog},
    supervisor::{self, AerenderInstall, ChunkCommand, FramePattern, MfrSetting},
};

/// Everything a chunk needs from the agent.
pub struct ChunkContext {
    /// Agent configuration.
    pub config: Arc<AgentConfig>,
    /// Control-plane client (progress reports).
    pub client: Arc<ControlPlaneClient>,
    /// Template cache.
    pub cache: Arc<TemplateCache>,
    /// Asset cache (the files saved projects' fields name).
    pub assets: Arc<AssetCache>,
    /// Where results wait for delivery.
    pub outbox: Arc<Outbox>,
    /// The agent's metrics.
    pub metrics: Arc<AgentMetrics>,
    /// The aerender to run; `None` on an encode-only node (`aerender.required = false` and none
    /// found), which fails any render assignment so that it goes elsewhere.
    pub install: Option<AerenderInstall>,
    /// The FFmpeg to encode with; `None` when encoding is off or ffmpeg was not found.
    pub encoder: Option<Encoder>,
    /// Where encoded videos are stored.
    pub exports: Arc<ExportStore>,
    /// Prefix of this agent's process tags (see `service::process_tag_prefix`).
    pub process_tag_prefix: String,
}

/// The FFmpeg programs this node encodes with, and their versions as found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoder {
    /// The programs.
    pub tools: FfmpegTools,
    /// What `-version` said.
    pub versions: FfmpegVersions,
}

/// Why an encode-only node refuses a render assignment.
const NO_AERENDER: &str = "this node has no After Effects (encode-only: aerender.required = false and no aerender found); \
                           the chunk goes to another node";

/// How a chunk ended, for the crash-loop detector and back-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Completed; the completion is in the outbox.
    Completed,
    /// Failed; the failure is in the outbox.
    Failed(Failure),
    /// Stopped from outside (lease lost, self-fenced, shutdown hand-back).
    Stopped(StopReason),
}

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Renders one assignment. `escalate` sees a failure before it is queued for the control plane
/// and may change its action (the crash that completes a crash loop reports `Quarantine`); it is
/// not asked about hand-backs.
pub async fn run_chunk(
    context: &ChunkContext,
    assignment: &pb::WorkAssignment,
    lease: Arc<RunningLease>,
    escalate: impl FnOnce(Failure) -> Failure,
) -> ChunkOutcome {
    let started = Instant::now();
    let mut scene = None;
    let result = render(context, assignment, &lease, &mut scene).await;
    // Before anything is reported: the chunk's work on this node ends here.
    if let Some(prepared) = scene {
        prepared.finish().await;
    }
    let outcome = match (result, lease.stop_reason()) {
        (_, Some(StopReason::LeaseLost)) => {
            info!(frame_job_id = %assignment.frame_job_id, "chunk stopped: lease no longer ours; results discarded");
            return ChunkOutcome::Stopped(StopReason::LeaseLost);
        }
        // Also when self-fenced as the last frame landed: the work is done, and the fencing token
        // decides whether it still counts (a lease given away meanwhile answers stale).
        (Ok(outputs), _) => {
            let item = OutboxItem::Completion(ChunkCompletion {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                outputs,
                render_seconds: started.elapsed().as_secs_f64(),
                export: None,
            });
            match context.outbox.push(item).await {
                Ok(_) => ChunkOutcome::Completed,
                Err(error) => {
                    warn!(%error, "cannot record the completion in the outbox");
                    ChunkOutcome::Failed(Failure {
                        crash_class: CrashClass::OutputWrite,
                        error_class: None,
                        action: RecoveryAction::BackOff,
                        message: format!("outbox: {error}"),
                    })
                }
            }
        }
        (
            Err(Failed {
                failure,
                log_tail,
                exit_code,
                frames_written,
            }),
            stop,
        ) => {
            let failure = match stop {
                // A hand-back: whatever happened, the chunk goes back without costing an attempt.
                Some(StopReason::Shutdown) => Failure {
                    action: RecoveryAction::Requeue,
                    ..failure
                },
                // The lease could not be renewed in time (the control plane or the network was
                // away): stopped so that two nodes never render the same frames, and handed back
                // with its verified frames once the control plane hears us again. If the lease was
                // given away meanwhile, the control plane answers stale and delivery drops it.
                Some(StopReason::SelfFenced) => {
                    info!(
                        frame_job_id = %assignment.frame_job_id,
                        frames_kept = frames_written.len(),
                        "chunk self-fenced: lease not renewed within its TTL; handing it back"
                    );
                    Failure {
                        action: RecoveryAction::Requeue,
                        message: format!("self-fenced: lease not renewed within its TTL ({})", failure.message),
                        ..failure
                    }
                }
                _ => escalate(failure),
            };
            let item = OutboxItem::Failure(ChunkFailure {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                crash_class: failure.crash_class.to_wire(),
                error_class: failure.error_class.map(|class| class.to_string()).unwrap_or_default(),
                exit_code,
                log_tail: tail_bytes(&log_tail, 60 * 1024),
                message: failure.message.clone(),
                frames_written: frames_written.into_iter().collect(),
                recovery_action: failure.action.to_wire(),
            });
            if let Err(error) = context.outbox.push(item).await {
                warn!(%error, "cannot record the failure in the outbox");
            }
            match stop {
                Some(reason) => ChunkOutcome::Stopped(reason),
                None => ChunkOutcome::Failed(failure),
            }
        }
    };
    match &outcome {
        ChunkOutcome::Completed => context.metrics.chunk_completed(),
        ChunkOutcome::Failed(failure) => {
            context.metrics.chunk_failed();
            context.metrics.crash(failure.crash_class);
        }
        ChunkOutcome::Stopped(_) => {}
    }
    outcome
}

/// A failure with what goes into the report.
struct Failed {
    failure: Failure,
    log_tail: String,
    exit_code: Option<i32>,
    frames_written: BTreeSet<i32>,
}

impl Failed {
    fn before_render(crash_class: CrashClass, action: RecoveryAction, message: String) -> Self {
        Self {
            failure: Failure {
                crash_class,
                error_class: None,
                action,
                message,
            },
            log_tail: String::new(),
            exit_code: None,
            frames_written: BTreeSet::new(),
        }
    }
}

/// Renders the chunk. A scene's working folder goes into `scene`, so that the caller removes it
/// however this ends.
async fn render(
    context: &ChunkContext,
    assignment: &pb::WorkAssignment,
    lease: &Arc<RunningLease>,
    scene: &mut Option<PreparedScene>,
) -> Result<Vec<FrameOutputRecord>, Failed> {
    let Some(install) = context.install.as_ref() else {
        return Err(Failed::before_render(
            CrashClass::Unknown,
            RecoveryAction::RetryElsewhere,
            NO_AERENDER.to_owned(),
        ));
    };
    let spec = assignment
        .template
        .as_ref()
        .ok_or_else(|| "assignment without template".to_owned())
        .and_then(template_spec)
        .map_err(|message| Failed::before_render(CrashClass::Unknown, RecoveryAction::RetryElsewhere, message))?;
    // Malformed like a bad template reference: another node (a newer agent) may read it.
    let scene_job = SceneJob::from_assignment(assignment)
        .map_err(|message| Failed::before_render(CrashClass::Unknown, RecoveryAction::RetryElsewhere, message))?;
    let range = assignment.frame_range.unwrap_or_default();
    let output = assignment.output.clone().unwrap_or_default();
    let config = &context.config;
    let stem = SafeName::file_stem(&output.output_name, "output_name")
        .map_err(|error| Failed::before_render(CrashClass::Unknown, RecoveryAction::FailJob, error.to_string()))?;
    let scene_index = scene_job.as_ref().map(|job| job.scene.index);
    let FrameLayout {
        dir: output_dir,
        pattern_path,
        pattern,
    } = layout::frame_layout(&config.aerender, &assignment.job_id, scene_index, &stem).map_err(|error| {
        Failed::before_render(CrashClass::Unknown, RecoveryAction::RetryElsewhere, error.to_string())
    })?;
    tokio::fs::create_dir_all(&output_dir).await.map_err(|error| {
        Failed::before_render(
            CrashClass::OutputWrite,
            RecoveryAction::RetryElsewhere,
            format!("cannot create {}: {error}", output_dir.display()),
        )
    })?;

    let cache_lease = match context.cache.acquire(&spec).await {
        Ok(cache_lease) => cache_lease,
        Err(error) => {
            return Err(Failed::before_render(
                CrashClass::CacheError,
                RecoveryAction::RetryElsewhere,
                format!("template {}: {error}", spec.hash),
            ));
        }
    };
    let project = cache_lease.project_path().to_path_buf();
    let (render_project, script) = match &scene_job {
        None => (project.clone(), None),
        Some(job) => {
            let prepared = content::prepare(
                &context.assets,
                &config.node.state_dir,
                job,
                &assignment.composition,
                &cache_lease,
            )
            .await
            .map_err(|failure| Failed::before_render(failure.crash_class, failure.action, failure.message))?;
            let prepared = scene.insert(prepared);
            (prepared.project().to_path_buf(), Some(prepared.script().to_path_buf()))
        }
    };

    let mut written = frames_on_disk(&output_dir, &pattern, range.start, range.end);
    if !written.is_empty() {
        info!(frame_job_id = %assignment.frame_job_id, kept = written.len(), "frames already on disk are kept");
    }
    let mut last_report = Instant::now();
    let mut first_rendered_frame = None;
    for (first, last) in missing_stretches(range.start, range.end, &written) {
        first_rendered_frame.get_or_insert(first);
        let mut command = chunk_command(
            config,
            &render_project,
            &assignment.composition,
            first,
            last,
            &pattern_path,
            &output,
        );
        command.script.clone_from(&script);
        let args = command.build_args(install.version.as_deref());
        let tag = format!("{}{}/{}", context.process_tag_prefix, assignment.frame_job_id, first);
        let process = supervisor::spawn_aerender(&install.path, &args, &tag).map_err(|error| {
            Failed::before_render(
                CrashClass::LaunchFailure,
                RecoveryAction::RetryElsewhere,
                error.to_string(),
            )
        })?;
        let running = context.metrics.aerender_started();
        let already = written.clone();
        let mut report = |frames: &BTreeSet<i32>| {
            let done = already
                .union(frames)
                .filter(|frame| (range.start..=range.end).contains(frame))
                .count();
            lease.set_frames_done(i32::try_from(done).unwrap_or(i32::MAX));
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                spawn_progress_report(
                    context,
                    assignment,
                    lease,
                    done,
                    already.union(frames).copied().collect(),
                );
            }
        };
        let record = watch::supervise(
            process,
            &output_dir,
            &pattern,
            &config.watchdog,
            &lease.cancel,
            &mut report,
            Some(&context.metrics),
        )
        .await;
        drop(running);
        crate::render_logs::keep(&config.node.state_dir, &assignment.job_id, &tag, &record.raw_log).await;
        if let Some(first_frame) = record.time_to_first_frame {
            context.metrics.observe_time_to_first_frame(first_frame.as_secs_f64());
        }
        let now_written = frames_on_disk(&output_dir, &pattern, range.start, range.end);
        let expected = usize::try_from(last - first + 1).unwrap_or(0);
        let stretch_done = now_written.range(first..=last).count();
        context
            .metrics
            .frames_rendered(stretch_done.saturating_sub(written.range(first..=last).count()) as u64);
        let facts = RunFacts {
            exit_code: record.exit_code,
            signal: record.signal,
            watchdog: record.watchdog,
            log: &record.log,
            expected_frames: expected,
            frames_on_disk: stretch_done,
        };
        let verdict = recovery::judge(&facts);
        written = now_written;
        if let Verdict::Failed(failure) = verdict {
            remove_implausible_frames(&output_dir, &pattern, first, last, &written).await;
            if failure.crash_class == CrashClass::CacheError {
                // The cached project may be damaged: drop it so the retry fetches a fresh copy.
                drop(cache_lease);
                if let Err(error) = context.cache.remove(&spec.hash).await {
                    warn!(%error, template_hash = %spec.hash, "could not drop the cached template");
                }
            } else if record.watchdog != Watchdog::Cancelled {
                warn!(frame_job_id = %assignment.frame_job_id, class = %failure.crash_class, message = %failure.message, "render failed");
            }
            return Err(Failed {
                failure,
                log_tail: record.log_tail,
                exit_code: record.exit_code,
                frames_written: written,
            });
        }
    }
    drop(cache_lease);
    let outputs = hash_outputs(&output_dir, &pattern, range.start, range.end)
        .await
        .map_err(|message| Failed::before_render(CrashClass::OutputWrite, RecoveryAction::RetryElsewhere, message))?;
    // Only a render that ran here proves something: frames all kept from disk do not.
    if let Some(frame) = first_rendered_frame {
        let frame_path = output_dir.join(pattern.file_name(frame));
        let frame_size = tokio::task::spawn_blocking(move || record::png_size(&frame_path))
            .await
            .ok()
            .flatten();
        let last_success = record::LastSuccess {
            template_hash: spec.hash.to_hex(),
            project_path: project.clone(),
            composition: assignment.composition.clone(),
            output_module_template: output.output_module_template.clone(),
            render_settings_template: output.render_settings_template.clone(),
            frame,
            frame_size,
        };
        record::remember_success(&config.node.state_dir, &last_success).await;
    }
    info!(frame_job_id = %assignment.frame_job_id, frames = outputs.len(), "chunk rendered");
    Ok(outputs)
}

/// The cache's view of a template reference from the control plane.
pub fn template_spec(template: &pb::TemplateRef) -> Result<TemplateSpec, String> {
    Ok(TemplateSpec {
        template_id: TemplateId::parse_optional_field(&template.template_id, "template_id")
            .map_err(|e| e.to_string())?,
        version: template.version,
        url: HttpUrl::parse(&template.download_url, "download_url").map_err(|e| e.to_string())?,
        hash: ContentHash::parse_hex(&template.blake3_hex, "blake3_hex").map_err(|e| e.to_string())?,
        size_bytes: u64::try_from(template.size_bytes).unwrap_or(0),
    })
}

/// The aerender command for frames `first..=last` of `composition`, with the job's output settings
/// and the agent's defaults (the canary render uses it too).
pub(crate) fn chunk_command(
    config: &AgentConfig,
    project: &Path,
    composition: &str,
    first: i32,
    last: i32,
    pattern_path: &Path,
    output: &pb::OutputSettings,
) -> ChunkCommand {
    let aerender = &config.aerender;
    let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    ChunkCommand {
        project: project.to_path_buf(),
        comp: composition.to_owned(),
        start_frame: first,
        end_frame: last,
        output_pattern: pattern_path.to_path_buf(),
        output_module_template: non_empty(&output.output_module_template)
            .or_else(|| non_empty(&aerender.output_module_template)),
        render_settings_template: non_empty(&output.render_settings_template),
        mem_usage: (aerender.mem_usage_max_percent > 0)
            .then_some((aerender.mem_usage_image_cache_percent, aerender.mem_usage_max_percent)),
        mfr: aerender.mfr.then_some(MfrSetting {
            on: true,
            max_cpu_percent: aerender.mfr_max_cpu_percent,
        }),
        log_file: None,
        continue_on_missing_footage: false,
        script: None,
    }
}

/// Contiguous stretches of `first..=last` not in `written`.
pub fn missing_stretches(first: i32, last: i32, written: &BTreeSet<i32>) -> Vec<(i32, i32)> {
    let mut stretches = Vec::new();
    let mut open: Option<i32> = None;
    for frame in first..=last {
        match (written.contains(&frame), open) {
            (false, None) => open = Some(frame),
            (true, Some(start)) => {
                stretches.push((start, frame - 1));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        stretches.push((start, last));
    }
    stretches
}

fn spawn_progress_report(
    context: &ChunkContext,
    assignment: &pb::WorkAssignment,
    lease: &Arc<RunningLease>,
    done: usize,
    frames: Vec<i32>,
) {
    let client = context.client.clone();
    let request = pb::ReportProgressRequest {
        frame_job_id: assignment.frame_job_id.clone(),
        lease_token: assignment.lease_token,
        frames_done: i32::try_from(done).unwrap_or(i32::MAX),
        frames_written: frames,
    };
    let lease = lease.clone();
    tokio::spawn(async move {
        match client.report_progress(request).await {
            Ok(_) => lease.renewed(),
            Err(error) if error.is_lost_lease() => {
                warn!(%error, "progress refused: the lease is gone; stopping the render");
                lease.stop(StopReason::LeaseLost);
            }
            Err(error) => warn!(%error, "progress report not delivered; the heartbeat keeps the lease"),
        }
    });
}

/// Deletes frame files of the stretch that are present but implausible (truncated by a crash).
async fn remove_implausible_frames(dir: &Path, pattern: &FramePattern, first: i32, last: i32, valid: &BTreeSet<i32>) {
    for frame in first..=last {
        if valid.contains(&frame) {
            continue;
        }
        let path = dir.join(pattern.file_name(frame));
        if tokio::fs::remove_file(&path).await.is_ok() {
            info!(path = %path.display(), "removed a damaged frame");
        }
    }
}

/// BLAKE3 of every frame of the range (off the async runtime).
async fn hash_outputs(
    dir: &Path,
    pattern: &FramePattern,
    first: i32,
    last: i32,
) -> Result<Vec<FrameOutputRecord>, String> {
    let files: Vec<(i32, PathBuf)> = (first..=last)
        .map(|frame| (frame, dir.join(pattern.file_name(frame))))
        .collect();
    tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|(frame, path)| {
                let bytes = std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
                Ok(FrameOutputRecord {
                    frame,
                    path: path.display().to_string(),
                    size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                    blake3_hex: blake3::hash(&bytes).to_hex().to_string(),
                })
            })
            .collect()
    })
    .await
    .map_err(|error| format!("hashing outputs: {error}"))?
}

fn tail_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests;

// A chunk of a scene end to end, with a shell script as aerender (Unix only).
#[cfg(all(test, unix))]
mod scene_tests;
