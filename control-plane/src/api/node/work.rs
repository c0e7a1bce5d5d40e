//! Work: acquire chunks (long-polling), report progress, complete (batched, each judged on its
//! fencing token), fail.

use std::time::Duration;

use flatrender_proto::{
    pb,
    types::{ContentHash, CrashClass, FieldError, FrameJobId, LeaseToken, NodeId, RecoveryAction},
};
use tonic::Request;
use tracing::{info, instrument};

use super::node_of;
use crate::{
    api::{AppState, bounded_text, convert},
    db::{
        completions::{Completion, CompletionVerdict, ExportReport},
        frame_jobs::LeaseClaim,
    },
    error::ControlPlaneResult,
    leases::{self, FailureReport},
};

const MAX_CHUNKS_PER_ACQUIRE: i32 = 16;
const MAX_COMPLETIONS: usize = 64;
const MAX_LOG_TAIL: usize = 64 * 1024;

/// A lease as a node names it, validated (`field` prefixes the field names).
pub(super) fn lease_claim(
    frame_job_id: &str,
    token: i64,
    node_id: NodeId,
    frames_done: i32,
    field: &str,
) -> Result<LeaseClaim, FieldError> {
    let frame_job_id = FrameJobId::parse_field(frame_job_id, &format!("{field}frame_job_id"))?;
    let token = LeaseToken::new(token, &format!("{field}lease_token"))?;
    if frames_done < 0 {
        return Err(FieldError::new(format!("{field}frames_done"), "must be >= 0"));
    }
    Ok(LeaseClaim {
        frame_job_id,
        token,
        node_id,
        frames_done,
    })
}

#[instrument(skip_all, fields(node_id))]
pub(super) async fn acquire_work(
    state: &AppState,
    request: Request<pb::AcquireWorkRequest>,
) -> ControlPlaneResult<pb::AcquireWorkResponse> {
    let node_id = node_of(state, &request).await?;
    tracing::Span::current().record("node_id", tracing::field::display(node_id));
    state.nodes.record_seen(node_id);
    let message = request.get_ref();
    if !(1..=MAX_CHUNKS_PER_ACQUIRE).contains(&message.max_chunks) {
        return Err(FieldError::new("max_chunks", format!("must be between 1 and {MAX_CHUNKS_PER_ACQUIRE}")).into());
    }
    let max_wait = Duration::from_secs(state.config.dispatch.max_acquire_wait_seconds);
    let wait = match message.wait.as_ref() {
        None => Duration::ZERO,
        Some(wait) => convert::from_duration(Some(wait))
            .filter(|wait| *wait <= max_wait)
            .ok_or_else(|| FieldError::new("wait", format!("must be between 0 and {}s", max_wait.as_secs())))?,
    };
    let assignments = state
        .dispatcher
        .acquire(node_id, i64::from(message.max_chunks), wait)
        .await?;
    Ok(pb::AcquireWorkResponse {
        assignments: assignments.iter().map(convert::assignment).collect(),
    })
}

#[instrument(skip_all, fields(frame_job_id = %request.get_ref().frame_job_id, lease_token = request.get_ref().lease_token))]
pub(super) async fn report_progress(
    state: &AppState,
    request: Request<pb::ReportProgressRequest>,
) -> ControlPlaneResult<pb::ReportProgressResponse> {
    let node_id = node_of(state, &request).await?;
    state.nodes.record_seen(node_id);
    let message = request.get_ref();
    let claim = lease_claim(
        &message.frame_job_id,
        message.lease_token,
        node_id,
        message.frames_done,
        "",
    )?;
    let expires = leases::report_progress(
        &state.pool,
        claim,
        &message.frames_written,
        state.config.dispatch.lease_ttl(),
    )
    .await?;
    Ok(pb::ReportProgressResponse {
        lease_expires_at: Some(convert::timestamp(expires)),
    })
}

/// A reported export, checked field by field (`prefix` names it in errors).
fn export_report(export: &pb::Export, prefix: &str) -> Result<ExportReport, FieldError> {
    let field = |name: &str| format!("{prefix}{name}");
    let location = bounded_text(&export.location, &field("location"), 2048)?;
    if location.is_empty() {
        return Err(FieldError::new(field("location"), "is required"));
    }
    if !matches!(export.format.as_str(), "mp4" | "mov" | "webm" | "gif") {
        return Err(FieldError::new(field("format"), "must be mp4, mov, webm or gif"));
    }
    for (value, name) in [(export.width, "width"), (export.height, "height")] {
        if !(1..=16_384).contains(&value) {
            return Err(FieldError::new(field(name), "must be between 1 and 16384"));
        }
    }
    if export.size_bytes <= 0 {
        return Err(FieldError::new(field("size_bytes"), "must be > 0"));
    }
    let hash = ContentHash::parse_hex(&export.blake3_hex, &field("blake3_hex"))?;
    let duration = export
        .duration
        .as_ref()
        .filter(|duration| duration.seconds >= 0 && (0..1_000_000_000).contains(&duration.nanos))
        .ok_or_else(|| FieldError::new(field("duration"), "is required and must be >= 0"))?;
    let duration_ms = duration
        .seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(duration.nanos / 1_000_000)))
        .ok_or_else(|| FieldError::new(field("duration"), "is too long"))?;
    let codec = |value: &str, name: &str| bounded_text(value, &field(name), 64);
    let video_codec = codec(&export.video_codec, "video_codec")?;
    if video_codec.is_empty() {
        return Err(FieldError::new(field("video_codec"), "is required"));
    }
    Ok(ExportReport {
        location,
        format: export.format.clone(),
        width: export.width,
        height: export.height,
        size_bytes: export.size_bytes,
        blake3_hex: hash.to_hex(),
        duration_ms,
        video_codec,
        audio_codec: codec(&export.audio_codec, "audio_codec")?,
    })
}

#[instrument(skip_all, fields(node_id, chunks = request.get_ref().chunks.len()))]
pub(super) async fn complete_work(
    state: &AppState,
    request: Request<pb::CompleteWorkRequest>,
) -> ControlPlaneResult<pb::CompleteWorkResponse> {
    let node_id = node_of(state, &request).await?;
    tracing::Span::current().record("node_id", tracing::field::display(node_id));
    state.nodes.record_seen(node_id);
    let message = request.get_ref();
    if message.chunks.is_empty() || message.chunks.len() > MAX_COMPLETIONS {
        return Err(FieldError::new("chunks", format!("must hold 1..{MAX_COMPLETIONS} chunks")).into());
    }
    let mut completions = Vec::with_capacity(message.chunks.len());
    for (index, chunk) in message.chunks.iter().enumerate() {
        let claim = lease_claim(
            &chunk.frame_job_id,
            chunk.lease_token,
            node_id,
            0,
            &format!("chunks[{index}]."),
        )?;
        let mut outputs = Vec::with_capacity(chunk.outputs.len());
        for (output_index, output) in chunk.outputs.iter().enumerate() {
            let field = |name: &str| format!("chunks[{index}].outputs[{output_index}].{name}");
            let path = bounded_text(&output.path, &field("path"), 4096)?;
            if path.is_empty() {
                return Err(FieldError::new(field("path"), "is required").into());
            }
            if output.frame < 0 {
                return Err(FieldError::new(field("frame"), "must be >= 0").into());
            }
            if output.size_bytes < 0 {
                return Err(FieldError::new(field("size_bytes"), "must be >= 0").into());
            }
            let hash = ContentHash::parse_hex(&output.blake3_hex, &field("blake3_hex"))?;
            outputs.push(serde_json::json!({"frame": output.frame, "path": path, "size_bytes": output.size_bytes, "blake3": hash.to_hex()}));
        }
        if !chunk.render_seconds.is_finite() || chunk.render_seconds < 0.0 {
            return Err(FieldError::new(format!("chunks[{index}].render_seconds"), "must be >= 0").into());
        }
        completions.push(Completion {
            frame_job_id: claim.frame_job_id,
            token: claim.token,
            outputs: serde_json::Value::Array(outputs),
            render_seconds: chunk.render_seconds,
            export: chunk
                .export
                .as_ref()
                .map(|export| export_report(export, &format!("chunks[{index}].export.")))
                .transpose()?,
        });
    }
    let verdicts = state.completer.complete(node_id, completions).await?;
    let results = verdicts
        .into_iter()
        .map(|(frame_job_id, verdict)| pb::CompletionResult {
            frame_job_id: frame_job_id.to_string(),
            outcome: match verdict {
                CompletionVerdict::Accepted => pb::CompletionOutcome::Accepted,
                CompletionVerdict::Duplicate => pb::CompletionOutcome::Duplicate,
                CompletionVerdict::Stale => pb::CompletionOutcome::StaleLease,
                CompletionVerdict::JobEnded => pb::CompletionOutcome::JobEnded,
            } as i32,
        })
        .collect();
    Ok(pb::CompleteWorkResponse { results })
}

#[instrument(skip_all, fields(frame_job_id = %request.get_ref().frame_job_id, lease_token = request.get_ref().lease_token))]
pub(super) async fn fail_work(
    state: &AppState,
    request: Request<pb::FailWorkRequest>,
) -> ControlPlaneResult<pb::FailWorkResponse> {
    let node_id = node_of(state, &request).await?;
    state.nodes.record_seen(node_id);
    let message = request.get_ref();
    let claim = lease_claim(&message.frame_job_id, message.lease_token, node_id, 0, "")?;
    let error_class = bounded_text(&message.error_class, "error_class", 64)?;
    if message.log_tail.len() > MAX_LOG_TAIL {
        return Err(FieldError::new("log_tail", "must be at most 64 KiB").into());
    }
    let report = FailureReport {
        frame_job_id: claim.frame_job_id,
        token: claim.token,
        crash_class: CrashClass::from_wire_optional(message.crash_class, "crash_class")?.unwrap_or(CrashClass::Unknown),
        error_class: (!error_class.is_empty()).then_some(error_class),
        exit_code: message.exit_code,
        log_tail: message.log_tail.clone(),
        message: bounded_text(&message.message, "message", 4000)?,
        frames_written: message.frames_written.clone(),
        recovery_action: RecoveryAction::from_wire_optional(message.recovery_action, "recovery_action")?
            .unwrap_or(RecoveryAction::RetryElsewhere),
    };
    let will_retry = leases::fail(&state.pool, node_id, &report, &state.metrics).await?;
    if will_retry {
        state.dispatcher.work_added();
    }
    info!(%node_id, will_retry, "failure recorded");
    Ok(pb::FailWorkResponse { will_retry })
}
