//! Render jobs: submission (split into frame chunks in the job's transaction), reads with
//! progress and ETA, cancellation and retry. The job state machine is in `docs/state-machines.md`;
//! the domain types are in `model`.

pub mod model;

pub use crate::db::jobs::Detail;
pub use model::{AudioSpec, ChunkPlan, Job, NewJob, OutputSpec, Requirements, SceneSpec, TemplateSpec};

use flatrender_proto::types::{JobId, JobStatus};
use sqlx::PgPool;
use tracing::info;

use crate::{
    config::DispatchConfig,
    db::{self, DbError},
    error::{ControlPlaneError, ControlPlaneResult},
};

/// Frames per chunk for a job of `frames` frames: at most `chunk_frames`, and small enough that
/// a short job still makes `min_chunks` chunks when it has that many frames.
pub fn chunk_size_for(frames: i64, config: &DispatchConfig) -> i32 {
    let min_chunks = i64::from(config.min_chunks_per_job.max(1));
    let spread = frames.saturating_add(min_chunks - 1) / min_chunks;
    // Clamped into 1..=chunk_frames, so the narrowing cannot fail.
    i32::try_from(spread.clamp(1, i64::from(config.chunk_frames.max(1)))).unwrap_or(1)
}

/// The chunks of a job: its frames cut into `chunk_size` pieces, or each scene's frames for a
/// project (a chunk never spans two scenes; `chunk_index` counts on across scenes, in play order).
pub fn plan_chunks(job: &NewJob, chunk_size: i32) -> Vec<ChunkPlan> {
    if job.scenes.is_empty() {
        return job
            .frame_range
            .chunks(chunk_size)
            .into_iter()
            .map(|frames| ChunkPlan {
                scene_index: None,
                frames,
            })
            .collect();
    }
    (0..)
        .zip(&job.scenes)
        .flat_map(|(index, scene)| {
            scene
                .frame_range
                .chunks(chunk_size)
                .into_iter()
                .map(move |frames| ChunkPlan {
                    scene_index: Some(index),
                    frames,
                })
        })
        .collect()
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
    let chunk_size = chunk_size_for(job.frame_range.len(), config);
    let chunks = plan_chunks(job, chunk_size);
    let mut transaction = pool.begin().await?;
    let inserted =
        db::jobs::insert_with_chunks(&mut transaction, job, &chunks, chunk_size, config.max_attempts).await?;
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
    let stored = db::jobs::get(&mut transaction, id, Detail::Full)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("job {id}")))?;
    transaction.commit().await?;
    if created {
        info!(job_id = %id, tenant_id = %job.tenant_id, frames = %job.frame_range, chunks = chunks.len(), "job submitted");
    }
    Ok((stored, created))
}

/// Reads one job; `detail` says whether a project's field values come along.
pub async fn get(pool: &PgPool, id: JobId, detail: Detail) -> ControlPlaneResult<Job> {
    let mut connection = pool.acquire().await?;
    db::jobs::get(&mut connection, id, detail)
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
    get(pool, id, Detail::Full).await
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
    Ok((get(pool, id, Detail::Full).await?, requeued))
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
}
