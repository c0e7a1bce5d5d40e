//! `render.render_jobs` and the job-level views over `render.frame_jobs`.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{
    ContentHash, FrameRange, HttpUrl, JobId, JobKind, JobStatus, OperatingSystem, SafeName, TemplateId, TenantId,
    UserId, Volume,
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{DbError, job_scenes};
use crate::jobs::model::{AudioSpec, ChunkPlan, Job, JobProgressView, NewJob, Requirements, TemplateSpec};

/// Everything the API shows of a job, with its chunk aggregates.
#[derive(Debug, sqlx::FromRow)]
struct JobRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub saved_project_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub kind: String,
    pub priority: i16,
    pub template_id: Uuid,
    pub template_version: i32,
    pub template_url: String,
    pub template_hash: Vec<u8>,
    pub template_size_bytes: i64,
    pub composition: String,
    pub frame_start: i32,
    pub frame_end: i32,
    pub fps: f64,
    pub output_settings: serde_json::Value,
    pub music_url: Option<String>,
    pub music_volume: Option<f64>,
    pub sfx_url: Option<String>,
    pub sfx_volume: Option<f64>,
    pub voiceover_url: Option<String>,
    pub voiceover_volume: Option<f64>,
    pub audio: Option<serde_json::Value>,
    pub required_os: Option<String>,
    pub required_ae_version: Option<String>,
    pub required_tags: Vec<String>,
    pub max_attempts: i32,
    pub status: String,
    pub frames_total: i32,
    pub chunks_total: i32,
    pub chunks_completed: i32,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub frames_done: i64,
    pub chunks_leased: i64,
    pub seconds_per_frame: Option<f64>,
    /// A saved project's job: its scenes are read in a second statement, only then.
    pub has_scenes: bool,
    pub export: Option<serde_json::Value>,
}

const JOB_COLUMNS: &str = "j.id, j.tenant_id, j.user_id, j.saved_project_id, j.idempotency_key, j.kind, j.priority,
    j.template_id, j.template_version, j.template_url, j.template_hash, j.template_size_bytes, j.composition,
    j.frame_start, j.frame_end, j.fps::float8 AS fps, j.output_settings, j.music_url, j.music_volume::float8 AS music_volume,
    j.sfx_url, j.sfx_volume::float8 AS sfx_volume, j.voiceover_url, j.voiceover_volume::float8 AS voiceover_volume,
    j.audio, j.required_os, j.required_ae_version, j.required_tags, j.max_attempts, j.status, j.frames_total,
    j.chunks_total, agg.chunks_completed, j.failure_reason, j.created_at, j.started_at, j.finished_at, j.updated_at,
    agg.frames_done, agg.chunks_leased, agg.seconds_per_frame,
    EXISTS (SELECT 1 FROM render.job_scenes s WHERE s.job_id = j.id) AS has_scenes,
    CASE WHEN j.status = 'completed' THEN
        (SELECT jsonb_build_object('id', e.id, 'location', e.location, 'format', e.format, 'width', e.width,
                                   'height', e.height, 'size_bytes', e.size_bytes,
                                   'blake3_hex', encode(e.checksum, 'hex'), 'duration_ms', e.duration_ms,
                                   'video_codec', e.video_codec, 'audio_codec', e.audio_codec,
                                   'created_at', e.created_at)
         FROM render.exports e WHERE e.job_id = j.id) END AS export";

// Live progress is counted from the chunks: completions do not update the job row
// (db/sql/complete.sql), so render_jobs.chunks_completed is only written when rendering ends.
const CHUNK_AGGREGATE: &str = "CROSS JOIN LATERAL (
    SELECT coalesce(sum(f.frames_done), 0)::int8 AS frames_done,
           count(*) FILTER (WHERE f.state = 'completed')::int4 AS chunks_completed,
           count(*) FILTER (WHERE f.state = 'leased') AS chunks_leased,
           sum(f.render_seconds) / nullif(sum(f.frame_end - f.frame_start + 1) FILTER (WHERE f.render_seconds IS NOT NULL), 0)
               AS seconds_per_frame
    FROM render.frame_jobs f WHERE f.job_id = j.id AND f.kind = 'render') agg";

/// Inserts a job, its scenes and its chunks; returns `None` when the idempotency key already
/// names a job.
pub(crate) async fn insert_with_chunks(
    connection: &mut PgConnection,
    job: &NewJob,
    chunks: &[ChunkPlan],
    chunk_size: i32,
    max_attempts: i32,
) -> Result<Option<JobId>, DbError> {
    let encode = |error: serde_json::Error| DbError::Other(sqlx::Error::Decode(error.into()));
    let output_settings = serde_json::to_value(&job.output).map_err(encode)?;
    let audio = job
        .audio
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(encode)?;
    // The seed's audio columns keep their meaning for a project's audio too.
    let project_music = job.audio.as_ref().and_then(|audio| audio.music.as_ref());
    let project_voiceover = job.audio.as_ref().and_then(|audio| audio.voiceover.as_ref());
    let music_url = job
        .music
        .as_ref()
        .map(|track| track.url.as_str())
        .or(project_music.map(|music| music.file.url.as_str()));
    let music_volume = job
        .music
        .as_ref()
        .map(|track| track.volume.get())
        .or(project_music.map(|music| music.volume.get()));
    let sfx_volume = job
        .sfx
        .as_ref()
        .map(|track| track.volume.get())
        .or(job.audio.as_ref().map(|audio| audio.sfx_volume.get()));
    let voiceover_url = job
        .voiceover
        .as_ref()
        .map(|track| track.url.as_str())
        .or(project_voiceover.map(|voice| voice.file.url.as_str()));
    let voiceover_volume = job
        .voiceover
        .as_ref()
        .map(|track| track.volume.get())
        .or(project_voiceover.map(|voice| voice.volume.get()));
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO render.render_jobs (
            tenant_id, user_id, saved_project_id, idempotency_key, kind, priority, template_id, template_version,
            template_url, template_hash, template_size_bytes, composition, frame_start, frame_end, fps, output_settings,
            music_url, music_volume, sfx_url, sfx_volume, voiceover_url, voiceover_volume, has_voiceover,
            required_os, required_ae_version, required_tags, chunk_size, max_attempts, frames_total, chunks_total,
            request_hash, audio)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                 $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)
         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(job.tenant_id.as_uuid())
    .bind(job.user_id.as_uuid())
    .bind(job.saved_project_id)
    .bind(&job.idempotency_key)
    .bind(job.kind.as_str())
    .bind(job.priority)
    .bind(job.template.template_id.as_uuid())
    .bind(job.template.version)
    .bind(job.template.url.as_str())
    .bind(&job.template.hash.as_bytes()[..])
    .bind(job.template.size_bytes)
    .bind(job.composition.as_str())
    .bind(job.frame_range.start())
    .bind(job.frame_range.end())
    .bind(job.fps)
    .bind(output_settings)
    .bind(music_url)
    .bind(music_volume)
    .bind(job.sfx.as_ref().map(|track| track.url.as_str()))
    .bind(sfx_volume)
    .bind(voiceover_url)
    .bind(voiceover_volume)
    .bind(voiceover_url.is_some())
    .bind(job.requirements.os.map(|os| os.as_str()))
    .bind(&job.requirements.ae_version)
    .bind(&job.requirements.tags)
    .bind(chunk_size)
    .bind(max_attempts)
    .bind(i32::try_from(job.frame_range.len()).unwrap_or(i32::MAX))
    .bind(i32::try_from(chunks.len()).unwrap_or(i32::MAX))
    .bind(&job.request_hash()[..])
    .bind(audio)
    .fetch_optional(&mut *connection)
    .await?;
    let Some(id) = id else {
        return Ok(None);
    };
    job_scenes::insert(connection, id, &job.scenes).await?;
    let indexes: Vec<i32> = (0..).take(chunks.len()).collect();
    let starts: Vec<i32> = chunks.iter().map(|chunk| chunk.frames.start()).collect();
    let ends: Vec<i32> = chunks.iter().map(|chunk| chunk.frames.end()).collect();
    let scene_indexes: Vec<Option<i32>> = chunks.iter().map(|chunk| chunk.scene_index).collect();
    sqlx::query(
        "INSERT INTO render.frame_jobs (job_id, tenant_id, chunk_index, frame_start, frame_end, priority, queued_at,
                                        template_hash, scene_index)
         SELECT j.id, j.tenant_id, c.chunk_index, c.frame_start, c.frame_end, j.priority, j.created_at, j.template_hash,
                c.scene_index
         FROM render.render_jobs j,
              unnest($2::int4[], $3::int4[], $4::int4[], $5::int4[]) AS c(chunk_index, frame_start, frame_end, scene_index)
         WHERE j.id = $1",
    )
    .bind(id)
    .bind(indexes)
    .bind(starts)
    .bind(ends)
    .bind(scene_indexes)
    .execute(&mut *connection)
    .await?;
    Ok(Some(JobId::from_uuid(id)))
}

/// The job with this idempotency key, if any, and the hash of the request that created it.
pub(crate) async fn find_by_idempotency_key(
    connection: &mut PgConnection,
    tenant_id: TenantId,
    key: &str,
) -> Result<Option<(JobId, Option<Vec<u8>>)>, DbError> {
    let row: Option<(Uuid, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, request_hash FROM render.render_jobs WHERE tenant_id = $1 AND idempotency_key = $2")
            .bind(tenant_id.as_uuid())
            .bind(key)
            .fetch_optional(connection)
            .await?;
    Ok(row.map(|(id, hash)| (JobId::from_uuid(id), hash)))
}

/// How much of a project a read brings back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Scenes with their field values.
    Full,
    /// Scenes without field values (watches poll; lists carry many jobs).
    Summary,
}

/// One job with its progress.
pub(crate) async fn get(connection: &mut PgConnection, id: JobId, detail: Detail) -> Result<Option<Job>, DbError> {
    let row = sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM render.render_jobs j {CHUNK_AGGREGATE} WHERE j.id = $1"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&mut *connection)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let has_scenes = row.has_scenes;
    let mut job = Job::try_from(row)?;
    if has_scenes {
        job.spec.scenes = job_scenes::of_jobs(connection, &[id], detail == Detail::Full)
            .await?
            .remove(&id)
            .unwrap_or_default();
    }
    Ok(Some(job))
}

/// Filters for listing jobs.
pub(crate) struct JobFilter {
    pub tenant_ids: Option<Vec<TenantId>>,
    pub user_id: Option<UserId>,
    pub statuses: Vec<JobStatus>,
    /// Keyset cursor: (created_at, id) of the last job of the previous page.
    pub after: Option<(DateTime<Utc>, JobId)>,
    pub limit: i64,
}

/// Jobs newest first, keyset-paginated.
pub(crate) async fn list(connection: &mut PgConnection, filter: &JobFilter) -> Result<Vec<Job>, DbError> {
    let tenant_ids: Option<Vec<Uuid>> = filter
        .tenant_ids
        .as_ref()
        .map(|ids| ids.iter().map(TenantId::as_uuid).collect());
    let statuses: Vec<&str> = filter.statuses.iter().map(JobStatus::as_str).collect();
    let rows = sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {JOB_COLUMNS} FROM render.render_jobs j {CHUNK_AGGREGATE}
         WHERE ($1::uuid[] IS NULL OR j.tenant_id = ANY($1))
           AND ($2::uuid IS NULL OR j.user_id = $2)
           AND (cardinality($3::text[]) = 0 OR j.status = ANY($3))
           AND ($4::timestamptz IS NULL OR (j.created_at, j.id) < ($4, $5))
         ORDER BY j.created_at DESC, j.id DESC
         LIMIT $6"
    ))
    .bind(tenant_ids)
    .bind(filter.user_id.map(|id| id.as_uuid()))
    .bind(statuses)
    .bind(filter.after.map(|(created_at, _)| created_at))
    .bind(filter.after.map(|(_, id)| id.as_uuid()))
    .bind(filter.limit)
    .fetch_all(&mut *connection)
    .await?;
    let projects: Vec<JobId> = rows
        .iter()
        .filter(|row| row.has_scenes)
        .map(|row| JobId::from_uuid(row.id))
        .collect();
    let mut jobs = rows.into_iter().map(Job::try_from).collect::<Result<Vec<_>, _>>()?;
    if !projects.is_empty() {
        let mut scenes = job_scenes::of_jobs(connection, &projects, false).await?;
        for job in &mut jobs {
            job.spec.scenes = scenes.remove(&job.id).unwrap_or_default();
        }
    }
    Ok(jobs)
}

/// Locks job rows in id order (the schema's lock order: jobs before chunks, each by id).
pub(crate) async fn lock_in_order(connection: &mut PgConnection, ids: &[JobId]) -> Result<(), DbError> {
    let ids: Vec<Uuid> = ids.iter().map(JobId::as_uuid).collect();
    sqlx::query("SELECT id FROM render.render_jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(connection)
        .await?;
    Ok(())
}

/// Locks a job row for a state change; returns its tenant and status.
pub(crate) async fn lock(connection: &mut PgConnection, id: JobId) -> Result<Option<(TenantId, JobStatus)>, DbError> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT tenant_id, status FROM render.render_jobs WHERE id = $1 FOR UPDATE")
            .bind(id.as_uuid())
            .fetch_optional(connection)
            .await?;
    row.map(|(tenant, status)| Ok((TenantId::from_uuid(tenant), parse_status(&status)?)))
        .transpose()
}

/// Cancels a job's pending and leased chunks (their leases stop renewing, late reports are stale).
async fn cancel_unfinished_chunks(connection: &mut PgConnection, id: JobId) -> Result<(), DbError> {
    // Chunks in id order, as everywhere (`frame_jobs::lock_jobs_of_leases`).
    sqlx::query(
        "SELECT id FROM render.frame_jobs WHERE job_id = $1 AND state IN ('pending', 'leased')
         ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(id.as_uuid())
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "UPDATE render.frame_jobs SET state = 'cancelled', lease_expires_at = NULL, updated_at = now()
         WHERE job_id = $1 AND state IN ('pending', 'leased')",
    )
    .bind(id.as_uuid())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Marks a job cancelled and its unfinished chunks cancelled (leases die with them).
pub(crate) async fn cancel(connection: &mut PgConnection, id: JobId) -> Result<(), DbError> {
    cancel_unfinished_chunks(connection, id).await?;
    sqlx::query(
        "UPDATE render.render_jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
    )
    .bind(id.as_uuid())
    .execute(connection)
    .await?;
    Ok(())
}

/// Fails a job with a reason; its other unfinished chunks are cancelled.
pub(crate) async fn fail(connection: &mut PgConnection, id: JobId, reason: &str) -> Result<(), DbError> {
    cancel_unfinished_chunks(connection, id).await?;
    sqlx::query(
        "UPDATE render.render_jobs SET status = 'failed', failure_reason = $2, finished_at = now(), updated_at = now()
         WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
    )
    .bind(id.as_uuid())
    .bind(reason)
    .execute(connection)
    .await?;
    Ok(())
}

/// Puts a failed or cancelled job's unfinished chunks back in the queue with fresh attempts.
pub(crate) async fn retry(connection: &mut PgConnection, id: JobId) -> Result<u64, DbError> {
    let requeued = sqlx::query(
        "UPDATE render.frame_jobs SET state = 'pending', attempt = 0, lease_node_id = NULL, lease_token = NULL,
                lease_expires_at = NULL, last_error_class = NULL, last_error = NULL, updated_at = now()
         WHERE job_id = $1 AND state IN ('failed', 'cancelled')",
    )
    .bind(id.as_uuid())
    .execute(&mut *connection)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM render.job_bad_nodes WHERE job_id = $1")
        .bind(id.as_uuid())
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "UPDATE render.render_jobs
         SET status = CASE WHEN started_at IS NULL THEN 'queued'
                           -- Every chunk in: what is left is the encode.
                           WHEN chunks_completed = chunks_total THEN 'rendered' ELSE 'rendering' END,
             failure_reason = NULL, finished_at = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(id.as_uuid())
    .execute(connection)
    .await?;
    Ok(requeued)
}

/// Parses a stored status.
pub(crate) fn parse_status(text: &str) -> Result<JobStatus, DbError> {
    JobStatus::parse(text)
        .ok_or_else(|| DbError::Other(sqlx::Error::Decode(format!("unknown job status {text:?}").into())))
}

impl TryFrom<JobRow> for Job {
    type Error = DbError;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let decode = |message: String| DbError::Other(sqlx::Error::Decode(message.into()));
        let status = parse_status(&row.status)?;
        let progress = JobProgressView {
            frames_total: row.frames_total,
            frames_done: i32::try_from(row.frames_done).unwrap_or(i32::MAX),
            chunks_total: row.chunks_total,
            chunks_completed: row.chunks_completed,
            chunks_leased: i32::try_from(row.chunks_leased).unwrap_or(i32::MAX),
            seconds_per_frame: row.seconds_per_frame,
        };
        job_from_row(row, status, progress).map_err(decode)
    }
}

/// Job counts per status.
pub(crate) async fn count_by_status(connection: &mut PgConnection) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query_as("SELECT status, count(*) FROM render.render_jobs GROUP BY status ORDER BY status")
        .fetch_all(connection)
        .await?;
    Ok(rows)
}

/// A job from its row, with its parsed status and progress.
fn job_from_row(row: JobRow, status: JobStatus, progress: JobProgressView) -> Result<Job, String> {
    let field_error = |error: flatrender_proto::types::FieldError| format!("stored job {}: {error}", row.id);
    let track = |url: &Option<String>, volume: Option<f64>, field: &str| -> Result<Option<AudioSpec>, String> {
        match url {
            None => Ok(None),
            Some(url) => Ok(Some(AudioSpec {
                url: HttpUrl::parse(url, field).map_err(field_error)?,
                volume: Volume::new(volume.unwrap_or(1.0), field).map_err(field_error)?,
            })),
        }
    };
    // A project's audio replaces the first API's tracks (the seed columns filled from it are
    // not read back as such).
    let audio: Option<flatrender_proto::content::ProjectAudio> = row
        .audio
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| format!("stored job {}: audio: {error}", row.id))?;
    let legacy = audio.is_none();
    let spec = NewJob {
        tenant_id: TenantId::from_uuid(row.tenant_id),
        user_id: UserId::from_uuid(row.user_id),
        saved_project_id: row.saved_project_id,
        idempotency_key: row.idempotency_key.clone(),
        kind: JobKind::parse(&row.kind).ok_or_else(|| format!("stored job {}: unknown kind {}", row.id, row.kind))?,
        priority: row.priority,
        template: TemplateSpec {
            template_id: TemplateId::from_uuid(row.template_id),
            version: row.template_version,
            url: HttpUrl::parse(&row.template_url, "template_url").map_err(field_error)?,
            hash: ContentHash::from_slice(&row.template_hash, "template_hash").map_err(field_error)?,
            size_bytes: row.template_size_bytes,
        },
        composition: SafeName::composition(&row.composition, "composition").map_err(field_error)?,
        frame_range: FrameRange::new(row.frame_start, row.frame_end, "frame_range").map_err(field_error)?,
        fps: row.fps,
        output: serde_json::from_value(row.output_settings.clone())
            .map_err(|error| format!("stored job {}: output_settings: {error}", row.id))?,
        scenes: Vec::new(),
        music: if legacy {
            track(&row.music_url, row.music_volume, "music")?
        } else {
            None
        },
        sfx: if legacy {
            track(&row.sfx_url, row.sfx_volume, "sfx")?
        } else {
            None
        },
        voiceover: if legacy {
            track(&row.voiceover_url, row.voiceover_volume, "voiceover")?
        } else {
            None
        },
        audio,
        requirements: Requirements {
            os: row.required_os.as_deref().and_then(OperatingSystem::parse),
            ae_version: row.required_ae_version.clone(),
            tags: row.required_tags.clone(),
        },
    };
    let export = row
        .export
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| format!("stored job {}: export: {error}", row.id))?;
    Ok(Job {
        export,
        id: JobId::from_uuid(row.id),
        spec,
        max_attempts: row.max_attempts,
        status,
        progress,
        failure_reason: row.failure_reason,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        updated_at: row.updated_at,
    })
}
