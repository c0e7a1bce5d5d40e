//! Monthly partitions, through the SQL functions of `00_setup.sql` (which run as their owner, so
//! the render role can manage its own partitioned tables without owning them).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

use super::DbError;
use crate::views::PartitionView;

/// Creates `months` monthly partitions of `parent` from `from_month`; returns how many were new.
pub(crate) async fn ensure(
    connection: &mut PgConnection,
    parent: &str,
    from_month: NaiveDate,
    months: i32,
) -> Result<i32, DbError> {
    let created: i32 = sqlx::query_scalar("SELECT public.ensure_monthly_partitions($1::regclass, $2, $3)")
        .bind(parent)
        .bind(from_month)
        .bind(months)
        .fetch_one(connection)
        .await?;
    Ok(created)
}

/// Drops monthly partitions of `parent` entirely before `before_month`; returns how many.
pub(crate) async fn drop_before(
    connection: &mut PgConnection,
    parent: &str,
    before_month: NaiveDate,
) -> Result<i32, DbError> {
    let dropped: i32 = sqlx::query_scalar("SELECT public.drop_monthly_partitions_before($1::regclass, $2)")
        .bind(parent)
        .bind(before_month)
        .fetch_one(connection)
        .await?;
    Ok(dropped)
}

/// A partition with its bounds (none for the default partition).
#[derive(Debug, sqlx::FromRow)]
struct PartitionRow {
    pub parent: String,
    pub name: String,
    pub range_start: Option<DateTime<Utc>>,
    pub range_end: Option<DateTime<Utc>>,
    pub approximate_rows: i64,
}

/// Partitions of `parent`, in order.
pub(crate) async fn list(connection: &mut PgConnection, parent: &str) -> Result<Vec<PartitionView>, DbError> {
    let rows = sqlx::query_as::<_, PartitionRow>(
        "SELECT $1 AS parent, c.relnamespace::regnamespace::text || '.' || c.relname AS name,
                (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS range_start,
                (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS range_end,
                greatest(c.reltuples, 0)::int8 AS approximate_rows
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass
         ORDER BY range_start NULLS LAST, name",
    )
    .bind(parent)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| PartitionView {
            parent: row.parent,
            name: row.name,
            range_start: row.range_start,
            range_end: row.range_end,
            approximate_rows: row.approximate_rows,
        })
        .collect())
}
