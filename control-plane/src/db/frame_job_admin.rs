//! Ops views and moves over `render.frame_jobs`: listing by selector and requeueing.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{FrameJobId, FrameJobState, FrameRange, JobId, NodeId, TenantId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    DbError,
    frame_jobs::{LeaseSelector, requeue_leases},
};
use crate::views::FrameJobView;

/// A chunk row as ops see it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct FrameJobRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub chunk_index: i32,
    pub frame_start: i32,
    pub frame_end: i32,
    pub state: String,
    pub attempt: i32,
    pub lease_node_id: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub frames_done: i32,
    pub last_error_class: Option<String>,
    pub last_error: Option<String>,
    /// Name of the node holding the lease.
    pub lease_node_name: Option<String>,
    pub kind: String,
}

impl TryFrom<FrameJobRow> for FrameJobView {
    type Error = DbError;

    fn try_from(row: FrameJobRow) -> Result<Self, DbError> {
        Ok(FrameJobView {
            id: FrameJobId::from_uuid(row.id),
            job_id: JobId::from_uuid(row.job_id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            chunk_index: row.chunk_index,
            frame_range: FrameRange::new(row.frame_start, row.frame_end, "frame_range").map_err(super::corrupt)?,
            state: super::stored(FrameJobState::parse(&row.state), "chunk state", &row.state)?,
            attempt: row.attempt,
            lease_node_id: row.lease_node_id.map(NodeId::from_uuid),
            lease_node_name: row.lease_node_name,
            lease_expires_at: row.lease_expires_at,
            frames_done: row.frames_done,
            last_error_class: row.last_error_class,
            last_error: row.last_error,
            encode: row.kind == "encode",
        })
    }
}

fn views(rows: Vec<FrameJobRow>) -> Result<Vec<FrameJobView>, DbError> {
    rows.into_iter().map(FrameJobView::try_from).collect()
}

/// Which chunks ops want to act on (fields combine with AND).
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameSelector {
    pub job_id: Option<JobId>,
    pub node_id: Option<NodeId>,
    pub tenant_id: Option<TenantId>,
    pub states: Vec<FrameJobState>,
    pub error_class: Option<String>,
}

const SELECT_COLUMNS: &str =
    "f.id, f.job_id, f.tenant_id, f.chunk_index, f.frame_start, f.frame_end, f.state, f.attempt,
    f.lease_node_id, f.lease_expires_at, f.frames_done, f.last_error_class, f.last_error,
    n.name AS lease_node_name, f.kind";

/// Joined by every chunk query so rows carry the lease holder's name.
const NODE_JOIN: &str = "LEFT JOIN render.nodes n ON n.id = f.lease_node_id";

/// Chunks matching `selector` in jobs that were not cancelled, at most `limit` (not locked: a
/// move locks jobs, then chunks, in id order).
pub(crate) async fn select(
    connection: &mut PgConnection,
    selector: &FrameSelector,
    limit: i64,
) -> Result<Vec<FrameJobView>, DbError> {
    let states: Vec<&str> = selector.states.iter().map(FrameJobState::as_str).collect();
    let rows = sqlx::query_as::<_, FrameJobRow>(&format!(
        "SELECT {SELECT_COLUMNS} FROM render.frame_jobs f JOIN render.render_jobs j ON j.id = f.job_id {NODE_JOIN}
         WHERE ($1::uuid IS NULL OR f.job_id = $1) AND ($2::uuid IS NULL OR f.lease_node_id = $2)
           AND ($3::uuid IS NULL OR f.tenant_id = $3) AND f.state = ANY($4::text[])
           AND ($5::text IS NULL OR f.last_error_class = $5) AND j.status <> 'cancelled'
         ORDER BY f.job_id, f.chunk_index LIMIT $6"
    ))
    .bind(selector.job_id.map(|id| id.as_uuid()))
    .bind(selector.node_id.map(|id| id.as_uuid()))
    .bind(selector.tenant_id.map(|id| id.as_uuid()))
    .bind(states)
    .bind(&selector.error_class)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    views(rows)
}

/// Chunks currently leased by a node.
pub(crate) async fn running_on(connection: &mut PgConnection, node_id: NodeId) -> Result<Vec<FrameJobView>, DbError> {
    let rows = sqlx::query_as::<_, FrameJobRow>(&format!(
        "SELECT {SELECT_COLUMNS} FROM render.frame_jobs f {NODE_JOIN}
         WHERE f.lease_node_id = $1 AND f.state = 'leased'
         ORDER BY f.leased_at"
    ))
    .bind(node_id.as_uuid())
    .fetch_all(connection)
    .await?;
    views(rows)
}

/// Every chunk of `job_id` in `states` (all states when empty), in chunk order.
pub(crate) async fn list_for_job(
    connection: &mut PgConnection,
    job_id: JobId,
    states: &[FrameJobState],
) -> Result<Vec<FrameJobView>, DbError> {
    let states: Vec<&str> = states.iter().map(FrameJobState::as_str).collect();
    let rows = sqlx::query_as::<_, FrameJobRow>(&format!(
        "SELECT {SELECT_COLUMNS} FROM render.frame_jobs f {NODE_JOIN}
         WHERE f.job_id = $1 AND (cardinality($2::text[]) = 0 OR f.state = ANY($2::text[]))
         ORDER BY f.chunk_index"
    ))
    .bind(job_id.as_uuid())
    .bind(states)
    .fetch_all(connection)
    .await?;
    views(rows)
}

/// Puts the given chunks back in the queue: leased ones lose their lease (without using up an
/// attempt), failed ones start over, and a job that had failed because of them is revived with
/// its cancelled chunks. Returns how many chunks moved.
pub(crate) async fn requeue(connection: &mut PgConnection, chunks: &[FrameJobView]) -> Result<u64, DbError> {
    let leased: Vec<FrameJobId> = chunks
        .iter()
        .filter(|chunk| chunk.state == FrameJobState::Leased)
        .map(|chunk| chunk.id)
        .collect();
    let failed: Vec<Uuid> = chunks
        .iter()
        .filter(|chunk| chunk.state == FrameJobState::Failed)
        .map(|chunk| chunk.id.as_uuid())
        .collect();
    let mut moved = requeue_leases(
        connection,
        LeaseSelector::Chunks(&leased),
        false,
        "requeued_by_ops",
        "requeued by ops",
    )
    .await?
    .len() as u64;
    if failed.is_empty() {
        return Ok(moved);
    }
    let revived_jobs: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE render.render_jobs SET status = CASE WHEN started_at IS NULL THEN 'queued'
                                                     WHEN chunks_completed = chunks_total THEN 'rendered'
                                                     ELSE 'rendering' END,
                failure_reason = NULL, finished_at = NULL, updated_at = now()
         WHERE status = 'failed' AND id IN (SELECT job_id FROM render.frame_jobs WHERE id = ANY($1))
         RETURNING id",
    )
    .bind(&failed)
    .fetch_all(&mut *connection)
    .await?;
    moved += sqlx::query(
        "UPDATE render.frame_jobs SET state = 'pending', attempt = 0, lease_token = NULL, lease_expires_at = NULL,
                frames_done = 0, updated_at = now()
         WHERE (id = ANY($1) AND state = 'failed') OR (job_id = ANY($2) AND state = 'cancelled')",
    )
    .bind(&failed)
    .bind(&revived_jobs)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(moved)
}
