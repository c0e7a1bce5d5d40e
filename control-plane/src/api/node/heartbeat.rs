//! Heartbeats: liveness, lease renewals (batched), health samples, cache inventory, state
//! changes the agent reports (quarantine, a passed probe, coming back), and the commands sent
//! back (cancel a lost lease, prefetch, drain).

use chrono::Utc;
use flatrender_proto::{
    pb,
    types::{ContentHash, FieldError, FrameJobId, JobId, NodeId, NodeState, TemplateId},
};
use tonic::Request;
use tracing::{instrument, warn};

use super::{node_of, work::lease_claim};
use crate::{
    api::{AppState, convert},
    db,
    error::{ControlPlaneError, ControlPlaneResult},
    nodes::{self, NodeTransition},
    views::{CacheEntryView, HealthSample},
};

const MAX_HEALTH_SAMPLES: usize = 1000;
const MAX_FRAMES_REMOVED: usize = 256;

fn health_sample(node_id: NodeId, sample: &pb::HealthSample, index: usize) -> Result<HealthSample, FieldError> {
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
    Ok(HealthSample {
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

fn cache_entries(inventory: &pb::CacheInventory) -> Result<(Vec<CacheEntryView>, Vec<ContentHash>), FieldError> {
    let mut upserted = Vec::with_capacity(inventory.upserted.len());
    for (index, entry) in inventory.upserted.iter().enumerate() {
        let field = |name: &str| format!("cache.upserted[{index}].{name}");
        upserted.push(CacheEntryView {
            hash: ContentHash::parse_hex(&entry.blake3_hex, &field("blake3_hex"))?,
            template_id: TemplateId::parse_optional_field(&entry.template_id, &field("template_id"))?,
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

#[instrument(skip_all, fields(node_id))]
pub(super) async fn heartbeat(
    state: &AppState,
    request: Request<pb::HeartbeatRequest>,
) -> ControlPlaneResult<pb::HeartbeatResponse> {
    let node_id = node_of(state, &request).await?;
    tracing::Span::current().record("node_id", tracing::field::display(node_id));
    let message = request.into_inner();
    state.nodes.record_seen(node_id);

    if message.health.len() > MAX_HEALTH_SAMPLES {
        return Err(FieldError::new("health", format!("at most {MAX_HEALTH_SAMPLES} samples per heartbeat")).into());
    }
    let samples = message
        .health
        .iter()
        .enumerate()
        .map(|(index, sample)| health_sample(node_id, sample, index))
        .collect::<Result<Vec<_>, _>>()?;
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
        .collect::<Result<Vec<_>, _>>()?;
    let inventory = message.cache.as_ref().map(cache_entries).transpose()?;
    let capabilities = message
        .capabilities
        .as_ref()
        .map(|wire| super::register::capabilities(Some(wire), "capabilities"))
        .transpose()?;
    if let Some(capabilities) = &capabilities {
        state.nodes.update_capabilities(node_id, capabilities).await?;
    }
    if message.frames_removed_job_ids.len() > MAX_FRAMES_REMOVED {
        return Err(FieldError::new(
            "frames_removed_job_ids",
            format!("at most {MAX_FRAMES_REMOVED} per heartbeat"),
        )
        .into());
    }
    let frames_removed = message
        .frames_removed_job_ids
        .iter()
        .enumerate()
        .map(|(index, id)| JobId::parse_field(id, &format!("frames_removed_job_ids[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    state.retention.confirm(node_id, &frames_removed).await?;

    let mut facts = state
        .nodes
        .facts(node_id)
        .await?
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
        match nodes::transition(&state.pool, &state.nodes, node_id, change, reason).await {
            Ok(_) | Err(ControlPlaneError::FailedPrecondition(_)) => {}
            Err(error) => return Err(error),
        }
        facts = state.nodes.facts(node_id).await?.unwrap_or(facts);
    }

    if let Some((upserted, removed)) = inventory
        && (message.cache.as_ref().is_some_and(|cache| cache.full_sync) || !upserted.is_empty() || !removed.is_empty())
    {
        let full_sync = message.cache.as_ref().is_some_and(|cache| cache.full_sync);
        let mut connection = state.pool.acquire().await?;
        db::nodes::apply_cache_inventory(&mut connection, node_id, full_sync, &upserted, &removed).await?;
        state.nodes.invalidate_cache_inventory(node_id);
    }
    state.health.submit(samples);

    let reported: Vec<(FrameJobId, i64)> = claims
        .iter()
        .map(|claim| (claim.frame_job_id, claim.token.get()))
        .collect();
    let renewed = state.renewer.renew(claims).await?;
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
        for template in state.dispatcher.prefetch_suggestions(node_id).await? {
            commands.push(pb::NodeCommand {
                command: Some(pb::node_command::Command::PrefetchTemplate(pb::PrefetchTemplate {
                    template: Some(convert::template(&template)),
                })),
            });
        }
    }
    // Finished jobs' frames past retention go, whatever the node's state.
    for job_id in state.retention.due(node_id).await? {
        commands.push(pb::NodeCommand {
            command: Some(pb::node_command::Command::RemoveFrames(pb::RemoveFrames {
                job_id: job_id.to_string(),
            })),
        });
    }
    if facts.state == NodeState::Draining {
        commands.push(pb::NodeCommand {
            command: Some(pb::node_command::Command::Drain(pb::Drain {
                deadline: convert::timestamp_opt(facts.drain_deadline),
            })),
        });
    }
    Ok(pb::HeartbeatResponse {
        state: facts.state.to_wire(),
        commands,
        heartbeat_interval: Some(convert::duration(state.config.dispatch.heartbeat_interval())),
    })
}
