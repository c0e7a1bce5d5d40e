//! Crashes (paged), farm statistics, and the health-log partitions.

use chrono::{DateTime, Utc};
use flatrender_proto::{
    pb,
    types::{CrashClass, FieldError, NodeId},
};
use tonic::Request;
use tracing::instrument;
use uuid::Uuid;

use super::ADMIN;
use crate::{
    api::{AppState, convert, page_size},
    db,
    error::ControlPlaneResult,
    partitions,
};

fn decode_cursor(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token from a previous response");
    let (micros, id) = token.split_once('_').ok_or_else(invalid)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?).ok_or_else(invalid)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| invalid())?)))
}

#[instrument(skip_all)]
pub(super) async fn list_crashes(
    state: &AppState,
    request: Request<pb::ListCrashesRequest>,
) -> ControlPlaneResult<pb::ListCrashesResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let node_id = NodeId::parse_optional_field(&message.node_id, "node_id")?;
    let crash_class = CrashClass::from_wire_optional(message.crash_class, "crash_class")?;
    let limit = page_size(message.page_size, 100, 1000)?;
    let after = decode_cursor(&message.page_token)?;
    let since = convert::from_timestamp(message.since.as_ref());
    let mut connection = state.pool.acquire().await?;
    let mut rows = db::crashes::list(&mut connection, node_id, crash_class, since, after, limit + 1).await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|row| format!("{}_{}", row.occurred_at.timestamp_micros(), row.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let crashes = rows
        .into_iter()
        .map(|row| pb::Crash {
            id: row.id.to_string(),
            node_id: row.node_id.to_string(),
            node_name: row.node_name,
            job_id: row.job_id.map(|id| id.to_string()).unwrap_or_default(),
            frame_job_id: row.frame_job_id.map(|id| id.to_string()).unwrap_or_default(),
            crash_class: CrashClass::parse(&row.crash_class).map_or(0, CrashClass::to_wire),
            error_class: row.error_class.unwrap_or_default(),
            exit_code: row.exit_code,
            log_tail: row.log_tail.unwrap_or_default(),
            recovery_action: flatrender_proto::types::RecoveryAction::parse(&row.recovery_action)
                .map_or(0, flatrender_proto::types::RecoveryAction::to_wire),
            occurred_at: Some(convert::timestamp(row.occurred_at)),
            recovered_at: convert::timestamp_opt(row.recovered_at),
        })
        .collect();
    Ok(pb::ListCrashesResponse {
        crashes,
        next_page_token,
    })
}

#[instrument(skip_all)]
pub(super) async fn ensure_partitions(
    state: &AppState,
    request: Request<pb::EnsurePartitionsRequest>,
) -> ControlPlaneResult<pb::EnsurePartitionsResponse> {
    state.authorize(&request, ADMIN).await?;
    let config = &state.config.partitions;
    let months_ahead = match request.get_ref().months_ahead {
        0 => config.months_ahead,
        value @ 1..=24 => value,
        _ => {
            return Err(FieldError::new("months_ahead", "must be between 0 and 24").into());
        }
    };
    let report = partitions::upkeep(&state.pool, months_ahead, config.retention_months).await?;
    Ok(pb::EnsurePartitionsResponse {
        created: report.created,
        dropped: report.dropped,
    })
}

#[instrument(skip_all)]
pub(super) async fn list_partitions(
    state: &AppState,
    request: Request<pb::ListPartitionsRequest>,
) -> ControlPlaneResult<pb::ListPartitionsResponse> {
    state.authorize(&request, ADMIN).await?;
    let mut connection = state.pool.acquire().await?;
    let rows = db::partitions::list(&mut connection, partitions::HEALTH_LOGS).await?;
    Ok(pb::ListPartitionsResponse {
        partitions: rows
            .into_iter()
            .map(|row| pb::Partition {
                parent: row.parent,
                name: row.name,
                range_start: convert::timestamp_opt(row.range_start),
                range_end: convert::timestamp_opt(row.range_end),
                approximate_rows: row.approximate_rows,
            })
            .collect(),
    })
}

#[instrument(skip_all)]
pub(super) async fn get_farm_stats(
    state: &AppState,
    request: Request<pb::GetFarmStatsRequest>,
) -> ControlPlaneResult<pb::GetFarmStatsResponse> {
    state.authorize(&request, ADMIN).await?;
    let mut connection = state.pool.acquire().await?;
    let counts = |rows: Vec<(String, i64)>| {
        rows.into_iter()
            .map(|(state, count)| pb::CountByState { state, count })
            .collect()
    };
    let nodes = counts(db::nodes::count_by_state(&mut connection).await?);
    let frame_jobs = counts(db::frame_jobs::count_by_state(&mut connection).await?);
    let jobs = counts(db::jobs::count_by_status(&mut connection).await?);
    let tenants = db::frame_jobs::tenant_queues(&mut connection)
        .await?
        .into_iter()
        .map(|(tenant, pending, leased)| pb::TenantQueue {
            tenant_id: tenant.to_string(),
            pending_chunks: pending,
            leased_chunks: leased,
        })
        .collect();
    let crashes_last_24h = db::crashes::count_last_day(&mut connection).await?;
    Ok(pb::GetFarmStatsResponse {
        nodes,
        frame_jobs,
        jobs,
        tenants,
        crashes_last_24h,
    })
}
