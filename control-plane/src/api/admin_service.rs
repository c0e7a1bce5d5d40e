//! `AdminService`: what ops drive through `frctl` (admin tokens only).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flatrender_proto::{
    pb::{self, admin_service_server::AdminService},
    types::{
        ContentHash, CrashClass, FieldError, FrameJobState, JobId, NodeId, NodeState, OperatingSystem, TenantId,
        TokenId, TokenKind,
    },
};
use tonic::{Request, Response, Status};
use tracing::{info, instrument};
use uuid::Uuid;

use super::{AppState, bounded_text, convert, page_size};
use crate::{
    auth,
    db::{
        self,
        frame_job_admin::{FrameJobRow, FrameSelector},
        nodes::NodeRow,
    },
    error::ControlPlaneError,
    jobs,
    nodes::{self, NodeTransition},
    partitions,
};

const ADMIN: &[TokenKind] = &[TokenKind::Admin];
const DEFAULT_REQUEUE_LIMIT: i32 = 1000;

/// The `AdminService` implementation.
pub struct AdminApi {
    state: Arc<AppState>,
}

impl AdminApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn node_view(&self, node_id: NodeId) -> Result<pb::Node, ControlPlaneError> {
        let mut connection = self.state.pool.acquire().await?;
        let row = db::nodes::get(&mut connection, node_id)
            .await?
            .ok_or_else(|| ControlPlaneError::NotFound(format!("node {node_id}")))?;
        Ok(node_to_wire(&row))
    }

    async fn transition(
        &self,
        node_id: &str,
        change: NodeTransition,
        reason: Option<&str>,
    ) -> Result<(pb::Node, u64), Status> {
        let node_id = NodeId::parse_field(node_id, "node_id").map_err(ControlPlaneError::from)?;
        let requeued = nodes::transition(&self.state.pool, &self.state.nodes, node_id, change, reason).await?;
        if requeued > 0 {
            self.state.dispatcher.work_added();
        }
        Ok((self.node_view(node_id).await?, requeued))
    }
}

fn node_to_wire(row: &NodeRow) -> pb::Node {
    pb::Node {
        id: row.id.to_string(),
        name: row.name.clone(),
        hostname: row.hostname.clone(),
        os: OperatingSystem::parse(&row.os).map_or(0, OperatingSystem::to_wire),
        os_version: row.os_version.clone().unwrap_or_default(),
        ae_version: row.ae_version.clone().unwrap_or_default(),
        agent_version: row.agent_version.clone(),
        cpu_cores: row.cpu_cores,
        memory_bytes: row.memory_bytes,
        tags: row.tags.clone(),
        max_leases: row.max_leases,
        state: NodeState::parse(&row.state).map_or(0, NodeState::to_wire),
        state_reason: row.state_reason.clone().unwrap_or_default(),
        state_changed_at: Some(convert::timestamp(row.state_changed_at)),
        drain_deadline: convert::timestamp_opt(row.drain_deadline),
        last_seen_at: convert::timestamp_opt(row.last_seen_at),
        registered_at: Some(convert::timestamp(row.registered_at)),
        running_leases: i32::try_from(row.running_leases).unwrap_or(i32::MAX),
    }
}

fn frame_job_to_wire(row: &FrameJobRow) -> pb::FrameJob {
    pb::FrameJob {
        id: row.id.to_string(),
        job_id: row.job_id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        chunk_index: row.chunk_index,
        frame_range: Some(pb::FrameRange {
            start: row.frame_start,
            end: row.frame_end,
        }),
        state: FrameJobState::parse(&row.state).map_or(0, FrameJobState::to_wire),
        attempt: row.attempt,
        node_id: row.lease_node_id.map(|id| id.to_string()).unwrap_or_default(),
        lease_expires_at: convert::timestamp_opt(row.lease_expires_at),
        frames_done: row.frames_done,
        last_error_class: row.last_error_class.clone().unwrap_or_default(),
        last_error: row.last_error.clone().unwrap_or_default(),
        node_name: row.lease_node_name.clone().unwrap_or_default(),
    }
}

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

fn decode_cursor(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("page_token", "is not a token from a previous response");
    let (micros, id) = token.split_once('_').ok_or_else(invalid)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?).ok_or_else(invalid)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| invalid())?)))
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[instrument(skip_all)]
    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let states = message
            .states
            .iter()
            .enumerate()
            .map(|(index, state)| NodeState::from_wire(*state, &format!("states[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        let limit = page_size(message.page_size, 100, 1000).map_err(ControlPlaneError::from)?;
        let after = (!message.page_token.is_empty()).then_some(message.page_token.as_str());
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let mut rows = db::nodes::list(&mut connection, &states, after, limit + 1)
            .await
            .map_err(ControlPlaneError::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|row| row.name.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListNodesResponse {
            nodes: rows.iter().map(node_to_wire).collect(),
            next_page_token,
        }))
    }

    #[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
    async fn get_node(&self, request: Request<pb::GetNodeRequest>) -> Result<Response<pb::GetNodeResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let node_id = NodeId::parse_field(&request.get_ref().node_id, "node_id").map_err(ControlPlaneError::from)?;
        let node = self.node_view(node_id).await?;
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let running = db::frame_job_admin::running_on(&mut connection, node_id)
            .await
            .map_err(ControlPlaneError::from)?;
        let cache = db::nodes::cache_view(&mut connection, node_id)
            .await
            .map_err(ControlPlaneError::from)?;
        Ok(Response::new(pb::GetNodeResponse {
            node: Some(node),
            running: running.iter().map(frame_job_to_wire).collect(),
            cache: cache
                .iter()
                .map(|entry| pb::CacheEntryView {
                    blake3_hex: ContentHash::from_slice(&entry.content_hash, "content_hash")
                        .map(|hash| hash.to_hex())
                        .unwrap_or_default(),
                    template_id: entry.template_id.map(|id| id.to_string()).unwrap_or_default(),
                    template_version: entry.template_version.unwrap_or(0),
                    size_bytes: entry.size_bytes,
                    hits: entry.hits,
                    last_used_at: Some(convert::timestamp(entry.last_used_at)),
                })
                .collect(),
        }))
    }

    #[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
    async fn drain_node(
        &self,
        request: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let deadline =
            match message.deadline.as_ref() {
                None => None,
                Some(deadline) => {
                    let duration = convert::from_duration(Some(deadline))
                        .ok_or_else(|| ControlPlaneError::from(FieldError::new("deadline", "must not be negative")))?;
                    Some(convert::from_now(duration).ok_or_else(|| {
                        ControlPlaneError::from(FieldError::new("deadline", "is too far in the future"))
                    })?)
                }
            };
        let (node, _) = self
            .transition(
                &message.node_id,
                NodeTransition::Drain(deadline),
                Some("drained by ops"),
            )
            .await?;
        Ok(Response::new(pb::DrainNodeResponse { node: Some(node) }))
    }

    #[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
    async fn undrain_node(
        &self,
        request: Request<pb::UndrainNodeRequest>,
    ) -> Result<Response<pb::UndrainNodeResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let (node, _) = self
            .transition(&request.get_ref().node_id, NodeTransition::Undrain, None)
            .await?;
        Ok(Response::new(pb::UndrainNodeResponse { node: Some(node) }))
    }

    #[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
    async fn disable_node(
        &self,
        request: Request<pb::DisableNodeRequest>,
    ) -> Result<Response<pb::DisableNodeResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let reason = bounded_text(&request.get_ref().reason, "reason", 1000).map_err(ControlPlaneError::from)?;
        let reason = if reason.is_empty() {
            "disabled by ops".to_owned()
        } else {
            reason
        };
        let (node, requeued) = self
            .transition(&request.get_ref().node_id, NodeTransition::Disable, Some(&reason))
            .await?;
        Ok(Response::new(pb::DisableNodeResponse {
            node: Some(node),
            requeued_chunks: i32::try_from(requeued).unwrap_or(i32::MAX),
        }))
    }

    #[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
    async fn enable_node(
        &self,
        request: Request<pb::EnableNodeRequest>,
    ) -> Result<Response<pb::EnableNodeResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let (node, _) = self
            .transition(&request.get_ref().node_id, NodeTransition::Enable, None)
            .await?;
        Ok(Response::new(pb::EnableNodeResponse { node: Some(node) }))
    }

    #[instrument(skip_all)]
    async fn requeue_frames(
        &self,
        request: Request<pb::RequeueFramesRequest>,
    ) -> Result<Response<pb::RequeueFramesResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let selector = selector_from_wire(message.selector.as_ref()).map_err(ControlPlaneError::from)?;
        let limit = match message.limit {
            0 => DEFAULT_REQUEUE_LIMIT,
            value @ 1..=100_000 => value,
            _ => return Err(ControlPlaneError::from(FieldError::new("limit", "must be between 1 and 100000")).into()),
        };
        let mut transaction = self.state.pool.begin().await.map_err(ControlPlaneError::from)?;
        // One more than the limit tells us the selection is too big to move safely.
        let rows = db::frame_job_admin::select(&mut transaction, &selector, i64::from(limit) + 1, !message.dry_run)
            .await
            .map_err(ControlPlaneError::from)?;
        if rows.len() > limit as usize {
            return Err(ControlPlaneError::FailedPrecondition(format!(
                "selector matches more than {limit} chunks; narrow it or raise limit"
            ))
            .into());
        }
        if !message.dry_run && !rows.is_empty() {
            let moved = db::frame_job_admin::requeue(&mut transaction, &rows)
                .await
                .map_err(ControlPlaneError::from)?;
            db::frame_jobs::notify_work(&mut transaction)
                .await
                .map_err(ControlPlaneError::from)?;
            transaction.commit().await.map_err(ControlPlaneError::from)?;
            self.state.dispatcher.work_added();
            info!(chunks = rows.len(), moved, "frames requeued by ops");
        }
        Ok(Response::new(pb::RequeueFramesResponse {
            frame_jobs: rows.iter().map(frame_job_to_wire).collect(),
            dry_run: message.dry_run,
        }))
    }

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn list_frame_jobs(
        &self,
        request: Request<pb::ListFrameJobsRequest>,
    ) -> Result<Response<pb::ListFrameJobsResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let job_id = JobId::parse_field(&message.job_id, "job_id").map_err(ControlPlaneError::from)?;
        let states = message
            .states
            .iter()
            .enumerate()
            .map(|(index, state)| FrameJobState::from_wire(*state, &format!("states[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        // An unknown job is not found, not an empty list.
        jobs::get(&self.state.pool, job_id).await?;
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let rows = db::frame_job_admin::list_for_job(&mut connection, job_id, &states)
            .await
            .map_err(ControlPlaneError::from)?;
        Ok(Response::new(pb::ListFrameJobsResponse {
            frame_jobs: rows.iter().map(frame_job_to_wire).collect(),
        }))
    }

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id").map_err(ControlPlaneError::from)?;
        let reason = bounded_text(&request.get_ref().reason, "reason", 1000).map_err(ControlPlaneError::from)?;
        let job = jobs::cancel(&self.state.pool, job_id, &reason).await?;
        Ok(Response::new(pb::CancelJobResponse {
            job: Some(convert::job(&job)),
        }))
    }

    #[instrument(skip_all, fields(job_id = %request.get_ref().job_id))]
    async fn retry_job(&self, request: Request<pb::RetryJobRequest>) -> Result<Response<pb::RetryJobResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let job_id = JobId::parse_field(&request.get_ref().job_id, "job_id").map_err(ControlPlaneError::from)?;
        let (job, requeued) = jobs::retry(&self.state.pool, job_id).await?;
        self.state.dispatcher.work_added();
        Ok(Response::new(pb::RetryJobResponse {
            job: Some(convert::job(&job)),
            requeued_chunks: i32::try_from(requeued).unwrap_or(i32::MAX),
        }))
    }

    #[instrument(skip_all)]
    async fn list_crashes(
        &self,
        request: Request<pb::ListCrashesRequest>,
    ) -> Result<Response<pb::ListCrashesResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let node_id = NodeId::parse_optional_field(&message.node_id, "node_id").map_err(ControlPlaneError::from)?;
        let crash_class =
            CrashClass::from_wire_optional(message.crash_class, "crash_class").map_err(ControlPlaneError::from)?;
        let limit = page_size(message.page_size, 100, 1000).map_err(ControlPlaneError::from)?;
        let after = decode_cursor(&message.page_token).map_err(ControlPlaneError::from)?;
        let since = convert::from_timestamp(message.since.as_ref());
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let mut rows = db::crashes::list(&mut connection, node_id, crash_class, since, after, limit + 1)
            .await
            .map_err(ControlPlaneError::from)?;
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
        Ok(Response::new(pb::ListCrashesResponse {
            crashes,
            next_page_token,
        }))
    }

    #[instrument(skip_all)]
    async fn ensure_partitions(
        &self,
        request: Request<pb::EnsurePartitionsRequest>,
    ) -> Result<Response<pb::EnsurePartitionsResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let config = &self.state.config.partitions;
        let months_ahead = match request.get_ref().months_ahead {
            0 => config.months_ahead,
            value @ 1..=24 => value,
            _ => {
                return Err(
                    ControlPlaneError::from(FieldError::new("months_ahead", "must be between 0 and 24")).into(),
                );
            }
        };
        let report = partitions::upkeep(&self.state.pool, months_ahead, config.retention_months).await?;
        Ok(Response::new(pb::EnsurePartitionsResponse {
            created: report.created,
            dropped: report.dropped,
        }))
    }

    #[instrument(skip_all)]
    async fn list_partitions(
        &self,
        request: Request<pb::ListPartitionsRequest>,
    ) -> Result<Response<pb::ListPartitionsResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let rows = db::partitions::list(&mut connection, partitions::HEALTH_LOGS)
            .await
            .map_err(ControlPlaneError::from)?;
        Ok(Response::new(pb::ListPartitionsResponse {
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
        }))
    }

    #[instrument(skip_all)]
    async fn get_farm_stats(
        &self,
        request: Request<pb::GetFarmStatsRequest>,
    ) -> Result<Response<pb::GetFarmStatsResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        let counts = |rows: Vec<(String, i64)>| {
            rows.into_iter()
                .map(|(state, count)| pb::CountByState { state, count })
                .collect()
        };
        let nodes = counts(
            db::nodes::count_by_state(&mut connection)
                .await
                .map_err(ControlPlaneError::from)?,
        );
        let frame_jobs = counts(
            db::frame_jobs::count_by_state(&mut connection)
                .await
                .map_err(ControlPlaneError::from)?,
        );
        let jobs = counts(
            db::jobs::count_by_status(&mut connection)
                .await
                .map_err(ControlPlaneError::from)?,
        );
        let tenants = db::frame_jobs::tenant_queues(&mut connection)
            .await
            .map_err(ControlPlaneError::from)?
            .into_iter()
            .map(|(tenant, pending, leased)| pb::TenantQueue {
                tenant_id: tenant.to_string(),
                pending_chunks: pending,
                leased_chunks: leased,
            })
            .collect();
        let crashes_last_24h = db::crashes::count_last_day(&mut connection)
            .await
            .map_err(ControlPlaneError::from)?;
        Ok(Response::new(pb::GetFarmStatsResponse {
            nodes,
            frame_jobs,
            jobs,
            tenants,
            crashes_last_24h,
        }))
    }

    #[instrument(skip_all)]
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let message = request.get_ref();
        let kind = TokenKind::from_wire(message.kind, "kind").map_err(ControlPlaneError::from)?;
        if kind == TokenKind::Node {
            return Err(ControlPlaneError::from(FieldError::new(
                "kind",
                "node tokens are issued by RegisterNode; create a join token",
            ))
            .into());
        }
        let label = bounded_text(&message.label, "label", 200).map_err(ControlPlaneError::from)?;
        let tenant_ids = message
            .tenant_ids
            .iter()
            .enumerate()
            .map(|(index, id)| TenantId::parse_field(id, &format!("tenant_ids[{index}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        if !tenant_ids.is_empty() && kind != TokenKind::Service {
            return Err(ControlPlaneError::from(FieldError::new(
                "tenant_ids",
                "only service tokens are scoped to tenants",
            ))
            .into());
        }
        let expires_at = match message.ttl.as_ref() {
            None => None,
            Some(ttl) => {
                let ttl = convert::from_duration(Some(ttl))
                    .filter(|ttl| !ttl.is_zero())
                    .ok_or_else(|| ControlPlaneError::from(FieldError::new("ttl", "must be positive")))?;
                Some(
                    convert::from_now(ttl)
                        .ok_or_else(|| ControlPlaneError::from(FieldError::new("ttl", "is too far in the future")))?,
                )
            }
        };
        let scope = (!tenant_ids.is_empty()).then_some(tenant_ids.as_slice());
        let (token_id, token) = auth::create_token(&self.state.pool, kind, &label, scope, None, expires_at).await?;
        info!(%token_id, %kind, label = %label, "token created");
        Ok(Response::new(pb::CreateTokenResponse {
            token_id: token_id.to_string(),
            token,
        }))
    }

    #[instrument(skip_all, fields(token_id = %request.get_ref().token_id))]
    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        self.state.authorize(&request, ADMIN).await?;
        let token_id =
            TokenId::parse_field(&request.get_ref().token_id, "token_id").map_err(ControlPlaneError::from)?;
        let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
        if !db::tokens::revoke(&mut connection, token_id)
            .await
            .map_err(ControlPlaneError::from)?
        {
            return Err(ControlPlaneError::NotFound(format!("live token {token_id}")).into());
        }
        self.state.auth.forget(token_id);
        info!(%token_id, "token revoked");
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }
}
