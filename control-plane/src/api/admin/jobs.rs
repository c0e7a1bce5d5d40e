//! Jobs and their frame chunks: requeue chunks by selector, list a job's chunks, cancel, retry.

use flatrender_proto::{
    pb,
    types::{FieldError, FrameJobId, FrameJobState, JobId, NodeId, TenantId},
};
use tonic::Request;
use tracing::{info, instrument};

use super::ADMIN;
use crate::{
    api::{AppState, bounded_text, convert},
    db::{self, frame_job_admin::FrameSelector},
    error::{ControlPlaneError, ControlPlaneResult},
    jobs,
};

const DEFAULT_REQUEUE_LIMIT: i32 = 1000;

fn selector_from_wire(selector: Option<&pb::FrameSelector>) -> Result<FrameSelector, FieldError> {
    let selector = selector.ok_or_else(|| FieldError::new("selector", "is required"))?;
    let mut states = selector
        .states
        .iter()
        .enumerate()
        .map(|(index, state)| FrameJobState::from_wire(*state, &format!("selector.states[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if states.is_empty() {
        states = vec![FrameJobState::Leased, FrameJobState::Failed];
    }
    if let Some(state) = states
        .iter()
        .find(|state| !matches!(state, FrameJobState::Leased | FrameJobState::Failed))
    {
        return Err(FieldError::new(
            "selector.states",
            format!("only leased and failed chunks can be requeued, not {state}"),
        ));
    }
    let error_class = bounded_text(&selector.error_class, "selector.error_class", 64)?;
    let parsed = FrameSelector {
        job_id: JobId::parse_optional_field(&selector.job_id, "selector.job_id")?,
        node_id: NodeId::parse_optional_field(&selector.node_id, "selector.node_id")?,
        tenant_id: TenantId::parse_optional_field(&selector.tenant_id, "selector.tenant_id")?,
        states,
        error_class: (!error_class.is_empty()).then_some(error_class),
    };
    if parsed.job_id.is_none() && parsed.node_id.is_none() && parsed.tenant_id.is_none() && parsed.error_class.is_none()
    {
        return Err(FieldError::new(
            "selector",
            "name at least one of job_id, node_id, tenant_id, error_class",
        ));
    }
    Ok(parsed)
}

#[instrument(skip_all)]
pub(super) async fn requeue_frames(
    state: &AppState,
    request: Request<pb::RequeueFramesRequest>,
) -> ControlPlaneResult<pb::RequeueFramesResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let selector = selector_from_wire(message.selector.as_ref())?;
    let limit = match message.limit {
        0 => DEFAULT_REQUEUE_LIMIT,
        value @ 1..=100_000 => value,
        _ => {
            return Err(FieldError::new("limit", "must be between 1 and 100000").into());
        }
    };
    let mut transaction = state.pool.begin().await?;
    // One more than the limit tells us the selection is too big to move safely.
    let rows = db::frame_job_admin::select(&mut transaction, &selector, i64::from(limit) + 1).await?;
    if rows.len() > limit as usize {
        return Err(ControlPlaneError::FailedPrecondition(format!(
            "selector matches more than {limit} chunks; narrow it or raise limit"
        )));
    }
    if !message.dry_run && !rows.is_empty() {
        // Jobs before chunks, each in id order (docs/dispatch.md): the move waits for running
        // completions instead of deadlocking with them. A chunk whose state changed meanwhile
        // is moved only if it still can be (the statements re-check the state).
        let mut job_ids: Vec<JobId> = rows.iter().map(|chunk| chunk.job_id).collect();
        job_ids.sort_by_key(|id| id.as_uuid());
        job_ids.dedup();
        db::jobs::lock_in_order(&mut transaction, &job_ids).await?;
        let chunk_ids: Vec<FrameJobId> = rows.iter().map(|chunk| chunk.id).collect();
        db::frame_jobs::lock_chunks(&mut transaction, &chunk_ids).await?;
        let moved = db::frame_job_admin::requeue(&mut transaction, &rows).await?;
        db::frame_jobs::notify_work(&mut transaction).await?;
        transaction.commit().await?;
        state.dispatcher.work_added();
        info!(chunks = rows.len(), moved, "frames requeued by ops");
    }
    Ok(pb::RequeueFramesResponse {
        frame_jobs: rows.iter().map(convert::frame_job).collect(),
        dry_run: message.dry_run,
    })
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn list_frame_jobs(
    state: &AppState,
    request: Request<pb::ListFrameJobsRequest>,
) -> ControlPlaneResult<pb::ListFrameJobsResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let job_id = JobId::parse_field(&message.job_id, "job_id")?;
    let states = message
        .states
        .iter()
        .enumerate()
        .map(|(index, state)| FrameJobState::from_wire(*state, &format!("states[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    // An unknown job is not found, not an empty list.
    jobs::get(&state.pool, job_id, jobs::Detail::Summary).await?;
    let mut connection = state.pool.acquire().await?;
    let rows = db::frame_job_admin::list_for_job(&mut connection, job_id, &states).await?;
    Ok(pb::ListFrameJobsResponse {
        frame_jobs: rows.iter().map(convert::frame_job).collect(),
    })
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn cancel_job(
    state: &AppState,
    request: Request<pb::CancelJobRequest>,
) -> ControlPlaneResult<pb::CancelJobResponse> {
    state.authorize(&request, ADMIN).await?;
    let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id")?;
    let reason = bounded_text(&request.get_ref().reason, "reason", 1000)?;
    let job = jobs::cancel(&state.pool, job_id, &reason).await?;
    Ok(pb::CancelJobResponse {
        job: Some(convert::job(&job)),
    })
}

#[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
pub(super) async fn retry_job(
    state: &AppState,
    request: Request<pb::RetryJobRequest>,
) -> ControlPlaneResult<pb::RetryJobResponse> {
    state.authorize(&request, ADMIN).await?;
    let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id")?;
    let (job, requeued) = jobs::retry(&state.pool, job_id).await?;
    state.dispatcher.work_added();
    Ok(pb::RetryJobResponse {
        job: Some(convert::job(&job)),
        requeued_chunks: i32::try_from(requeued).unwrap_or(i32::MAX),
    })
}
