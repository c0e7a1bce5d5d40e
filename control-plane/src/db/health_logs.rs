//! `render.node_health_logs` (partitioned monthly): batched inserts of agent health samples.

use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;
use crate::views::HealthSample;

/// Inserts samples with one multi-row statement (arrays unnested server-side).
pub(crate) async fn insert_batch(connection: &mut PgConnection, samples: &[HealthSample]) -> Result<u64, DbError> {
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
