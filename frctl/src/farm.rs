//! Farm-wide views: `frctl stats`, `frctl partitions ensure|list` and `frctl cache show NODE`.

use std::collections::BTreeMap;

use flatrender_proto::pb;
use serde::Serialize;

use crate::{
    args::{CacheCommand, OutputFormat, PartitionsCommand},
    connect::{Answer, Client, Failure, exit},
    nodes::resolve,
    output::{Table, bytes, emit, or_dash, rfc3339, time_cell},
    views::CacheEntryJson,
};

#[derive(Serialize)]
struct TenantQueueJson {
    tenant_id: String,
    pending_chunks: i64,
    leased_chunks: i64,
}

#[derive(Serialize)]
struct StatsJson {
    /// Node count by state.
    nodes: BTreeMap<String, i64>,
    /// Chunk count by state.
    chunks: BTreeMap<String, i64>,
    /// Job count by status.
    jobs: BTreeMap<String, i64>,
    tenants: Vec<TenantQueueJson>,
    crashes_last_24h: i64,
}

#[derive(Serialize)]
struct PartitionJson {
    parent: String,
    name: String,
    /// Null for the default partition.
    range_start: Option<String>,
    range_end: Option<String>,
    approximate_rows: i64,
}

#[derive(Serialize)]
struct PartitionListJson {
    partitions: Vec<PartitionJson>,
}

#[derive(Serialize)]
struct EnsuredJson {
    created: i32,
    dropped: i32,
}

#[derive(Serialize)]
struct CacheShowJson {
    node_id: String,
    node_name: String,
    total_bytes: i64,
    cache: Vec<CacheEntryJson>,
}

fn by_state(counts: &[pb::CountByState]) -> BTreeMap<String, i64> {
    counts.iter().map(|count| (count.state.clone(), count.count)).collect()
}

fn summary(counts: &BTreeMap<String, i64>) -> String {
    let total: i64 = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(state, count)| format!("{state} {count}")).collect();
    if parts.is_empty() {
        "0".to_owned()
    } else {
        format!("{total} ({})", parts.join(", "))
    }
}

/// Runs `frctl stats`.
pub async fn stats(client: &Client, format: OutputFormat) -> anyhow::Result<()> {
    let response = client
        .admin()
        .get_farm_stats(client.request(pb::GetFarmStatsRequest {}))
        .await
        .answer(client)?;
    let json = StatsJson {
        nodes: by_state(&response.nodes),
        chunks: by_state(&response.frame_jobs),
        jobs: by_state(&response.jobs),
        tenants: response
            .tenants
            .iter()
            .map(|tenant| TenantQueueJson {
                tenant_id: tenant.tenant_id.clone(),
                pending_chunks: tenant.pending_chunks,
                leased_chunks: tenant.leased_chunks,
            })
            .collect(),
        crashes_last_24h: response.crashes_last_24h,
    };
    emit(format, &json, || {
        outln!("nodes             {}", summary(&json.nodes));
        outln!("chunks            {}", summary(&json.chunks));
        outln!("jobs              {}", summary(&json.jobs));
        outln!("crashes (24h)     {}", json.crashes_last_24h);
        outln!("\ntenant queues:");
        let mut table = Table::new(&["TENANT", "PENDING", "LEASED"]);
        for tenant in &json.tenants {
            table.row(vec![
                tenant.tenant_id.clone(),
                tenant.pending_chunks.to_string(),
                tenant.leased_chunks.to_string(),
            ]);
        }
        table.print_or("  none queued");
    })
}

/// Runs a `partitions` subcommand.
pub async fn partitions(client: &Client, format: OutputFormat, command: PartitionsCommand) -> anyhow::Result<()> {
    match command {
        PartitionsCommand::Ensure { months_ahead } => {
            if let Some(months) = months_ahead.filter(|months| !(1..=24).contains(months)) {
                return Err(Failure::new(
                    exit::USAGE,
                    format!("--months-ahead {months}: must be between 1 and 24"),
                )
                .into());
            }
            let response = client
                .admin()
                .ensure_partitions(client.request(pb::EnsurePartitionsRequest {
                    months_ahead: months_ahead.unwrap_or(0),
                }))
                .await
                .answer(client)?;
            let json = EnsuredJson {
                created: response.created,
                dropped: response.dropped,
            };
            emit(format, &json, || {
                outln!(
                    "partitions created: {}, dropped by retention: {}",
                    json.created,
                    json.dropped
                );
            })
        }
        PartitionsCommand::List => {
            let response = client
                .admin()
                .list_partitions(client.request(pb::ListPartitionsRequest {}))
                .await
                .answer(client)?;
            let json = PartitionListJson {
                partitions: response
                    .partitions
                    .iter()
                    .map(|partition| PartitionJson {
                        parent: partition.parent.clone(),
                        name: partition.name.clone(),
                        range_start: rfc3339(partition.range_start.as_ref()),
                        range_end: rfc3339(partition.range_end.as_ref()),
                        approximate_rows: partition.approximate_rows,
                    })
                    .collect(),
            };
            emit(format, &json, || {
                let mut table = Table::new(&["PARENT", "PARTITION", "FROM", "TO", "ROWS (APPROX)"]);
                for partition in &response.partitions {
                    let range = |at: Option<&prost_types::Timestamp>| {
                        if at.is_some() {
                            time_cell(at)
                        } else {
                            "default".to_owned()
                        }
                    };
                    table.row(vec![
                        partition.parent.clone(),
                        partition.name.clone(),
                        range(partition.range_start.as_ref()),
                        range(partition.range_end.as_ref()),
                        partition.approximate_rows.to_string(),
                    ]);
                }
                table.print_or("no partitions");
            })
        }
    }
}

/// Runs a `cache` subcommand.
pub async fn cache(client: &Client, format: OutputFormat, command: CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Show(node) = command;
    let node_id = resolve(client, &node.node).await?;
    let response = client
        .admin()
        .get_node(client.request(pb::GetNodeRequest { node_id }))
        .await
        .answer(client)?;
    let node = response.node.unwrap_or_default();
    let total_bytes = response.cache.iter().map(|entry| entry.size_bytes).sum();
    let json = CacheShowJson {
        node_id: node.id.clone(),
        node_name: node.name.clone(),
        total_bytes,
        cache: response.cache.iter().map(CacheEntryJson::from).collect(),
    };
    emit(format, &json, || {
        outln!(
            "node {} holds {} template(s), {}",
            node.name,
            response.cache.len(),
            bytes(total_bytes)
        );
        let mut table = Table::new(&["TEMPLATE", "VERSION", "SIZE", "HITS", "LAST USED", "BLAKE3"]);
        for entry in &response.cache {
            table.row(vec![
                or_dash(&entry.template_id),
                entry.template_version.to_string(),
                bytes(entry.size_bytes),
                entry.hits.to_string(),
                time_cell(entry.last_used_at.as_ref()),
                entry.blake3_hex.clone(),
            ]);
        }
        table.print_or("cache is empty");
    })
}
