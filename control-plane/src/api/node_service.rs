//! `NodeService`: agents register with a join token, then use their node token to heartbeat,
//! take work, and report progress, results and failures. Every call that touches a lease
//! presents its fencing token; a stale one changes nothing.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use flatrender_proto::{
    pb::{self, node_service_server::NodeService},
    types::{
        ContentHash, CrashClass, FieldError, FrameJobId, LeaseToken, NodeId, NodeState, OperatingSystem,
        RecoveryAction, TemplateId, TokenKind,
    },
};
use tonic::{Request, Response, Status};
use tracing::{info, instrument, warn};

use super::{AppState, bounded_text, convert, validate_tags};
use crate::{
    db::{
        self,
        frame_jobs::{Completion, CompletionVerdict, LeaseClaim},
        health_logs::HealthSampleRow,
    },
    error::ControlPlaneError,
    leases::{self, FailureReport},
    nodes::{self, NodeRegistration, NodeTransition},
};

const MAX_CHUNKS_PER_ACQUIRE: i32 = 16;
const MAX_COMPLETIONS: usize = 64;
const MAX_HEALTH_SAMPLES: usize = 1000;
const MAX_LOG_TAIL: usize = 64 * 1024;

/// The `NodeService` implementation.
pub struct NodeApi {
    state: Arc<AppState>,
}

impl NodeApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    async fn node<T>(&self, request: &Request<T>) -> Result<NodeId, ControlPlaneError> {
        self.state.authorize(request, &[TokenKind::Node]).await?.node()
    }
}

fn validate_registration(request: &pb::RegisterNodeRequest) -> Result<NodeRegistration, FieldError> {
    let name = request.name.trim();
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(FieldError::new(
            "name",
            "must be 1..128 of letters, digits, '.', '_', '-', starting with a letter or digit",
        ));
    }
    let hostname = bounded_text(&request.hostname, "hostname", 255)?;
    if hostname.is_empty() {
        return Err(FieldError::new("hostname", "is required"));
    }
    let optional = |value: &str, field: &str, max: usize| -> Result<Option<String>, FieldError> {
        let text = bounded_text(value, field, max)?;
        Ok(if text.is_empty() { None } else { Some(text) })
    };
    let agent_version = bounded_text(&request.agent_version, "agent_version", 64)?;
    if agent_version.is_empty() {
        return Err(FieldError::new("agent_version", "is required"));
    }
    if request.cpu_cores <= 0 || request.cpu_cores > 4096 {
        return Err(FieldError::new("cpu_cores", "must be between 1 and 4096"));
    }
    if request.memory_bytes < 0 {
        return Err(FieldError::new("memory_bytes", "must be >= 0"));
    }
    validate_tags(&request.tags, "tags")?;
    let max_leases = match request.max_leases {
        0 => 1,
        value @ 1..=64 => value,
        _ => return Err(FieldError::new("max_leases", "must be between 1 and 64")),
    };
    Ok(NodeRegistration {
        name: name.to_owned(),
        hostname,
        os: OperatingSystem::from_wire(request.os, "os")?,
        os_version: optional(&request.os_version, "os_version", 128)?,
        ae_version: optional(&request.ae_version, "ae_version", 64)?,
        agent_version,
        cpu_cores: request.cpu_cores,
        memory_bytes: request.memory_bytes,
        tags: request.tags.clone(),
        max_leases,
    })
}

fn lease_claim(
    frame_job_id: &str,
    token: i64,
    node_id: NodeId,
    frames_done: i32,
    field: &str,
) -> Result<LeaseClaim, FieldError> {
    let frame_job_id = FrameJobId::parse_field(frame_job_id, &format!("{field}frame_job_id"))?;
    let token = LeaseToken::new(token, &format!("{field}lease_token"))?;
    if frames_done < 0 {
        return Err(FieldError::new(format!("{field}frames_done"), "must be >= 0"));
    }
    Ok(LeaseClaim {
        frame_job_id,
        token,
        node_id,
        frames_done,
    })
}

fn health_sample(node_id: NodeId, sample: &pb::HealthSample, index: usize) -> Result<HealthSampleRow, FieldError> {
    let field = |name: &str| format!("health[{index}].{name}");
    let recorded_at = convert::from_timestamp(sample.recorded_at.as_ref())
        .ok_or_else(|| FieldError::new(field("recorded_at"), "is required"))?;
    if !(0.0..=100.0).contains(&sample.cpu_percent) {
        return Err(FieldError::new(field("cpu_percent"), "must be between 0 and 100"));
    }
    let non_negative = [
        (sample.memory_used_bytes, "memory_used_bytes"),
        (sample.memory_total_bytes, "memory_total_bytes"),
        (sample.swap_used_bytes, "swap_used_bytes"),
        (sample.swap_total_bytes, "swap_total_bytes"),
        (sample.cache_disk_free_bytes, "cache_disk_free_bytes"),
        (sample.output_disk_free_bytes, "output_disk_free_bytes"),
        (sample.ae_memory_bytes, "ae_memory_bytes"),
        (sample.uptime_seconds, "uptime_seconds"),
        (i64::from(sample.ae_process_count), "ae_process_count"),
    ];
    if let Some((_, name)) = non_negative.iter().find(|(value, _)| *value < 0) {
        return Err(FieldError::new(field(name), "must be >= 0"));
    }
    if !sample.load_average_1m.is_finite() || sample.load_average_1m < 0.0 {
        return Err(FieldError::new(field("load_average_1m"), "must be >= 0"));
    }
    Ok(HealthSampleRow {
        node_id,
        recorded_at,
        cpu_percent: sample.cpu_percent,
        memory_used_bytes: sample.memory_used_bytes,
        memory_total_bytes: sample.memory_total_bytes,
        swap_used_bytes: sample.swap_used_bytes,
        swap_total_bytes: sample.swap_total_bytes,
        cache_disk_free_bytes: sample.cache_disk_free_bytes,
        output_disk_free_bytes: sample.output_disk_free_bytes,
        ae_process_count: sample.ae_process_count,
        ae_memory_bytes: sample.ae_memory_bytes,
        load_average_1m: sample.load_average_1m,
        uptime_seconds: sample.uptime_seconds,
        aerender_running: sample.aerender_running,
    })
}

fn cache_entries(
    inventory: &pb::CacheInventory,
) -> Result<(Vec<db::nodes::CacheEntryRow>, Vec<ContentHash>), FieldError> {
    let mut upserted = Vec::with_capacity(inventory.upserted.len());
    for (index, entry) in inventory.upserted.iter().enumerate() {
        let field = |name: &str| format!("cache.upserted[{index}].{name}");
        upserted.push(db::nodes::CacheEntryRow {
            hash: ContentHash::parse_hex(&entry.blake3_hex, &field("blake3_hex"))?,
            template_id: TemplateId::parse_optional_field(&entry.template_id, &field("template_id"))?
                .map(|id| id.as_uuid()),
            template_version: (entry.template_version > 0).then_some(entry.template_version),
            size_bytes: entry.size_bytes.max(0),
            hits: entry.hits.max(0),
            last_used_at: convert::from_timestamp(entry.last_used_at.as_ref()).unwrap_or_else(Utc::now),
        });
    }
    let removed = inventory
        .removed_blake3_hex
        .iter()
        .enumerate()
        .map(|(index, hex)| ContentHash::parse_hex(hex, &format!("cache.removed_blake3_hex[{index}]")))
        .collect::<Result<_, _>>()?;
    Ok((upserted, removed))
}

#[tonic::async_trait]
impl NodeService for NodeApi {
    #[instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        self.state.authorize(&request, &[TokenKind::Join]).await?;
        let registration = validate_registration(request.get_ref()).map_err(ControlPlaneError::from)?;
        let nodes::Registered {
            node_id,
            state,
            token: node_token,
        } = nodes::register(&self.state.pool, &self.state.nodes, &registration).await?;
        let dispatch = &self.state.config.dispatch;
        Ok(Response::new(pb::RegisterNodeResponse {
            node_id: node_id.to_string(),
            node_token,
            heartbeat_interval: Some(convert::duration(dispatch.heartbeat_interval())),
            lease_ttl: Some(convert::duration(dispatch.lease_ttl())),
            state: state.to_wire(),
        }))
    }

    #[instrument(skip_all, fields(node_id))]
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let node_id = self.node(&request).await?;
        tracing::Span::current().record("node_id", tracing::field::display(node_id));
        let message = request.into_inner();
        self.state.nodes.record_seen(node_id);

        if message.health.len() > MAX_HEALTH_SAMPLES {
            return Err(ControlPlaneError::from(FieldError::new(
                "health",
                format!("at most {MAX_HEALTH_SAMPLES} samples per heartbeat"),
            ))
            .into());
        }
        let samples = message
            .health
            .iter()
            .enumerate()
            .map(|(index, sample)| health_sample(node_id, sample, index))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        let claims = message
            .leases
            .iter()
            .enumerate()
            .map(|(index, lease)| {
                lease_claim(
                    &lease.frame_job_id,
                    lease.lease_token,
                    node_id,
                    lease.frames_done,
                    &format!("leases[{index}]."),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(ControlPlaneError::from)?;
        let inventory = message
            .cache
            .as_ref()
            .map(cache_entries)
            .transpose()
            .map_err(ControlPlaneError::from)?;

        let mut facts = self
            .state
            .nodes
            .facts(node_id)
            .await
            .map_err(ControlPlaneError::from)?
            .ok_or_else(|| ControlPlaneError::NotFound(format!("node {node_id}")))?;
        let transition = if facts.state == NodeState::Offline {
            Some(NodeTransition::CameBack)
        } else if message.quarantined && facts.state != NodeState::Quarantined {
            Some(NodeTransition::Quarantine)
        } else if message.probe_succeeded && facts.state == NodeState::Quarantined {
            Some(NodeTransition::ProbeSucceeded)
        } else {
            None
        };
        if let Some(change) = transition {
            let reason = (!message.quarantine_reason.is_empty()).then_some(message.quarantine_reason.as_str());
            match nodes::transition(&self.state.pool, &self.state.nodes, node_id, change, reason).await {
                Ok(_) | Err(ControlPlaneError::FailedPrecondition(_)) => {}
                Err(error) => return Err(error.into()),
            }
            facts = self
                .state
                .nodes
                .facts(node_id)
                .await
                .map_err(ControlPlaneError::from)?
                .unwrap_or(facts);
        }

        if let Some((upserted, removed)) = inventory
            && (message.cache.as_ref().is_some_and(|cache| cache.full_sync)
                || !upserted.is_empty()
                || !removed.is_empty())
        {
            let full_sync = message.cache.as_ref().is_some_and(|cache| cache.full_sync);
            let mut connection = self.state.pool.acquire().await.map_err(ControlPlaneError::from)?;
            db::nodes::apply_cache_inventory(&mut connection, node_id, full_sync, &upserted, &removed)
                .await
                .map_err(ControlPlaneError::from)?;
            self.state.nodes.invalidate_cache_inventory(node_id);
        }
        self.state.health.submit(samples);

        let reported: Vec<(FrameJobId, i64)> = claims
            .iter()
            .map(|claim| (claim.frame_job_id, claim.token.get()))
            .collect();
        let renewed = self.state.renewer.renew(claims).await?;
        let mut commands = Vec::new();
        for (frame_job_id, token) in reported {
            if !renewed.contains(&frame_job_id) {
                warn!(%frame_job_id, %node_id, lease_token = token, "lease not live; telling node to stop");
                commands.push(pb::NodeCommand {
                    command: Some(pb::node_command::Command::CancelLease(pb::CancelLease {
                        frame_job_id: frame_job_id.to_string(),
                        lease_token: token,
                        reason: "lease is no longer live (cancelled, expired or requeued)".into(),
                    })),
                });
            }
        }
        // An idle node warms its cache with what the queue needs next.
        if facts.state == NodeState::Online && message.leases.is_empty() {
            for template in self.state.dispatcher.prefetch_suggestions(node_id).await? {
                commands.push(pb::NodeCommand {
                    command: Some(pb::node_command::Command::PrefetchTemplate(pb::PrefetchTemplate {
                        template: Some(convert::template(&template)),
                    })),
                });
            }
        }
        if facts.state == NodeState::Draining {
            commands.push(pb::NodeCommand {
                command: Some(pb::node_command::Command::Drain(pb::Drain {
                    deadline: convert::timestamp_opt(facts.drain_deadline),
                })),
            });
        }
        Ok(Response::new(pb::HeartbeatResponse {
            state: facts.state.to_wire(),
            commands,
            heartbeat_interval: Some(convert::duration(self.state.config.dispatch.heartbeat_interval())),
        }))
    }

    #[instrument(skip_all, fields(node_id))]
    async fn acquire_work(
        &self,
        request: Request<pb::AcquireWorkRequest>,
    ) -> Result<Response<pb::AcquireWorkResponse>, Status> {
        let node_id = self.node(&request).await?;
        tracing::Span::current().record("node_id", tracing::field::display(node_id));
        self.state.nodes.record_seen(node_id);
        let message = request.get_ref();
        if !(1..=MAX_CHUNKS_PER_ACQUIRE).contains(&message.max_chunks) {
            return Err(ControlPlaneError::from(FieldError::new(
                "max_chunks",
                format!("must be between 1 and {MAX_CHUNKS_PER_ACQUIRE}"),
            ))
            .into());
        }
        let max_wait = Duration::from_secs(self.state.config.dispatch.max_acquire_wait_seconds);
        let wait = match message.wait.as_ref() {
            None => Duration::ZERO,
            Some(wait) => convert::from_duration(Some(wait))
                .filter(|wait| *wait <= max_wait)
                .ok_or_else(|| {
                    ControlPlaneError::from(FieldError::new(
                        "wait",
                        format!("must be between 0 and {}s", max_wait.as_secs()),
                    ))
                })?,
        };
        let assignments = self
            .state
            .dispatcher
            .acquire(node_id, i64::from(message.max_chunks), wait)
            .await?;
        Ok(Response::new(pb::AcquireWorkResponse {
            assignments: assignments.iter().map(convert::assignment).collect(),
        }))
    }

    #[instrument(skip_all, fields(frame_job_id = %request.get_ref().frame_job_id, lease_token = request.get_ref().lease_token))]
    async fn report_progress(
        &self,
        request: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::ReportProgressResponse>, Status> {
        let node_id = self.node(&request).await?;
        self.state.nodes.record_seen(node_id);
        let message = request.get_ref();
        let claim = lease_claim(
            &message.frame_job_id,
            message.lease_token,
            node_id,
            message.frames_done,
            "",
        )
        .map_err(ControlPlaneError::from)?;
        let expires = leases::report_progress(
            &self.state.pool,
            claim,
            &message.frames_written,
            self.state.config.dispatch.lease_ttl(),
        )
        .await?;
        Ok(Response::new(pb::ReportProgressResponse {
            lease_expires_at: Some(convert::timestamp(expires)),
        }))
    }

    #[instrument(skip_all, fields(node_id, chunks = request.get_ref().chunks.len()))]
    async fn complete_work(
        &self,
        request: Request<pb::CompleteWorkRequest>,
    ) -> Result<Response<pb::CompleteWorkResponse>, Status> {
        let node_id = self.node(&request).await?;
        tracing::Span::current().record("node_id", tracing::field::display(node_id));
        self.state.nodes.record_seen(node_id);
        let message = request.get_ref();
        if message.chunks.is_empty() || message.chunks.len() > MAX_COMPLETIONS {
            return Err(ControlPlaneError::from(FieldError::new(
                "chunks",
                format!("must hold 1..{MAX_COMPLETIONS} chunks"),
            ))
            .into());
        }
        let mut completions = Vec::with_capacity(message.chunks.len());
        for (index, chunk) in message.chunks.iter().enumerate() {
            let claim = lease_claim(
                &chunk.frame_job_id,
                chunk.lease_token,
                node_id,
                0,
                &format!("chunks[{index}]."),
            )
            .map_err(ControlPlaneError::from)?;
            let mut outputs = Vec::with_capacity(chunk.outputs.len());
            for (output_index, output) in chunk.outputs.iter().enumerate() {
                let field = |name: &str| format!("chunks[{index}].outputs[{output_index}].{name}");
                let path = bounded_text(&output.path, &field("path"), 4096).map_err(ControlPlaneError::from)?;
                if path.is_empty() {
                    return Err(ControlPlaneError::from(FieldError::new(field("path"), "is required")).into());
                }
                if output.frame < 0 {
                    return Err(ControlPlaneError::from(FieldError::new(field("frame"), "must be >= 0")).into());
                }
                if output.size_bytes < 0 {
                    return Err(ControlPlaneError::from(FieldError::new(field("size_bytes"), "must be >= 0")).into());
                }
                let hash = ContentHash::parse_hex(&output.blake3_hex, &field("blake3_hex"))
                    .map_err(ControlPlaneError::from)?;
                outputs.push(serde_json::json!({"frame": output.frame, "path": path, "size_bytes": output.size_bytes, "blake3": hash.to_hex()}));
            }
            if !chunk.render_seconds.is_finite() || chunk.render_seconds < 0.0 {
                return Err(ControlPlaneError::from(FieldError::new(
                    format!("chunks[{index}].render_seconds"),
                    "must be >= 0",
                ))
                .into());
            }
            completions.push(Completion {
                frame_job_id: claim.frame_job_id,
                token: claim.token,
                outputs: serde_json::Value::Array(outputs),
                render_seconds: chunk.render_seconds,
            });
        }
        let verdicts = leases::complete(&self.state.pool, node_id, &completions, &self.state.metrics).await?;
        let results = verdicts
            .into_iter()
            .map(|(frame_job_id, verdict)| pb::CompletionResult {
                frame_job_id: frame_job_id.to_string(),
                outcome: match verdict {
                    CompletionVerdict::Accepted => pb::CompletionOutcome::Accepted,
                    CompletionVerdict::Duplicate => pb::CompletionOutcome::Duplicate,
                    CompletionVerdict::Stale => pb::CompletionOutcome::StaleLease,
                } as i32,
            })
            .collect();
        Ok(Response::new(pb::CompleteWorkResponse { results }))
    }

    #[instrument(skip_all, fields(frame_job_id = %request.get_ref().frame_job_id, lease_token = request.get_ref().lease_token))]
    async fn fail_work(&self, request: Request<pb::FailWorkRequest>) -> Result<Response<pb::FailWorkResponse>, Status> {
        let node_id = self.node(&request).await?;
        self.state.nodes.record_seen(node_id);
        let message = request.get_ref();
        let claim =
            lease_claim(&message.frame_job_id, message.lease_token, node_id, 0, "").map_err(ControlPlaneError::from)?;
        let error_class = bounded_text(&message.error_class, "error_class", 64).map_err(ControlPlaneError::from)?;
        if message.log_tail.len() > MAX_LOG_TAIL {
            return Err(ControlPlaneError::from(FieldError::new("log_tail", "must be at most 64 KiB")).into());
        }
        let report = FailureReport {
            frame_job_id: claim.frame_job_id,
            token: claim.token,
            crash_class: CrashClass::from_wire_optional(message.crash_class, "crash_class")
                .map_err(ControlPlaneError::from)?
                .unwrap_or(CrashClass::Unknown),
            error_class: (!error_class.is_empty()).then_some(error_class),
            exit_code: message.exit_code,
            log_tail: message.log_tail.clone(),
            message: bounded_text(&message.message, "message", 4000).map_err(ControlPlaneError::from)?,
            frames_written: message.frames_written.clone(),
            recovery_action: RecoveryAction::from_wire_optional(message.recovery_action, "recovery_action")
                .map_err(ControlPlaneError::from)?
                .unwrap_or(RecoveryAction::RetryElsewhere),
        };
        let will_retry = leases::fail(&self.state.pool, node_id, &report, &self.state.metrics).await?;
        if will_retry {
            self.state.dispatcher.work_added();
        }
        info!(%node_id, will_retry, "failure recorded");
        Ok(Response::new(pb::FailWorkResponse { will_retry }))
    }
}
