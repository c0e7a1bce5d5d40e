//! Frame retention in `render.frame_jobs`: which finished jobs' frames a node still holds past
//! the retention time, and its confirmation that it removed them.

use flatrender_proto::types::{JobId, NodeId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;

/// Jobs that ended (completed or cancelled) more than `retention_seconds` ago and whose frames
/// `node_id` rendered and has not yet confirmed removing; at most `limit`, oldest first.
pub(crate) async fn frames_due(
    connection: &mut PgConnection,
    node_id: NodeId,
    retention_seconds: f64,
    limit: i64,
) -> Result<Vec<JobId>, DbError> {
    let jobs: Vec<Uuid> = sqlx::query_scalar(
        "SELECT j.id
         FROM render.render_jobs j
         WHERE j.status IN ('completed', 'cancelled') AND j.finished_at < now() - make_interval(secs => $2)
           AND EXISTS (SELECT 1 FROM render.frame_jobs f
                       WHERE f.job_id = j.id AND f.lease_node_id = $1 AND f.state = 'completed'
                         AND f.kind = 'render' AND f.frames_removed_at IS NULL)
         ORDER BY j.finished_at
         LIMIT $3",
    )
    .bind(node_id.as_uuid())
    .bind(retention_seconds)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    Ok(jobs.into_iter().map(JobId::from_uuid).collect())
}

/// Marks the chunks `node_id` rendered of `jobs` as removed from it; only jobs past retention
/// count (a node cannot mark a running job's frames gone). Returns the chunks marked.
pub(crate) async fn confirm_removed(
    connection: &mut PgConnection,
    node_id: NodeId,
    jobs: &[JobId],
    retention_seconds: f64,
) -> Result<u64, DbError> {
    let ids: Vec<Uuid> = jobs.iter().map(|job| job.as_uuid()).collect();
    let marked = sqlx::query(
        "UPDATE render.frame_jobs f SET frames_removed_at = now()
         FROM render.render_jobs j
         WHERE f.job_id = ANY($2) AND f.lease_node_id = $1 AND f.state = 'completed' AND f.kind = 'render'
           AND f.frames_removed_at IS NULL AND j.id = f.job_id AND j.status IN ('completed', 'cancelled')
           AND j.finished_at < now() - make_interval(secs => $3)",
    )
    .bind(node_id.as_uuid())
    .bind(ids)
    .bind(retention_seconds)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(marked)
}
