//! `render.node_health_logs` (partitioned monthly): batched inserts of agent health samples.

use chrono::{DateTime, Utc};
use flatrender_proto::types::NodeId;
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;

/// One health sample.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSampleRow {
    /// Reporting node.
    pub node_id: NodeId,
    /// When the agent took it.
    pub recorded_at: DateTime<Utc>,
    /// CPU use, 0..=100.
    pub cpu_percent: f32,
    /// Memory in use.
    pub memory_used_bytes: i64,
    /// Memory installed.
    pub memory_total_bytes: i64,
    /// Swap in use.
    pub swap_used_bytes: i64,
    /// Swap size.
    pub swap_total_bytes: i64,
    /// Free space on the template-cache volume.
    pub cache_disk_free_bytes: i64,
    /// Free space on the output volume.
    pub output_disk_free_bytes: i64,
    /// After Effects processes running.
    pub ae_process_count: i32,
    /// Their memory.
    pub ae_memory_bytes: i64,
    /// 1-minute load average.
    pub load_average_1m: f32,
    /// Machine uptime.
    pub uptime_seconds: i64,
    /// Whether aerender was running.
    pub aerender_running: bool,
}

/// Inserts samples with one multi-row statement (arrays unnested server-side).
pub(crate) async fn insert_batch(connection: &mut PgConnection, samples: &[HealthSampleRow]) -> Result<u64, DbError> {
    macro_rules! column {
        ($field:ident) => {
            samples.iter().map(|sample| sample.$field).collect::<Vec<_>>()
        };
    }
    let node_ids: Vec<Uuid> = samples.iter().map(|sample| sample.node_id.as_uuid()).collect();
    let inserted = sqlx::query(
        "INSERT INTO render.node_health_logs (node_id, recorded_at, cpu_percent, memory_used_bytes, memory_total_bytes,
             swap_used_bytes, swap_total_bytes, cache_disk_free_bytes, output_disk_free_bytes, ae_process_count,
             ae_memory_bytes, load_average_1m, uptime_seconds, aerender_running)
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::float4[], $4::int8[], $5::int8[], $6::int8[],
                              $7::int8[], $8::int8[], $9::int8[], $10::int4[], $11::int8[], $12::float4[],
                              $13::int8[], $14::bool[])",
    )
    .bind(node_ids)
    .bind(column!(recorded_at))
    .bind(column!(cpu_percent))
    .bind(column!(memory_used_bytes))
    .bind(column!(memory_total_bytes))
    .bind(column!(swap_used_bytes))
    .bind(column!(swap_total_bytes))
    .bind(column!(cache_disk_free_bytes))
    .bind(column!(output_disk_free_bytes))
    .bind(column!(ae_process_count))
    .bind(column!(ae_memory_bytes))
    .bind(column!(load_average_1m))
    .bind(column!(uptime_seconds))
    .bind(column!(aerender_running))
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted)
}
