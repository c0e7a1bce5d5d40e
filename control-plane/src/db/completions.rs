//! Completions in `render.frame_jobs`: work items a node reports finished, judged on their fencing
//! tokens, advancing their jobs in one statement (`sql/complete.sql`): a video job's last chunk
//! queues its encode, the encode's export is recorded and completes the job.

use flatrender_proto::types::{FrameJobId, JobId, LeaseToken, NodeId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;

/// One finished chunk as reported.
pub struct Completion {
    /// The chunk.
    pub frame_job_id: FrameJobId,
    /// Its fencing token.
    pub token: LeaseToken,
    /// Frame files as JSON (frame, path, size, blake3).
    pub outputs: serde_json::Value,
    /// Wall time spent rendering.
    pub render_seconds: f64,
    /// The stored video, for an encode item (required then, refused otherwise).
    pub export: Option<ExportReport>,
}

/// A stored, verified video as the encoding node reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExportReport {
    /// Path on the shared folder or http(s) URL.
    pub location: String,
    /// mp4, mov, webm or gif.
    pub format: String,
    /// Pixels.
    pub width: i32,
    /// Pixels.
    pub height: i32,
    /// File size.
    pub size_bytes: i64,
    /// BLAKE3 of the file, lowercase hex.
    pub blake3_hex: String,
    /// Length of the video.
    pub duration_ms: i64,
    /// ffprobe's name of the video codec.
    pub video_codec: String,
    /// ffprobe's name of the audio codec (empty: no audio stream).
    pub audio_codec: String,
}

/// What one `complete` call did.
#[derive(Debug, Default)]
pub struct CompletionOutcome {
    /// A verdict per input, in input order.
    pub verdicts: Vec<(FrameJobId, CompletionVerdict)>,
    /// Jobs this call completed.
    pub finished_jobs: Vec<JobId>,
    /// Jobs whose every chunk is now in and whose encode was queued.
    pub encode_queued: Vec<JobId>,
    /// Inputs whose export did not match their kind (index into the input).
    pub invalid: Vec<usize>,
}

/// How a completion was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionVerdict {
    /// Recorded.
    Accepted,
    /// Already recorded with this token (a redelivery).
    Duplicate,
    /// The lease was lost; the result was discarded.
    Stale,
    /// The lease was lost because the job was cancelled or failed; the result was discarded
    /// (and a stored export of it should be removed).
    JobEnded,
}

/// Completes work items and advances their jobs, in one statement (`sql/complete.sql`). When
/// `invalid` is not empty the caller must roll back.
pub(crate) async fn complete(
    connection: &mut PgConnection,
    node_id: NodeId,
    completions: &[Completion],
) -> Result<CompletionOutcome, DbError> {
    let ids: Vec<Uuid> = completions.iter().map(|c| c.frame_job_id.as_uuid()).collect();
    let tokens: Vec<i64> = completions.iter().map(|c| c.token.get()).collect();
    let outputs: Vec<serde_json::Value> = completions.iter().map(|c| c.outputs.clone()).collect();
    let seconds: Vec<f64> = completions.iter().map(|c| c.render_seconds).collect();
    let exports: Vec<Option<serde_json::Value>> = completions
        .iter()
        .map(|c| c.export.as_ref().map(serde_json::to_value).transpose())
        .collect::<Result<_, _>>()
        .map_err(|error| DbError::Other(sqlx::Error::Encode(error.into())))?;
    let rows: Vec<(Uuid, String, Option<Uuid>, Option<Uuid>)> = sqlx::query_as(include_str!("sql/complete.sql"))
        .bind(ids)
        .bind(tokens)
        .bind(outputs)
        .bind(seconds)
        .bind(node_id.as_uuid())
        .bind(exports)
        .fetch_all(connection)
        .await?;
    let mut outcome = CompletionOutcome::default();
    for (index, (id, verdict, finished_job, encode_job)) in rows.into_iter().enumerate() {
        let verdict = match verdict.as_str() {
            "accepted" => CompletionVerdict::Accepted,
            "duplicate" => CompletionVerdict::Duplicate,
            "job_ended" => CompletionVerdict::JobEnded,
            "invalid" => {
                outcome.invalid.push(index);
                CompletionVerdict::Stale
            }
            _ => CompletionVerdict::Stale,
        };
        outcome.verdicts.push((FrameJobId::from_uuid(id), verdict));
        outcome.finished_jobs.extend(finished_job.map(JobId::from_uuid));
        outcome.encode_queued.extend(encode_job.map(JobId::from_uuid));
    }
    Ok(outcome)
}
