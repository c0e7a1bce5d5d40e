//! One leased encode item, end to end (issue 12): read the assignment (`plan`), fetch the
//! project's audio through the asset cache (`audio`), encode the job's frames with ffmpeg into a
//! folder of this attempt under the work root (`content::workdir::encode_dir_path`, removed
//! whatever the outcome), verify it with ffprobe (`crate::encode`), hash it, store it in the
//! output store (`crate::export`) and queue the completion with its export in the outbox.
//!
//! Leases work as for renders: heartbeats and progress reports renew it, a lost lease kills
//! ffmpeg through the lease's cancel token and reports nothing, shutdown and self-fencing hand the
//! item back. Failures are classified in `failure`.
//!
//! Once the store has begun, a lost lease no longer stops it: an upload cut off may still have
//! reached the store whole, and then nobody would know it is there. The store runs to its end
//! (bounded by the store's own timeouts; only a shutdown cancels it) and the completion is
//! reported anyway: the control plane answers STALE (the file stays, the successor adopts it) or
//! JOB_ENDED (delivery removes it), so a cancelled job never keeps a stored file.

mod audio;
mod failure;
mod plan;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flatrender_proto::pb;
use flatrender_proto::types::{ContentHash, CrashClass, RecoveryAction};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::failure::{Failed, encode_failed, store_failed};
use self::plan::{EncodePlan, PlanError};
use super::{ChunkContext, ChunkOutcome, PROGRESS_EVERY, spawn_progress_report, tail_bytes};
use crate::content::workdir;
use crate::encode::{self, EncodeProgress, EncodeSpec};
use crate::export::ExportKey;
use crate::leases::{RunningLease, StopReason};
use crate::outbox::{ChunkCompletion, ChunkFailure, ExportRecord, OutboxItem};
use crate::recovery::Failure;

/// Encodes one assignment of kind ENCODE.
pub async fn run_encode(
    context: &ChunkContext,
    assignment: &pb::WorkAssignment,
    lease: Arc<RunningLease>,
) -> ChunkOutcome {
    let started = Instant::now();
    let mut attempt_dir = None;
    let result = encode_and_store(context, assignment, &lease, &mut attempt_dir).await;
    // Before anything is reported: the attempt's work on this node ends here.
    if let Some(dir) = attempt_dir {
        remove_attempt_dir(dir).await;
    }
    let outcome = match (result, lease.stop_reason()) {
        (Err(_), Some(StopReason::LeaseLost)) => {
            info!(frame_job_id = %assignment.frame_job_id, "encode stopped: lease no longer ours; results discarded");
            return ChunkOutcome::Stopped(StopReason::LeaseLost);
        }
        // Stored: reported even when the lease was lost meanwhile; the fencing token decides
        // whether it counts, and the verdict whether the stored file stays (module doc).
        (Ok(export), _) => {
            let item = OutboxItem::Completion(ChunkCompletion {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                outputs: Vec::new(),
                render_seconds: started.elapsed().as_secs_f64(),
                export: Some(export),
            });
            match context.outbox.push(item).await {
                Ok(_) => ChunkOutcome::Completed,
                Err(error) => {
                    warn!(%error, "cannot record the encode's completion in the outbox");
                    ChunkOutcome::Failed(Failure {
                        crash_class: CrashClass::OutputWrite,
                        error_class: None,
                        action: RecoveryAction::BackOff,
                        message: format!("outbox: {error}"),
                    })
                }
            }
        }
        (Err(failed), stop) => {
            let failure = match stop {
                Some(StopReason::Shutdown) => Failure {
                    action: RecoveryAction::Requeue,
                    ..failed.failure
                },
                Some(StopReason::SelfFenced) => {
                    info!(frame_job_id = %assignment.frame_job_id, "encode self-fenced: lease not renewed within its TTL; handing it back");
                    Failure {
                        action: RecoveryAction::Requeue,
                        message: format!(
                            "self-fenced: lease not renewed within its TTL ({})",
                            failed.failure.message
                        ),
                        ..failed.failure
                    }
                }
                _ => failed.failure,
            };
            let item = OutboxItem::Failure(ChunkFailure {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                crash_class: failure.crash_class.to_wire(),
                error_class: failed.error_class,
                exit_code: None,
                log_tail: tail_bytes(&failed.log_tail, 60 * 1024),
                message: failure.message.clone(),
                frames_written: Vec::new(),
                recovery_action: failure.action.to_wire(),
            });
            if let Err(error) = context.outbox.push(item).await {
                warn!(%error, "cannot record the encode's failure in the outbox");
            }
            match stop {
                Some(reason) => ChunkOutcome::Stopped(reason),
                None => ChunkOutcome::Failed(failure),
            }
        }
    };
    match &outcome {
        ChunkOutcome::Completed => context.metrics.encode_completed(),
        ChunkOutcome::Failed(_) => context.metrics.encode_failed(),
        ChunkOutcome::Stopped(_) => {}
    }
    outcome
}

/// Everything up to the stored export. The attempt's folder goes into `attempt_dir` as soon as
/// it is known, so that the caller removes it however this ends.
async fn encode_and_store(
    context: &ChunkContext,
    assignment: &pb::WorkAssignment,
    lease: &Arc<RunningLease>,
    attempt_dir: &mut Option<PathBuf>,
) -> Result<ExportRecord, Failed> {
    let Some(encoder) = context.encoder.as_ref() else {
        return Err(Failed::new(
            CrashClass::Unknown,
            RecoveryAction::RetryElsewhere,
            "no_encoder",
            "this node has no encoder (ffmpeg and ffprobe not found, or encode.enabled = false); the encode \
             goes to another node"
                .to_owned(),
        ));
    };
    let plan = EncodePlan::from_assignment(assignment, &context.config.aerender).map_err(|error| match error {
        PlanError::Malformed(message) => Failed::new(
            CrashClass::Unknown,
            RecoveryAction::RetryElsewhere,
            "malformed_assignment",
            message,
        ),
        PlanError::BadOutputName(message) => {
            Failed::new(CrashClass::Unknown, RecoveryAction::FailJob, "bad_output_name", message)
        }
    })?;
    let dir = workdir::encode_dir_path(
        &workdir::work_root(&context.config.node.state_dir),
        plan.job_id,
        plan.frame_job_id,
        assignment.lease_token,
    );
    let output = attempt_dir.insert(dir).join(plan.file_name());
    let spec = EncodeSpec::new(plan.scenes.clone(), plan.fps, plan.resolution, plan.container, output)
        .map_err(|error| encode_failed(&error))?;
    // A GIF has no audio: nothing to fetch.
    let audio = match &plan.audio {
        Some(audio) if plan.container.has_audio() => {
            let fetched = tokio::select! {
                fetched = audio::fetch(&context.assets, audio) => fetched,
                () = lease.cancel.cancelled() => return Err(Failed::stopped()),
            };
            let files = fetched.map_err(|message| {
                Failed::new(
                    CrashClass::CacheError,
                    RecoveryAction::RetryElsewhere,
                    "audio_download",
                    message,
                )
            })?;
            Some((audio, files))
        }
        _ => None,
    };
    let spec = match &audio {
        Some((audio, files)) => spec
            .with_audio(audio, &files.files)
            .map_err(|error| encode_failed(&error))?,
        None => spec,
    };

    let tag = format!("{}{}/encode", context.process_tag_prefix, assignment.frame_job_id);
    let mut last_report = Instant::now();
    let mut on_progress = |progress: EncodeProgress| {
        let done = usize::try_from(progress.frames_done).unwrap_or(usize::MAX);
        lease.set_frames_done(i32::try_from(done).unwrap_or(i32::MAX));
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            spawn_progress_report(context, assignment, lease, done, Vec::new());
        }
    };
    info!(
        frame_job_id = %assignment.frame_job_id,
        job_id = %plan.job_id,
        scenes = spec.scenes().len(),
        frames = spec.total_frames(),
        container = plan.container.as_str(),
        "encoding"
    );
    let video = encode::encode(&encoder.tools, &spec, &tag, &lease.cancel, &mut on_progress)
        .await
        .map_err(|error| encode_failed(&error))?;
    drop(audio);

    let checksum = hash_file(&video.path).await.map_err(|error| {
        Failed::new(
            CrashClass::OutputWrite,
            RecoveryAction::RetryElsewhere,
            "encode_io",
            format!("cannot hash {}: {error}", video.path.display()),
        )
    })?;
    let key = ExportKey::new(plan.tenant_id, plan.job_id, &plan.file_name()).map_err(|error| store_failed(&error))?;
    // Only a shutdown stops a store that has begun (module doc).
    let store_cancel = CancellationToken::new();
    let watch = tokio::spawn({
        let (lease, store_cancel) = (lease.clone(), store_cancel.clone());
        async move {
            lease.cancel.cancelled().await;
            if lease.stop_reason() == Some(StopReason::Shutdown) {
                store_cancel.cancel();
            }
        }
    });
    let stored = context
        .exports
        .store(&video.path, &key, &checksum, video.size_bytes, &store_cancel)
        .await;
    watch.abort();
    let stored = stored.map_err(|error| store_failed(&error))?;
    info!(
        frame_job_id = %assignment.frame_job_id,
        location = %stored.location,
        size_bytes = stored.size_bytes,
        adopted = stored.adopted,
        "export stored"
    );
    let probe = &video.probe;
    Ok(ExportRecord {
        location: stored.location,
        format: plan.container.as_str().to_owned(),
        width: i32::try_from(probe.width).unwrap_or(i32::MAX),
        height: i32::try_from(probe.height).unwrap_or(i32::MAX),
        size_bytes: i64::try_from(stored.size_bytes).unwrap_or(i64::MAX),
        duration_seconds: probe.duration_seconds,
        blake3_hex: stored.checksum.to_hex(),
        video_codec: probe.video_codec.clone(),
        audio_codec: probe.audio_codec.clone().unwrap_or_default(),
    })
}

/// BLAKE3 of a file, read on a blocking thread.
async fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path)?)?;
        Ok(ContentHash::from_bytes(*hasher.finalize().as_bytes()))
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn remove_attempt_dir(dir: PathBuf) {
    let path = dir.clone();
    match tokio::task::spawn_blocking(move || workdir::remove_work_folder(&dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            warn!(path = %path.display(), %error, "could not remove the encode's folder; the next start does")
        }
        Err(error) => warn!(path = %path.display(), %error, "removing the encode's folder did not finish"),
    }
}
