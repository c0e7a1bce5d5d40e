//! Completions in `render.frame_jobs`: work items a node reports finished, judged on their fencing
//! tokens (`sql/complete.sql`), then their jobs advanced once that has committed
//! (`sql/advance.sql`): a video job's last chunk queues its encode, a recorded export completes
//! the job. Two statements, no job lock on the way: completions of one job do not queue on its row.

use flatrender_proto::types::{FrameJobId, JobId, JobStatus, LeaseToken, NodeId};
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

/// One reported item of a batch of completion requests.
pub struct BatchItem<'a> {
    /// The request it came in (requests are recorded whole or, when invalid, not at all).
    pub request: i32,
    /// The node that reported it.
    pub node_id: NodeId,
    /// What it reported.
    pub completion: &'a Completion,
}

/// How one reported item was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// A verdict the node is told.
    Verdict(CompletionVerdict),
    /// Its export did not match its kind: nothing of its request was recorded.
    Invalid,
}

/// What one `complete` call did.
#[derive(Debug, Default)]
pub struct CompletionOutcome {
    /// A judgement per input, in input order.
    pub judgements: Vec<(FrameJobId, Judgement)>,
    /// The jobs of the accepted items, each once, for [`advance`].
    pub jobs: Vec<JobId>,
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

/// Completes the items of one or more requests in one statement (`sql/complete.sql`): each
/// request is recorded whole or, when one of its items is invalid, not at all. Run [`advance`]
/// on the returned jobs after it commits.
pub(crate) async fn complete(
    connection: &mut PgConnection,
    items: &[BatchItem<'_>],
) -> Result<CompletionOutcome, DbError> {
    let ids: Vec<Uuid> = items.iter().map(|i| i.completion.frame_job_id.as_uuid()).collect();
    let tokens: Vec<i64> = items.iter().map(|i| i.completion.token.get()).collect();
    let outputs: Vec<serde_json::Value> = items.iter().map(|i| i.completion.outputs.clone()).collect();
    let seconds: Vec<f64> = items.iter().map(|i| i.completion.render_seconds).collect();
    let nodes: Vec<Uuid> = items.iter().map(|i| i.node_id.as_uuid()).collect();
    let requests: Vec<i32> = items.iter().map(|i| i.request).collect();
    let exports: Vec<Option<serde_json::Value>> = items
        .iter()
        .map(|i| i.completion.export.as_ref().map(serde_json::to_value).transpose())
        .collect::<Result<_, _>>()
        .map_err(|error| DbError::Other(sqlx::Error::Encode(error.into())))?;
    let rows: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(include_str!("sql/complete.sql"))
        .bind(ids)
        .bind(tokens)
        .bind(outputs)
        .bind(seconds)
        .bind(nodes)
        .bind(exports)
        .bind(requests)
        .fetch_all(connection)
        .await?;
    let mut outcome = CompletionOutcome::default();
    for (id, verdict, job) in rows {
        let judgement = match verdict.as_str() {
            "accepted" => Judgement::Verdict(CompletionVerdict::Accepted),
            "duplicate" => Judgement::Verdict(CompletionVerdict::Duplicate),
            "job_ended" => Judgement::Verdict(CompletionVerdict::JobEnded),
            "invalid" => Judgement::Invalid,
            _ => Judgement::Verdict(CompletionVerdict::Stale),
        };
        outcome.judgements.push((FrameJobId::from_uuid(id), judgement));
        if let Some(job) = job.map(JobId::from_uuid)
            && !outcome.jobs.contains(&job)
        {
            outcome.jobs.push(job);
        }
    }
    Ok(outcome)
}

/// A job [`advance`] moved on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advanced {
    /// The job.
    pub job_id: JobId,
    /// Its new status.
    pub status: JobStatus,
    /// Every chunk is in and its encode was queued.
    pub encode_queued: bool,
}

/// Advances `jobs` after completions of their work items committed (`sql/advance.sql`); cheap
/// when nothing changes. Also the reaper's repair for jobs left behind by a control plane that
/// died between the two statements.
pub(crate) async fn advance(connection: &mut PgConnection, jobs: &[JobId]) -> Result<Vec<Advanced>, DbError> {
    let ids: Vec<Uuid> = jobs.iter().map(JobId::as_uuid).collect();
    let rows: Vec<(Uuid, String, bool)> = sqlx::query_as(include_str!("sql/advance.sql"))
        .bind(ids)
        .fetch_all(connection)
        .await?;
    rows.into_iter()
        .map(|(id, status, encode_queued)| {
            Ok(Advanced {
                job_id: JobId::from_uuid(id),
                status: super::jobs::parse_status(&status)?,
                encode_queued,
            })
        })
        .collect()
}

/// Active jobs whose status may lag their chunks (see [`advance`]): every render chunk in while
/// the job is queued or rendering, or the encode in while it is rendered or encoding; at most
/// `limit`, for the reaper.
pub(crate) async fn lagging_jobs(connection: &mut PgConnection, limit: i64) -> Result<Vec<JobId>, DbError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT j.id FROM render.render_jobs j
         WHERE j.status IN ('queued', 'rendering', 'rendered', 'encoding')
           AND CASE WHEN j.status IN ('queued', 'rendering')
                    THEN NOT EXISTS (SELECT 1 FROM render.frame_jobs f
                                     WHERE f.tenant_id = j.tenant_id AND f.job_id = j.id AND f.state = 'leased'
                                       AND f.kind = 'render')
                         AND (SELECT f.chunk_index FROM render.frame_jobs f
                              WHERE f.job_id = j.id AND f.state = 'pending' AND f.kind = 'render'
                              ORDER BY f.chunk_index LIMIT 1) IS NULL
                    ELSE EXISTS (SELECT 1 FROM render.frame_jobs f
                                 WHERE f.job_id = j.id AND f.kind = 'encode' AND f.state = 'completed') END
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    Ok(ids.into_iter().map(JobId::from_uuid).collect())
}
