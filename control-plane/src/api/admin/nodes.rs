//! Nodes: list, show (running chunks, cache), drain, undrain, disable, enable.

use flatrender_proto::{
    pb,
    types::{ContentHash, FieldError, NodeId, NodeState},
};
use tonic::Request;
use tracing::instrument;

use super::ADMIN;
use crate::{
    api::{AppState, bounded_text, convert, page_size},
    db,
    error::{ControlPlaneError, ControlPlaneResult},
    nodes::{self, NodeTransition},
};

async fn node_view(state: &AppState, node_id: NodeId) -> ControlPlaneResult<pb::Node> {
    let mut connection = state.pool.acquire().await?;
    let row = db::nodes::get(&mut connection, node_id)
        .await?
        .ok_or_else(|| ControlPlaneError::NotFound(format!("node {node_id}")))?;
    Ok(convert::node_to_wire(&row))
}

async fn transition(
    state: &AppState,
    node_id: &str,
    change: NodeTransition,
    reason: Option<&str>,
) -> ControlPlaneResult<(pb::Node, u64)> {
    let node_id = NodeId::parse_field(node_id, "node_id")?;
    let requeued = nodes::transition(&state.pool, &state.nodes, node_id, change, reason).await?;
    if requeued > 0 {
        state.dispatcher.work_added();
    }
    Ok((node_view(state, node_id).await?, requeued))
}

#[instrument(skip_all)]
pub(super) async fn list_nodes(
    state: &AppState,
    request: Request<pb::ListNodesRequest>,
) -> ControlPlaneResult<pb::ListNodesResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let states = message
        .states
        .iter()
        .enumerate()
        .map(|(index, state)| NodeState::from_wire(*state, &format!("states[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let limit = page_size(message.page_size, 100, 1000)?;
    let after = (!message.page_token.is_empty()).then_some(message.page_token.as_str());
    let mut connection = state.pool.acquire().await?;
    let mut rows = db::nodes::list(&mut connection, &states, after, limit + 1).await?;
    let next_page_token = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.name.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(pb::ListNodesResponse {
        nodes: rows.iter().map(convert::node_to_wire).collect(),
        next_page_token,
    })
}

#[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
pub(super) async fn get_node(
    state: &AppState,
    request: Request<pb::GetNodeRequest>,
) -> ControlPlaneResult<pb::GetNodeResponse> {
    state.authorize(&request, ADMIN).await?;
    let node_id = NodeId::parse_field(&request.get_ref().node_id, "node_id")?;
    let node = node_view(state, node_id).await?;
    let mut connection = state.pool.acquire().await?;
    let running = db::frame_job_admin::running_on(&mut connection, node_id).await?;
    let cache = db::nodes::cache_view(&mut connection, node_id).await?;
    Ok(pb::GetNodeResponse {
        node: Some(node),
        running: running.iter().map(convert::frame_job_to_wire).collect(),
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
    })
}

#[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
pub(super) async fn drain_node(
    state: &AppState,
    request: Request<pb::DrainNodeRequest>,
) -> ControlPlaneResult<pb::DrainNodeResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let deadline = match message.deadline.as_ref() {
        None => None,
        Some(deadline) => {
            let duration = convert::from_duration(Some(deadline))
                .ok_or_else(|| FieldError::new("deadline", "must not be negative"))?;
            Some(convert::from_now(duration).ok_or_else(|| FieldError::new("deadline", "is too far in the future"))?)
        }
    };
    let (node, _) = transition(
        state,
        &message.node_id,
        NodeTransition::Drain(deadline),
        Some("drained by ops"),
    )
    .await?;
    Ok(pb::DrainNodeResponse { node: Some(node) })
}

#[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
pub(super) async fn undrain_node(
    state: &AppState,
    request: Request<pb::UndrainNodeRequest>,
) -> ControlPlaneResult<pb::UndrainNodeResponse> {
    state.authorize(&request, ADMIN).await?;
    let (node, _) = transition(state, &request.get_ref().node_id, NodeTransition::Undrain, None).await?;
    Ok(pb::UndrainNodeResponse { node: Some(node) })
}

#[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
pub(super) async fn disable_node(
    state: &AppState,
    request: Request<pb::DisableNodeRequest>,
) -> ControlPlaneResult<pb::DisableNodeResponse> {
    state.authorize(&request, ADMIN).await?;
    let reason = bounded_text(&request.get_ref().reason, "reason", 1000)?;
    let reason = if reason.is_empty() {
        "disabled by ops".to_owned()
    } else {
        reason
    };
    let (node, requeued) = transition(
        state,
        &request.get_ref().node_id,
        NodeTransition::Disable,
        Some(&reason),
    )
    .await?;
    Ok(pb::DisableNodeResponse {
        node: Some(node),
        requeued_chunks: i32::try_from(requeued).unwrap_or(i32::MAX),
    })
}

#[instrument(skip_all, fields(node_id = %request.get_ref().node_id))]
pub(super) async fn enable_node(
    state: &AppState,
    request: Request<pb::EnableNodeRequest>,
) -> ControlPlaneResult<pb::EnableNodeResponse> {
    state.authorize(&request, ADMIN).await?;
    let (node, _) = transition(state, &request.get_ref().node_id, NodeTransition::Enable, None).await?;
    Ok(pb::EnableNodeResponse { node: Some(node) })
}
