//! `render.frame_jobs`: claiming chunks under leases, renewing, completing, failing and
//! requeueing them. Every statement that acts on a lease names its fencing token in the `WHERE`,
//! so a report from a node that lost the lease matches no row.

use chrono::{DateTime, Utc};
use flatrender_proto::content::SceneContent;
use flatrender_proto::types::{
    ContentHash, FrameJobId, FrameRange, HttpUrl, JobId, LeaseToken, NodeId, SafeName, TemplateId, TenantId,
};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::DbError;
use crate::jobs::model::{Assignment, EncodeScene, EncodeWork, TemplateSpec};

/// The channel `NOTIFY`'d once per transaction that makes work claimable.
pub const WORK_CHANNEL: &str = "flatrender_work";

/// Who is claiming, and how.
pub(crate) struct ClaimRequest<'a> {
    pub node_id: NodeId,
    pub os: &'a str,
    pub ae_version: &'a str,
    pub tags: &'a [String],
    pub max_chunks: i64,
    pub lease_ttl_seconds: f64,
    pub default_guaranteed: i32,
    pub default_burst: i32,
    pub cached_hashes: &'a [Vec<u8>],
    pub window: i64,
    pub tenants_considered: i64,
    pub bad_node_grace_seconds: f64,
    pub renders: bool,
    pub encodes: bool,
}

/// A freshly leased chunk with what the node needs to render it.
#[derive(Debug, sqlx::FromRow)]
struct ClaimedRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub chunk_index: i32,
    pub frame_start: i32,
    pub frame_end: i32,
    pub lease_token: i64,
    pub lease_expires_at: DateTime<Utc>,
    pub attempt: i32,
    pub frames_written: Vec<i32>,
    pub template_id: Uuid,
    pub template_version: i32,
    pub template_url: String,
    pub template_hash: Vec<u8>,
    pub template_size_bytes: i64,
    pub composition: String,
    pub fps: f64,
    pub output_settings: serde_json::Value,
    pub scene_index: Option<i32>,
    pub scene_id: Option<Uuid>,
    pub scene_fields: Option<serde_json::Value>,
    pub kind: String,
    pub audio: Option<serde_json::Value>,
    pub encode_scenes: Option<serde_json::Value>,
}

/// Claims chunks for a node (see `sql/claim.sql`).
pub(crate) async fn claim(
    connection: &mut PgConnection,
    request: &ClaimRequest<'_>,
) -> Result<Vec<Assignment>, DbError> {
    let rows = sqlx::query_as::<_, ClaimedRow>(include_str!("sql/claim.sql"))
        .bind(request.node_id.as_uuid())
        .bind(request.os)
        .bind(request.ae_version)
        .bind(request.tags)
        .bind(request.max_chunks)
        .bind(request.lease_ttl_seconds)
        .bind(request.default_guaranteed)
        .bind(request.default_burst)
        .bind(request.cached_hashes)
        .bind(request.window)
        .bind(request.tenants_considered)
        .bind(request.bad_node_grace_seconds)
        .bind(request.renders)
        .bind(request.encodes)
        .fetch_all(connection)
        .await?;
    rows.into_iter().map(Assignment::try_from).collect()
}

/// Whether any work item is pending (one index probe): tells a claim that found nothing
/// because others held its window from one that found nothing because there is nothing.
pub(crate) async fn any_pending(connection: &mut PgConnection) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM render.frame_jobs WHERE state = 'pending')")
            .fetch_one(connection)
            .await?,
    )
}

impl TryFrom<ClaimedRow> for Assignment {
    type Error = DbError;

    fn try_from(row: ClaimedRow) -> Result<Self, Self::Error> {
        let decode = |message: String| DbError::Other(sqlx::Error::Decode(message.into()));
        let field = |error: flatrender_proto::types::FieldError| decode(format!("claimed chunk {}: {error}", row.id));
        let encode = match row.kind.as_str() {
            "render" => None,
            "encode" => Some(
                encode_work(row.audio, row.encode_scenes)
                    .map_err(|error| decode(format!("claimed encode {}: {error}", row.id)))?,
            ),
            other => return Err(decode(format!("claimed chunk {}: unknown kind {other:?}", row.id))),
        };
        Ok(Assignment {
            encode,
            frame_job_id: FrameJobId::from_uuid(row.id),
            lease_token: LeaseToken::new(row.lease_token, "lease_token").map_err(field)?,
            lease_expires_at: row.lease_expires_at,
            job_id: JobId::from_uuid(row.job_id),
            tenant_id: TenantId::from_uuid(row.tenant_id),
            chunk_index: row.chunk_index,
            frame_range: FrameRange::new(row.frame_start, row.frame_end, "frame_range").map_err(field)?,
            template: template_spec(
                row.template_id,
                row.template_version,
                &row.template_url,
                &row.template_hash,
                row.template_size_bytes,
            )?,
            composition: SafeName::composition(&row.composition, "composition").map_err(field)?,
            fps: row.fps,
            output: serde_json::from_value(row.output_settings).map_err(|error| decode(error.to_string()))?,
            frames_already_written: row.frames_written,
            attempt: row.attempt,
            scene: match row.scene_index {
                None => None,
                Some(index) => Some(SceneContent {
                    index: u32::try_from(index)
                        .map_err(|_| decode(format!("claimed chunk {}: scene {index}", row.id)))?,
                    scene_id: row.scene_id,
                    fields: serde_json::from_value(row.scene_fields.unwrap_or_default())
                        .map_err(|error| decode(format!("claimed chunk {}: scene fields: {error}", row.id)))?,
                }),
            },
        })
    }
}

/// An encode item's scenes (`[[index, first, last], …]` in play order) and audio, as the claim
/// reads them.
fn encode_work(audio: Option<serde_json::Value>, scenes: Option<serde_json::Value>) -> Result<EncodeWork, String> {
    let audio = audio
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| format!("audio: {error}"))?;
    let triples: Vec<(i32, i32, i32)> = scenes
        .map(serde_json::from_value)
        .transpose()
        .map_err(|error| format!("scenes: {error}"))?
        .unwrap_or_default();
    let scenes = triples
        .into_iter()
        .map(|(index, first, last)| {
            Ok(EncodeScene {
                index: u32::try_from(index).map_err(|_| format!("scene index {index}"))?,
                frames: FrameRange::new(first, last, "scenes").map_err(|error| error.to_string())?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(EncodeWork { scenes, audio })
}

/// Wakes nodes long-polling on every control plane (one NOTIFY per transaction, not per row).
pub(crate) async fn notify_work(connection: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(connection)
        .await?;
    Ok(())
}

/// A lease a node says it holds.
pub struct LeaseClaim {
    /// The chunk.
    pub frame_job_id: FrameJobId,
    /// Its fencing token.
    pub token: LeaseToken,
    /// The node presenting it.
    pub node_id: NodeId,
    /// Frames done so far.
    pub frames_done: i32,
}

/// Extends live leases; returns the ids that were renewed (the rest are lost).
pub(crate) async fn renew(
    connection: &mut PgConnection,
    leases: &[LeaseClaim],
    lease_ttl_seconds: f64,
) -> Result<Vec<FrameJobId>, DbError> {
    let ids: Vec<Uuid> = leases.iter().map(|lease| lease.frame_job_id.as_uuid()).collect();
    let tokens: Vec<i64> = leases.iter().map(|lease| lease.token.get()).collect();
    let nodes: Vec<Uuid> = leases.iter().map(|lease| lease.node_id.as_uuid()).collect();
    let frames: Vec<i32> = leases.iter().map(|lease| lease.frames_done).collect();
    let mut transaction = connection.begin().await?;
    let chunks: Vec<FrameJobId> = leases.iter().map(|lease| lease.frame_job_id).collect();
    lock_chunks(&mut transaction, &chunks).await?;
    let renewed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE render.frame_jobs f
         SET lease_expires_at = now() + make_interval(secs => $5),
             frames_done = least(greatest(f.frames_done, i.frames_done), f.frame_end - f.frame_start + 1),
             updated_at = now()
         FROM unnest($1::uuid[], $2::int8[], $3::uuid[], $4::int4[]) AS i(id, token, node_id, frames_done)
         WHERE f.id = i.id AND f.lease_token = i.token AND f.lease_node_id = i.node_id AND f.state = 'leased'
         RETURNING f.id",
    )
    .bind(ids)
    .bind(tokens)
    .bind(nodes)
    .bind(frames)
    .bind(lease_ttl_seconds)
    .fetch_all(&mut *transaction)
    .await?;
    transaction.commit().await?;
    Ok(renewed.into_iter().map(FrameJobId::from_uuid).collect())
}

/// Records progress on one lease and renews it; `None` when the lease is not live.
pub(crate) async fn report_progress(
    connection: &mut PgConnection,
    lease: &LeaseClaim,
    frames_written: &[i32],
    lease_ttl_seconds: f64,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let expires: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE render.frame_jobs f
         SET lease_expires_at = now() + make_interval(secs => $6),
             frames_done = least(greatest(f.frames_done, $4), f.frame_end - f.frame_start + 1),
             frames_written = ARRAY(SELECT DISTINCT w FROM unnest(f.frames_written || $5::int4[]) AS w
                                    WHERE w BETWEEN f.frame_start AND f.frame_end ORDER BY w),
             updated_at = now()
         WHERE f.id = $1 AND f.lease_token = $2 AND f.lease_node_id = $3 AND f.state = 'leased'
         RETURNING f.lease_expires_at",
    )
    .bind(lease.frame_job_id.as_uuid())
    .bind(lease.token.get())
    .bind(lease.node_id.as_uuid())
    .bind(lease.frames_done)
    .bind(frames_written)
    .bind(lease_ttl_seconds)
    .fetch_optional(connection)
    .await?;
    Ok(expires)
}

/// How a failure reason names a work item: "chunk 2 (frames 100-149)" or "the encode".
pub(crate) fn describe_item(kind: &str, chunk_index: i32, frame_start: i32, frame_end: i32) -> String {
    if kind == "encode" {
        "the encode".to_owned()
    } else {
        format!("chunk {chunk_index} (frames {frame_start}-{frame_end})")
    }
}

/// What happened to a failed chunk.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FailedRow {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub chunk_index: i32,
    pub frame_start: i32,
    pub frame_end: i32,
    pub state: String,
    pub attempt: i32,
    pub kind: String,
}

/// Ends a lease after a failure: back to pending, or failed for good when `give_up` or out of
/// attempts; a hand-back (`counts_as_attempt` false) returns the attempt. `None` when the lease
/// is not live (stale token).
pub(crate) async fn fail(
    connection: &mut PgConnection,
    lease: &LeaseClaim,
    give_up: bool,
    counts_as_attempt: bool,
    error_class: &str,
    message: &str,
    frames_written: &[i32],
) -> Result<Option<FailedRow>, DbError> {
    let row = sqlx::query_as::<_, FailedRow>(
        "UPDATE render.frame_jobs f
         SET state = CASE WHEN $4 OR ($8 AND f.attempt >= j.max_attempts) THEN 'failed' ELSE 'pending' END,
             attempt = CASE WHEN $8 THEN f.attempt ELSE greatest(f.attempt - 1, 0) END,
             lease_token = NULL, lease_expires_at = NULL,
             last_error_class = $5, last_error = left($6, 4000),
             frames_written = ARRAY(SELECT DISTINCT w FROM unnest(f.frames_written || $7::int4[]) AS w
                                    WHERE w BETWEEN f.frame_start AND f.frame_end ORDER BY w),
             frames_done = 0,
             updated_at = now()
         FROM render.render_jobs j
         WHERE f.id = $1 AND f.lease_token = $2 AND f.lease_node_id = $3 AND f.state = 'leased' AND j.id = f.job_id
         RETURNING f.job_id, f.tenant_id, f.chunk_index, f.frame_start, f.frame_end, f.state, f.attempt, f.kind",
    )
    .bind(lease.frame_job_id.as_uuid())
    .bind(lease.token.get())
    .bind(lease.node_id.as_uuid())
    .bind(give_up)
    .bind(error_class)
    .bind(message)
    .bind(frames_written)
    .bind(counts_as_attempt)
    .fetch_optional(connection)
    .await?;
    Ok(row)
}

/// Adds a node to a job's bad-node list (or counts another failure there).
pub(crate) async fn add_bad_node(
    connection: &mut PgConnection,
    job_id: JobId,
    node_id: NodeId,
    error_class: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO render.job_bad_nodes (job_id, node_id, last_error_class) VALUES ($1, $2, $3)
         ON CONFLICT (job_id, node_id) DO UPDATE
         SET failures = render.job_bad_nodes.failures + 1, last_error_class = EXCLUDED.last_error_class",
    )
    .bind(job_id.as_uuid())
    .bind(node_id.as_uuid())
    .bind(error_class)
    .execute(connection)
    .await?;
    Ok(())
}

/// Locks, in id order, the jobs of the live leases `selector` names. Lock order in the render
/// schema: a transaction that may wait takes job rows (in id order) before chunk rows (in id
/// order), so concurrent completions, renewals, failures, cancels and reaper passes cannot
/// deadlock; the claim, which takes chunks first, never waits (`SKIP LOCKED` on both).
pub(crate) async fn lock_jobs_of_leases(
    connection: &mut PgConnection,
    selector: &LeaseSelector<'_>,
) -> Result<(), DbError> {
    let (expired, nodes, chunks) = selector.binds();
    sqlx::query(
        "SELECT j.id FROM render.render_jobs j
         WHERE j.id IN (SELECT f.job_id FROM render.frame_jobs f
                        WHERE f.state = 'leased'
                          AND (($1 > 0 AND f.lease_expires_at < now())
                               OR f.lease_node_id = ANY($2::uuid[])
                               OR f.id = ANY($3::uuid[])))
         ORDER BY j.id
         FOR NO KEY UPDATE OF j",
    )
    .bind(expired)
    .bind(nodes)
    .bind(chunks)
    .execute(connection)
    .await?;
    Ok(())
}

/// Locks these chunks' rows in id order (see [`lock_jobs_of_leases`] for the order rule).
pub(crate) async fn lock_chunks(connection: &mut PgConnection, ids: &[FrameJobId]) -> Result<(), DbError> {
    let ids: Vec<Uuid> = ids.iter().map(FrameJobId::as_uuid).collect();
    sqlx::query("SELECT id FROM render.frame_jobs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(connection)
        .await?;
    Ok(())
}

/// Which live leases to end.
pub(crate) enum LeaseSelector<'a> {
    /// Leases past their expiry (the reaper), at most this many.
    Expired(i64),
    /// Every lease held by these nodes.
    Nodes(&'a [NodeId]),
    /// These chunks, if leased.
    Chunks(&'a [FrameJobId]),
}

impl LeaseSelector<'_> {
    /// The three parameters the lease statements select by: expired limit, nodes, chunks.
    fn binds(&self) -> (i64, Vec<Uuid>, Vec<Uuid>) {
        match self {
            LeaseSelector::Expired(limit) => (*limit, Vec::new(), Vec::new()),
            LeaseSelector::Nodes(nodes) => (0, nodes.iter().map(NodeId::as_uuid).collect(), Vec::new()),
            LeaseSelector::Chunks(chunks) => (0, Vec::new(), chunks.iter().map(FrameJobId::as_uuid).collect()),
        }
    }
}

/// A lease that was ended by [`requeue_leases`].
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RequeuedRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub chunk_index: i32,
    pub frame_start: i32,
    pub frame_end: i32,
    pub state: String,
    pub attempt: i32,
    pub node_id: Option<Uuid>,
    pub kind: String,
}

/// Ends live leases and puts their chunks back in the queue (or fails them when out of
/// attempts and `counts_as_attempt`). `error_class`/`reason` are recorded on the chunk.
pub(crate) async fn requeue_leases(
    connection: &mut PgConnection,
    selector: LeaseSelector<'_>,
    counts_as_attempt: bool,
    error_class: &str,
    reason: &str,
) -> Result<Vec<RequeuedRow>, DbError> {
    let (expired_limit, nodes, chunks) = selector.binds();
    let rows = sqlx::query_as::<_, RequeuedRow>(include_str!("sql/requeue_leases.sql"))
        .bind(expired_limit)
        .bind(nodes)
        .bind(chunks)
        .bind(counts_as_attempt)
        .bind(error_class)
        .bind(reason)
        .fetch_all(connection)
        .await?;
    Ok(rows)
}

/// Chunks by state, the whole table (an ops summary on request, not a periodic gauge).
pub(crate) async fn count_by_state(connection: &mut PgConnection) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query_as("SELECT state, count(*) FROM render.frame_jobs GROUP BY state ORDER BY state")
        .fetch_all(connection)
        .await?;
    Ok(rows)
}

/// Pending and leased chunks per tenant with any, read from the two partial indexes that hold
/// exactly those rows: the cost follows the work in flight, never the table's history.
pub(crate) async fn tenant_queues(connection: &mut PgConnection) -> Result<Vec<(TenantId, i64, i64)>, DbError> {
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT tenant_id, sum(pending)::int8, sum(leased)::int8
         FROM (SELECT tenant_id, count(*) AS pending, 0 AS leased FROM render.frame_jobs
               WHERE state = 'pending' GROUP BY tenant_id
               UNION ALL
               SELECT tenant_id, 0, count(*) FROM render.frame_jobs WHERE state = 'leased' GROUP BY tenant_id) q
         GROUP BY tenant_id ORDER BY tenant_id",
    )
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tenant, pending, leased)| (TenantId::from_uuid(tenant), pending, leased))
        .collect())
}

/// A template at the head of the queue.
#[derive(Clone, Debug, sqlx::FromRow)]
struct HotTemplateRow {
    pub template_hash: Vec<u8>,
    pub template_id: Uuid,
    pub template_version: i32,
    pub template_url: String,
    pub template_size_bytes: i64,
}

/// The templates of the best-ranked pending chunks, best first (what idle nodes should fetch
/// before they are asked to render them); a waiting encode needs no template.
pub(crate) async fn hot_templates(connection: &mut PgConnection, limit: i64) -> Result<Vec<TemplateSpec>, DbError> {
    let rows = sqlx::query_as::<_, HotTemplateRow>(
        // One probe per distinct pending template (a loose scan of frame_jobs_pending_template_idx),
        // ranked by its best pending chunk: the cost follows the templates waiting, not the chunks.
        "WITH RECURSIVE templates(hash) AS (
             (SELECT f.template_hash FROM render.frame_jobs f WHERE f.state = 'pending'
              ORDER BY f.template_hash LIMIT 1)
             UNION ALL
             SELECT (SELECT f.template_hash FROM render.frame_jobs f
                     WHERE f.state = 'pending' AND f.template_hash > t.hash ORDER BY f.template_hash LIMIT 1)
             FROM templates t WHERE t.hash IS NOT NULL
         )
         SELECT head.template_hash, j.template_id, j.template_version, j.template_url, j.template_size_bytes
         FROM templates t
         CROSS JOIN LATERAL (
             SELECT f.template_hash, f.job_id, f.priority, f.queued_at FROM render.frame_jobs f
             WHERE f.state = 'pending' AND f.template_hash = t.hash AND f.kind = 'render'
             ORDER BY f.priority DESC, f.queued_at LIMIT 1) head
         JOIN render.render_jobs j ON j.id = head.job_id
         WHERE t.hash IS NOT NULL
         ORDER BY head.priority DESC, head.queued_at
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            template_spec(
                row.template_id,
                row.template_version,
                &row.template_url,
                &row.template_hash,
                row.template_size_bytes,
            )
        })
        .collect()
}

/// A stored template reference (validated when the job was submitted).
fn template_spec(id: Uuid, version: i32, url: &str, hash: &[u8], size_bytes: i64) -> Result<TemplateSpec, DbError> {
    Ok(TemplateSpec {
        template_id: TemplateId::from_uuid(id),
        version,
        url: HttpUrl::parse(url, "template_url").map_err(super::corrupt)?,
        hash: ContentHash::from_slice(hash, "template_hash").map_err(super::corrupt)?,
        size_bytes,
    })
}
