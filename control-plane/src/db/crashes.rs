//! `render.node_crashes`: failures reported by agents or seen by the control plane.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{CrashClass, FrameJobId, JobId, NodeId, RecoveryAction, TenantId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;
use crate::views::CrashView;

/// A crash to record.
pub(crate) struct NewCrash<'a> {
    pub node_id: NodeId,
    pub job_id: Option<JobId>,
    pub frame_job_id: Option<FrameJobId>,
    pub tenant_id: Option<TenantId>,
    pub crash_class: CrashClass,
    pub error_class: Option<&'a str>,
    pub exit_code: Option<i32>,
    pub log_tail: &'a str,
    pub recovery_action: RecoveryAction,
}

/// Records a crash.
pub(crate) async fn insert(connection: &mut PgConnection, crash: &NewCrash<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO render.node_crashes (node_id, job_id, frame_job_id, tenant_id, crash_class, error_class, exit_code,
             log_tail, recovery_action)
         VALUES ($1, $2, $3, $4, $5, $6, $7, right($8, 65536), $9)",
    )
    .bind(crash.node_id.as_uuid())
    .bind(crash.job_id.map(|id| id.as_uuid()))
    .bind(crash.frame_job_id.map(|id| id.as_uuid()))
    .bind(crash.tenant_id.map(|id| id.as_uuid()))
    .bind(crash.crash_class.as_str())
    .bind(crash.error_class)
    .bind(crash.exit_code)
    .bind(crash.log_tail)
    .bind(crash.recovery_action.as_str())
    .execute(connection)
    .await?;
    Ok(())
}

/// Marks a node's open crashes recovered (a later success on that node).
pub(crate) async fn mark_recovered(connection: &mut PgConnection, node_id: NodeId) -> Result<(), DbError> {
    sqlx::query("UPDATE render.node_crashes SET recovered_at = now() WHERE node_id = $1 AND recovered_at IS NULL")
        .bind(node_id.as_uuid())
        .execute(connection)
        .await?;
    Ok(())
}

/// A crash as listed.
#[derive(Debug, sqlx::FromRow)]
struct CrashRow {
    pub id: Uuid,
    pub node_id: Uuid,
    pub node_name: String,
    pub job_id: Option<Uuid>,
    pub frame_job_id: Option<Uuid>,
    pub crash_class: String,
    pub error_class: Option<String>,
    pub exit_code: Option<i32>,
    pub log_tail: Option<String>,
    pub recovery_action: String,
    pub occurred_at: DateTime<Utc>,
    pub recovered_at: Option<DateTime<Utc>>,
}

/// Crashes newest first, filtered, keyset-paginated on (occurred_at, id).
pub(crate) async fn list(
    connection: &mut PgConnection,
    node_id: Option<NodeId>,
    crash_class: Option<CrashClass>,
    since: Option<DateTime<Utc>>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<CrashView>, DbError> {
    let rows = sqlx::query_as::<_, CrashRow>(
        "SELECT c.id, c.node_id, n.name AS node_name, c.job_id, c.frame_job_id, c.crash_class, c.error_class,
                c.exit_code, c.log_tail, c.recovery_action, c.occurred_at, c.recovered_at
         FROM render.node_crashes c JOIN render.nodes n ON n.id = c.node_id
         WHERE ($1::uuid IS NULL OR c.node_id = $1) AND ($2::text IS NULL OR c.crash_class = $2)
           AND ($3::timestamptz IS NULL OR c.occurred_at >= $3)
           AND ($4::timestamptz IS NULL OR (c.occurred_at, c.id) < ($4, $5))
         ORDER BY c.occurred_at DESC, c.id DESC LIMIT $6",
    )
    .bind(node_id.map(|id| id.as_uuid()))
    .bind(crash_class.map(|class| class.as_str()))
    .bind(since)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CrashView {
                id: row.id,
                node_id: NodeId::from_uuid(row.node_id),
                node_name: row.node_name,
                job_id: row.job_id.map(JobId::from_uuid),
                frame_job_id: row.frame_job_id.map(FrameJobId::from_uuid),
                crash_class: super::stored(CrashClass::parse(&row.crash_class), "crash class", &row.crash_class)?,
                error_class: row.error_class,
                exit_code: row.exit_code,
                log_tail: row.log_tail,
                recovery_action: super::stored(
                    RecoveryAction::parse(&row.recovery_action),
                    "recovery action",
                    &row.recovery_action,
                )?,
                occurred_at: row.occurred_at,
                recovered_at: row.recovered_at,
            })
        })
        .collect()
}

/// Crashes in the last 24 hours.
pub(crate) async fn count_last_day(connection: &mut PgConnection) -> Result<i64, DbError> {
    let count =
        sqlx::query_scalar("SELECT count(*) FROM render.node_crashes WHERE occurred_at > now() - interval '1 day'")
            .fetch_one(connection)
            .await?;
    Ok(count)
}
