//! Render jobs: submission (split into frame chunks in the job's transaction), reads with
//! progress and ETA, cancellation and retry. The job state machine is in `docs/state-machines.md`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flatrender_proto::types::{
    ContentHash, FrameRange, HttpUrl, JobId, JobKind, JobStatus, OperatingSystem, SafeName, TemplateId, TenantId,
    UserId, Volume,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::info;
use uuid::Uuid;

use crate::{
    config::DispatchConfig,
    db::{self, DbError, jobs::JobRow},
    error::{ControlPlaneError, ControlPlaneResult},
};

/// The template a job renders.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateSpec {
    /// `content.templates.id`.
    pub template_id: TemplateId,
    /// Template version.
    pub version: i32,
    /// Where agents download it.
    pub url: HttpUrl,
    /// BLAKE3 of the file.
    pub hash: ContentHash,
    /// File size.
    pub size_bytes: i64,
}

/// How frames are written (stored as `render_jobs.output_settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Frame file stem.
    pub output_name: SafeName,
    /// AE output module template, if not the default.
    pub output_module_template: Option<String>,
    /// AE render settings template, if not the default.
    pub render_settings_template: Option<String>,
    /// Final container.
    pub container: String,
    /// Width in pixels (0: the comp's).
    pub width: i32,
    /// Height in pixels (0: the comp's).
    pub height: i32,
}

/// One audio track.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioSpec {
    /// Where it is.
    pub url: HttpUrl,
    /// Its gain.
    pub volume: Volume,
}

/// What a node must offer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Operating system, if it matters.
    pub os: Option<OperatingSystem>,
    /// After Effects version prefix, if it matters.
    pub ae_version: Option<String>,
    /// Tags the node must carry.
    pub tags: Vec<String>,
}

/// A validated submission.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Owner tenant.
    pub tenant_id: TenantId,
    /// Submitting user.
    pub user_id: UserId,
    /// `studio.saved_projects.id`.
    pub saved_project_id: Option<Uuid>,
    /// Client idempotency key.
    pub idempotency_key: Option<String>,
    /// Export, preview or snapshot.
    pub kind: JobKind,
    /// 0..=100.
    pub priority: i16,
    /// Template.
    pub template: TemplateSpec,
    /// Composition to render.
    pub composition: SafeName,
    /// Frames.
    pub frame_range: FrameRange,
    /// Frames per second.
    pub fps: f64,
    /// Output.
    pub output: OutputSpec,
    /// Music track.
    pub music: Option<AudioSpec>,
    /// Sound effects track.
    pub sfx: Option<AudioSpec>,
    /// Voiceover track (`has_voiceover` is derived from it).
    pub voiceover: Option<AudioSpec>,
    /// Node requirements.
    pub requirements: Requirements,
}

impl NewJob {
    /// BLAKE3 of the canonical submission: every field, labelled and length-prefixed, so two
    /// requests hash alike exactly when they ask for the same job. A resubmission under an
    /// idempotency key must match the stored hash. A field added to `NewJob` must be added here.
    pub fn request_hash(&self) -> [u8; 32] {
        let mut canonical = Canonical::default();
        canonical.put("tenant_id", &self.tenant_id.to_string());
        canonical.put("user_id", &self.user_id.to_string());
        canonical.put_opt("saved_project_id", self.saved_project_id.map(|id| id.to_string()));
        canonical.put_opt("idempotency_key", self.idempotency_key.clone());
        canonical.put("kind", self.kind.as_str());
        canonical.put("priority", &self.priority.to_string());
        canonical.put("template.id", &self.template.template_id.to_string());
        canonical.put("template.version", &self.template.version.to_string());
        canonical.put("template.url", self.template.url.as_str());
        canonical.put("template.hash", &self.template.hash.to_hex());
        canonical.put("template.size_bytes", &self.template.size_bytes.to_string());
        canonical.put("composition", self.composition.as_str());
        canonical.put("frame_range", &self.frame_range.to_string());
        // Bit-exact: 25.0 and 25.000001 are different jobs.
        canonical.put("fps", &self.fps.to_bits().to_string());
        let output = serde_json::to_string(&self.output).unwrap_or_default();
        canonical.put("output", &output);
        for (name, track) in [
            ("music", &self.music),
            ("sfx", &self.sfx),
            ("voiceover", &self.voiceover),
        ] {
            canonical.put_opt(
                name,
                track
                    .as_ref()
                    .map(|track| format!("{} {}", track.url.as_str(), track.volume.get().to_bits())),
            );
        }
        canonical.put_opt("requirements.os", self.requirements.os.map(|os| os.as_str().to_owned()));
        canonical.put_opt("requirements.ae_version", self.requirements.ae_version.clone());
        let mut tags = self.requirements.tags.clone();
        tags.sort();
        tags.dedup();
        canonical.put("requirements.tags", &tags.join(","));
        *canonical.hasher.finalize().as_bytes()
    }
}

/// Builds a canonical byte string of labelled, length-prefixed values, hashing as it goes.
#[derive(Default)]
struct Canonical {
    hasher: blake3::Hasher,
}

impl Canonical {
    fn put(&mut self, label: &str, value: &str) {
        for part in [label, value] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part.as_bytes());
        }
    }

    fn put_opt(&mut self, label: &str, value: Option<String>) {
        match value {
            // A present empty value and an absent one differ.
            Some(value) => self.put(label, &format!("={value}")),
            None => self.put(label, ""),
        }
    }
}

/// Progress figures of a job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobProgressView {
    /// Frames in the job.
    pub frames_total: i32,
    /// Frames rendered so far.
    pub frames_done: i32,
    /// Chunks in the job.
    pub chunks_total: i32,
    /// Chunks completed.
    pub chunks_completed: i32,
    /// Chunks under a live lease.
    pub chunks_leased: i32,
    /// Observed render time per frame, when any chunk finished.
    pub seconds_per_frame: Option<f64>,
}

impl JobProgressView {
    /// Time left: remaining frames × observed seconds per frame, divided by the chunks running
    /// in parallel (at least one). `None` until a chunk has finished.
    pub fn eta(&self) -> Option<Duration> {
        let seconds_per_frame = self.seconds_per_frame?;
        let remaining = f64::from((self.frames_total - self.frames_done).max(0));
        let parallelism = f64::from(self.chunks_leased.max(1));
        Some(Duration::from_secs_f64(
            (remaining * seconds_per_frame / parallelism).max(0.0),
        ))
    }
}

/// A job as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// The submission.
    pub spec: NewJob,
    /// Attempts per chunk.
    pub max_attempts: i32,
    /// Current status.
    pub status: JobStatus,
    /// Progress.
    pub progress: JobProgressView,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Submitted.
    pub created_at: DateTime<Utc>,
    /// First chunk leased.
    pub started_at: Option<DateTime<Utc>>,
    /// Reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Job {
    pub(crate) fn from_row_parts(row: JobRow, status: JobStatus, progress: JobProgressView) -> Result<Self, String> {
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
        let spec = NewJob {
            tenant_id: TenantId::from_uuid(row.tenant_id),
            user_id: UserId::from_uuid(row.user_id),
            saved_project_id: row.saved_project_id,
            idempotency_key: row.idempotency_key.clone(),
            kind: JobKind::parse(&row.kind)
                .ok_or_else(|| format!("stored job {}: unknown kind {}", row.id, row.kind))?,
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
            music: track(&row.music_url, row.music_volume, "music")?,
            sfx: track(&row.sfx_url, row.sfx_volume, "sfx")?,
            voiceover: track(&row.voiceover_url, row.voiceover_volume, "voiceover")?,
            requirements: Requirements {
                os: row.required_os.as_deref().and_then(OperatingSystem::parse),
                ae_version: row.required_ae_version.clone(),
                tags: row.required_tags.clone(),
            },
        };
        Ok(Job {
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
}

/// Frames per chunk for a job of `frames` frames: at most `chunk_frames`, and small enough that
/// a short job still makes `min_chunks` chunks when it has that many frames.
pub fn chunk_size_for(frames: i64, config: &DispatchConfig) -> i32 {
    let min_chunks = i64::from(config.min_chunks_per_job.max(1));
    let spread = frames.saturating_add(min_chunks - 1) / min_chunks;
    // Clamped into 1..=chunk_frames, so the narrowing cannot fail.
    i32::try_from(spread.clamp(1, i64::from(config.chunk_frames.max(1)))).unwrap_or(1)
}

/// Submits a job: one transaction inserts the job and all its chunks and wakes waiting nodes.
/// Returns the job and whether it was created (false: the idempotency key matched).
pub async fn submit(pool: &PgPool, job: &NewJob, config: &DispatchConfig) -> ControlPlaneResult<(Job, bool)> {
    if job.frame_range.len() > i64::from(config.max_frames_per_job) {
        return Err(flatrender_proto::types::FieldError::new(
            "frame_range",
            format!(
                "spans {} frames; the maximum is {}",
                job.frame_range.len(),
                config.max_frames_per_job
            ),
        )
        .into());
    }
    let chunks = job.frame_range.chunks(chunk_size_for(job.frame_range.len(), config));
    let mut transaction = pool.begin().await?;
    let inserted = db::jobs::insert_with_chunks(&mut transaction, job, &chunks, config.max_attempts).await?;
    let (id, created) = match inserted {
        Some(id) => {
            db::frame_jobs::notify_work(&mut transaction).await?;
            (id, true)
        }
        None => {
            let key = job.idempotency_key.as_deref().unwrap_or_default();
            let (existing, stored_hash) = db::jobs::find_by_idempotency_key(&mut transaction, job.tenant_id, key)
                .await?
                .ok_or_else(|| ControlPlaneError::Aborted("idempotency key raced with a deletion; retry".into()))?;
            // Jobs stored before hashes were kept have none: they match any resubmission.
            if stored_hash.is_some_and(|stored| stored.as_slice() != job.request_hash().as_slice()) {
                return Err(ControlPlaneError::AlreadyExists(format!(
                    "idempotency_key {key:?} was already used for job {existing} with a different request; \
                     resubmit the identical request to get that job, or use a new key for a new job"
                )));
            }
            (existing, false)
        }
    };
    let stored = db::jobs::get(&mut transaction, id)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("job {id}")))?;
    transaction.commit().await?;
    if created {
        info!(job_id = %id, tenant_id = %job.tenant_id, frames = %job.frame_range, chunks = chunks.len(), "job submitted");
    }
    Ok((stored, created))
}

/// Reads one job.
pub async fn get(pool: &PgPool, id: JobId) -> ControlPlaneResult<Job> {
    let mut connection = pool.acquire().await?;
    db::jobs::get(&mut connection, id)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("job {id}")))
}

/// Cancels a job unless it already ended; running chunks are told to stop at their next
/// heartbeat (their leases no longer renew) and their results are discarded.
pub async fn cancel(pool: &PgPool, id: JobId, reason: &str) -> ControlPlaneResult<Job> {
    let mut transaction = pool.begin().await?;
    let (_, status) = db::jobs::lock(&mut transaction, id)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("job {id}")))?;
    if status.is_terminal() {
        return Err(ControlPlaneError::FailedPrecondition(format!(
            "job {id} is already {status}"
        )));
    }
    db::jobs::cancel(&mut transaction, id).await?;
    transaction.commit().await?;
    info!(job_id = %id, reason, "job cancelled");
    get(pool, id).await
}

/// Requeues a failed or cancelled job's unfinished chunks; returns the job and how many moved.
pub async fn retry(pool: &PgPool, id: JobId) -> ControlPlaneResult<(Job, u64)> {
    let mut transaction = pool.begin().await?;
    let (_, status) = db::jobs::lock(&mut transaction, id)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("job {id}")))?;
    if !matches!(status, JobStatus::Failed | JobStatus::Cancelled) {
        return Err(ControlPlaneError::FailedPrecondition(format!(
            "job {id} is {status}; only failed or cancelled jobs can be retried"
        )));
    }
    let requeued = db::jobs::retry(&mut transaction, id).await?;
    db::frame_jobs::notify_work(&mut transaction).await?;
    transaction.commit().await?;
    info!(job_id = %id, requeued, "job retried");
    Ok((get(pool, id).await?, requeued))
}

/// Lists jobs (see [`db::jobs::JobFilter`]).
pub(crate) async fn list(pool: &PgPool, filter: &db::jobs::JobFilter) -> Result<Vec<Job>, DbError> {
    let mut connection = pool.acquire().await?;
    db::jobs::list(&mut connection, filter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long jobs use the configured chunk size; short ones still spread over several chunks.
    #[test]
    fn chunk_sizes() {
        let config = DispatchConfig {
            chunk_frames: 50,
            min_chunks_per_job: 4,
            ..DispatchConfig::default()
        };
        assert_eq!(chunk_size_for(1000, &config), 50);
        assert_eq!(chunk_size_for(100, &config), 25);
        assert_eq!(chunk_size_for(3, &config), 1);
        assert_eq!(chunk_size_for(1, &config), 1);
    }

    /// ETA divides the remaining work by the running parallelism, and is unknown before data.
    #[test]
    fn eta_from_observed_frame_times() {
        let mut progress = JobProgressView {
            frames_total: 100,
            frames_done: 40,
            chunks_total: 4,
            chunks_completed: 1,
            chunks_leased: 2,
            seconds_per_frame: None,
        };
        assert_eq!(progress.eta(), None);
        progress.seconds_per_frame = Some(0.5);
        assert_eq!(progress.eta(), Some(Duration::from_secs(15)));
    }
}
