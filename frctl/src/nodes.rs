//! `frctl nodes list|show|drain|undrain|disable|enable`, and resolving a node given by name or id.

use flatrender_proto::{pb, types::NodeState};
use serde::Serialize;

use crate::{
    args::{NodesCommand, OutputFormat},
    connect::{Answer, Client, Failure, exit},
    duration,
    output::{Table, ago_cell, bytes, emit, or_dash, short_id, time_cell},
    views::{CacheEntryJson, ChunkJson, NodeJson, node_state, os_name},
};

/// Every node, following pages.
pub async fn all_nodes(client: &Client, states: &[NodeState]) -> Result<Vec<pb::Node>, Failure> {
    let mut nodes = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .admin()
            .list_nodes(client.request(pb::ListNodesRequest {
                states: states.iter().map(|state| state.to_wire()).collect(),
                page_size: 1000,
                page_token: page_token.clone(),
            }))
            .await
            .answer(client)?;
        nodes.extend(page.nodes);
        if page.next_page_token.is_empty() {
            return Ok(nodes);
        }
        page_token = page.next_page_token;
    }
}

/// A node argument (UUID or name) → node id; unknown or ambiguous names are exit 4 with the fix.
pub async fn resolve(client: &Client, node: &str) -> Result<String, Failure> {
    if uuid::Uuid::parse_str(node).is_ok() {
        return Ok(node.to_owned());
    }
    let matches: Vec<pb::Node> = all_nodes(client, &[])
        .await?
        .into_iter()
        .filter(|candidate| candidate.name == node)
        .collect();
    match matches.as_slice() {
        [only] => Ok(only.id.clone()),
        [] => Err(Failure::new(
            exit::NOT_FOUND,
            format!("unknown node `{node}`: no node has this name or id; see `frctl nodes list`"),
        )),
        several => {
            let ids: Vec<&str> = several.iter().map(|candidate| candidate.id.as_str()).collect();
            Err(Failure::new(
                exit::NOT_FOUND,
                format!(
                    "node name `{node}` is ambiguous ({}); pass the id instead",
                    ids.join(", ")
                ),
            ))
        }
    }
}

#[derive(Serialize)]
struct NodeListJson {
    nodes: Vec<NodeJson>,
}

#[derive(Serialize)]
struct NodeShowJson {
    node: NodeJson,
    running: Vec<ChunkJson>,
    cache: Vec<CacheEntryJson>,
}

#[derive(Serialize)]
struct NodeChangeJson {
    node: NodeJson,
    /// Disable only: chunks put back in the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    requeued_chunks: Option<i32>,
}

/// Runs a `nodes` subcommand.
pub async fn run(client: &Client, format: OutputFormat, command: NodesCommand) -> anyhow::Result<()> {
    match command {
        NodesCommand::List { states } => list(client, format, &states).await,
        NodesCommand::Show(node) => show(client, format, &node.node).await,
        NodesCommand::Drain { node, deadline } => {
            let node_id = resolve(client, &node.node).await?;
            let response = client
                .admin()
                .drain_node(client.request(pb::DrainNodeRequest {
                    node_id,
                    deadline: deadline.map(|deadline| prost_types::Duration {
                        seconds: i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                }))
                .await
                .answer(client)?;
            let note = match deadline {
                Some(deadline) => format!(
                    "running chunks may finish; what still runs in {} is requeued",
                    duration::format(deadline)
                ),
                None => "running chunks finish, no new work is given".to_owned(),
            };
            changed(format, response.node, None, &note)
        }
        NodesCommand::Undrain(node) => {
            let node_id = resolve(client, &node.node).await?;
            let response = client
                .admin()
                .undrain_node(client.request(pb::UndrainNodeRequest { node_id }))
                .await
                .answer(client)?;
            changed(format, response.node, None, "it takes work again")
        }
        NodesCommand::Disable { node, reason } => {
            let node_id = resolve(client, &node.node).await?;
            let response = client
                .admin()
                .disable_node(client.request(pb::DisableNodeRequest {
                    node_id,
                    reason: reason.unwrap_or_default(),
                }))
                .await
                .answer(client)?;
            let note = format!("{} running chunk(s) requeued", response.requeued_chunks);
            changed(format, response.node, Some(response.requeued_chunks), &note)
        }
        NodesCommand::Enable(node) => {
            let node_id = resolve(client, &node.node).await?;
            let response = client
                .admin()
                .enable_node(client.request(pb::EnableNodeRequest { node_id }))
                .await
                .answer(client)?;
            changed(format, response.node, None, "it takes work again")
        }
    }
}

async fn list(client: &Client, format: OutputFormat, states: &[NodeState]) -> anyhow::Result<()> {
    let nodes = all_nodes(client, states).await?;
    let json = NodeListJson {
        nodes: nodes.iter().map(NodeJson::from).collect(),
    };
    emit(format, &json, || {
        let mut table = Table::new(&["NAME", "STATE", "RUNNING", "OS", "AE", "LAST SEEN", "ID", "REASON"]);
        for node in &nodes {
            table.row(vec![
                node.name.clone(),
                node_state(node.state).to_owned(),
                format!("{}/{}", node.running_leases, node.max_leases),
                os_name(node.os).to_owned(),
                or_dash(&node.ae_version),
                ago_cell(node.last_seen_at.as_ref()),
                node.id.clone(),
                or_dash(&node.state_reason),
            ]);
        }
        table.print_or("no nodes");
    })
}

async fn show(client: &Client, format: OutputFormat, node: &str) -> anyhow::Result<()> {
    let node_id = resolve(client, node).await?;
    let response = client
        .admin()
        .get_node(client.request(pb::GetNodeRequest { node_id }))
        .await
        .answer(client)?;
    let node = response.node.unwrap_or_default();
    let json = NodeShowJson {
        node: NodeJson::from(&node),
        running: response.running.iter().map(ChunkJson::new).collect(),
        cache: response.cache.iter().map(CacheEntryJson::from).collect(),
    };
    emit(format, &json, || {
        print_node(&node);
        outln!("\nrunning chunks:");
        let mut running = Table::new(&["JOB", "CHUNK", "FRAMES", "DONE", "ATTEMPT", "LEASE EXPIRES"]);
        for chunk in &response.running {
            let range = chunk.frame_range.unwrap_or_default();
            running.row(vec![
                chunk.job_id.clone(),
                chunk.chunk_index.to_string(),
                format!("{}-{}", range.start, range.end),
                chunk.frames_done.to_string(),
                chunk.attempt.to_string(),
                time_cell(chunk.lease_expires_at.as_ref()),
            ]);
        }
        running.print_or("  none");
        outln!("\ncache: {} template(s)", response.cache.len());
        let total: i64 = response.cache.iter().map(|entry| entry.size_bytes).sum();
        if !response.cache.is_empty() {
            outln!("  {} in total; details: frctl cache show {}", bytes(total), node.name);
        }
    })
}

fn print_node(node: &pb::Node) {
    let lines = [
        ("name", node.name.clone()),
        ("id", node.id.clone()),
        ("state", node_state(node.state).to_owned()),
        ("reason", or_dash(&node.state_reason)),
        ("drain deadline", time_cell(node.drain_deadline.as_ref())),
        ("hostname", node.hostname.clone()),
        (
            "os",
            format!("{} {}", os_name(node.os), node.os_version).trim().to_owned(),
        ),
        ("after effects", or_dash(&node.ae_version)),
        ("encoder", encoder_cell(node)),
        ("agent", node.agent_version.clone()),
        (
            "hardware",
            format!("{} cores, {}", node.cpu_cores, bytes(node.memory_bytes)),
        ),
        ("tags", or_dash(&node.tags.join(","))),
        (
            "leases",
            format!("{} running / {} max", node.running_leases, node.max_leases),
        ),
        ("last seen", ago_cell(node.last_seen_at.as_ref())),
        ("registered", time_cell(node.registered_at.as_ref())),
    ];
    for (label, value) in lines {
        outln!("{label:<15} {value}");
    }
}

fn changed(
    format: OutputFormat,
    node: Option<pb::Node>,
    requeued_chunks: Option<i32>,
    note: &str,
) -> anyhow::Result<()> {
    let node = node.unwrap_or_default();
    let json = NodeChangeJson {
        node: NodeJson::from(&node),
        requeued_chunks,
    };
    emit(format, &json, || {
        outln!(
            "node {} ({}) is now {}: {note}",
            node.name,
            short_id(&node.id),
            node_state(node.state)
        );
    })
}

/// "ffmpeg 5.1.6 (encode only)", or "-" when the node takes no encode work.
fn encoder_cell(node: &pb::Node) -> String {
    let capabilities = node.capabilities.clone().unwrap_or_default();
    match capabilities.encoder {
        None => "-".to_owned(),
        Some(encoder) if capabilities.encode_only => format!("ffmpeg {} (encode only)", encoder.ffmpeg_version),
        Some(encoder) => format!("ffmpeg {}", encoder.ffmpeg_version),
    }
}
