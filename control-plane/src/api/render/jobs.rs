//! Reading, listing, cancelling and watching jobs, each only within the caller's tenants.

use std::{pin::Pin, time::Duration};

use chrono::{DateTime, Utc};
use flatrender_proto::{
    pb,
    types::{FieldError, JobId, JobStatus, TenantId, UserId},
};
use tokio_stream::Stream;
use tonic::{Request, Status};
use tracing::instrument;

use super::CALLERS;
use crate::{
    api::{AppState, bounded_text, convert, page_size},
    auth::{Principal, TenantScope},
    db::jobs::JobFilter,
    error::{ControlPlaneError, ControlPlaneResult},
    jobs::{self, Detail, Job},
};

const WATCH_POLL: Duration = Duration::from_millis(250);

/// The stream `WatchRenderJob` answers with.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchRenderJobResponse, Status>> + Send>>;

/// Loads a job the caller may see; others' jobs are indistinguishable from missing ones.
async fn visible_job(
    state: &AppState,
    principal: &Principal,
    job_id: JobId,
    detail: Detail,
) -> ControlPlaneResult<Job> {
    let job = jobs::get(&state.pool, job_id, detail).await?;
    if !principal.can_access(job.spec.tenant_id) {
        return Err(ControlPlaneError::NotFound(format!("job {job_id}")));
    }
    Ok(job)
}

fn encode_page_token(job: &Job) -> String {
    format!("{}_{}", job.created_at.timestamp_micros(), job.id)
}

fn decode_page_token(token: &str) -> Result<Option<(DateTime<Utc>, JobId)>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token from a previous response");
    let (micros, id) = token.split_once('_').ok_or_else(invalid)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?).ok_or_else(invalid)?;
    Ok(Some((at, JobId::parse_field(id, "page_token").map_err(|_| invalid())?)))
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn get_render_job(
    state: &AppState,
    request: Request<pb::GetRenderJobRequest>,
) -> ControlPlaneResult<pb::GetRenderJobResponse> {
    let principal = state.authorize(&request, CALLERS).await?;
    let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id")?;
    let job = visible_job(state, &principal, job_id, Detail::Full).await?;
    Ok(pb::GetRenderJobResponse {
        job: Some(convert::job(&job)),
    })
}

#[instrument(skip_all)]
pub(super) async fn list_render_jobs(
    state: &AppState,
    request: Request<pb::ListRenderJobsRequest>,
) -> ControlPlaneResult<pb::ListRenderJobsResponse> {
    let principal = state.authorize(&request, CALLERS).await?;
    let message = request.get_ref();
    let tenant = TenantId::parse_optional_field(&message.tenant_id, "tenant_id")?;
    let tenant_ids = match (tenant, &principal.scope) {
        (Some(tenant), _) if principal.can_access(tenant) => Some(vec![tenant]),
        (Some(tenant), _) => {
            return Err(ControlPlaneError::PermissionDenied(format!(
                "this token cannot read tenant {tenant}"
            )));
        }
        (None, TenantScope::All) => None,
        (None, TenantScope::Only(tenants)) => Some(tenants.clone()),
    };
    let statuses = message
        .statuses
        .iter()
        .enumerate()
        .map(|(index, status)| JobStatus::from_wire(*status, &format!("statuses[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = page_size(message.page_size, 50, 500)?;
    let filter = JobFilter {
        tenant_ids,
        user_id: UserId::parse_optional_field(&message.user_id, "user_id")?,
        statuses,
        after: decode_page_token(&message.page_token)?,
        limit: limit + 1,
    };
    let mut found = jobs::list(&state.pool, &filter).await?;
    let next_page_token = if found.len() as i64 > limit {
        found.truncate(limit as usize);
        found.last().map(encode_page_token).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListRenderJobsResponse {
        jobs: found.iter().map(convert::job).collect(),
        next_page_token,
    })
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn cancel_render_job(
    state: &AppState,
    request: Request<pb::CancelRenderJobRequest>,
) -> ControlPlaneResult<pb::CancelRenderJobResponse> {
    let principal = state.authorize(&request, CALLERS).await?;
    let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id")?;
    let reason = bounded_text(&request.get_ref().reason, "reason", 1000)?;
    visible_job(state, &principal, job_id, Detail::Summary).await?;
    let job = jobs::cancel(&state.pool, job_id, &reason).await?;
    Ok(pb::CancelRenderJobResponse {
        job: Some(convert::job(&job)),
    })
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn watch_render_job(
    state: &AppState,
    request: Request<pb::WatchRenderJobRequest>,
) -> ControlPlaneResult<WatchStream> {
    let principal = state.authorize(&request, CALLERS).await?;
    let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id")?;
    let first = visible_job(state, &principal, job_id, Detail::Summary).await?;
    let pool = state.pool.clone();
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut last = first;
        if sender
            .send(Ok(pb::WatchRenderJobResponse {
                job: Some(convert::job(&last)),
            }))
            .await
            .is_err()
        {
            return;
        }
        while !last.status.is_terminal() {
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(WATCH_POLL) => {}
            }
            let current = match jobs::get(&pool, job_id, Detail::Summary).await {
                Ok(job) => job,
                Err(error) => {
                    let _ = sender.send(Err(Status::from(error))).await;
                    return;
                }
            };
            let changed = current.status != last.status
                || current.progress.frames_done != last.progress.frames_done
                || current.progress.chunks_completed != last.progress.chunks_completed
                || current.progress.chunks_leased != last.progress.chunks_leased;
            last = current;
            if changed
                && sender
                    .send(Ok(pb::WatchRenderJobResponse {
                        job: Some(convert::job(&last)),
                    }))
                    .await
                    .is_err()
            {
                return;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver)))
}
