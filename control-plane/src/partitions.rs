//! Monthly partition upkeep: at start-up and then daily, make sure the current month and the
//! next few have partitions (a row for a month without one would land in the default partition;
//! see `00_setup.sql`), and drop health-log partitions older than the retention.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{config::PartitionsConfig, db, error::ControlPlaneResult, shutdown::sleep_or_shutdown};

/// The partitioned tables the control plane owns.
pub const HEALTH_LOGS: &str = "render.node_health_logs";

/// What one upkeep pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    /// Partitions created.
    pub created: i32,
    /// Partitions dropped.
    pub dropped: i32,
}

/// First day of the month `months` after `date`'s month (negative goes back).
pub fn month_start_offset(date: NaiveDate, months: i32) -> NaiveDate {
    let index = date.year() * 12 + date.month0() as i32 + months;
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1).unwrap_or(date)
}

/// One pass: ensure `months_ahead` months after the current one, then apply retention.
pub async fn upkeep(pool: &PgPool, months_ahead: i32, retention_months: i32) -> ControlPlaneResult<UpkeepReport> {
    let today = Utc::now().date_naive();
    let this_month = month_start_offset(today, 0);
    let mut connection = pool.acquire().await?;
    let created = db::partitions::ensure(&mut connection, HEALTH_LOGS, this_month, months_ahead + 1).await?;
    let dropped = if retention_months > 0 {
        db::partitions::drop_before(
            &mut connection,
            HEALTH_LOGS,
            month_start_offset(today, -retention_months),
        )
        .await?
    } else {
        0
    };
    if created > 0 || dropped > 0 {
        info!(table = HEALTH_LOGS, created, dropped, "partition upkeep");
    }
    Ok(UpkeepReport { created, dropped })
}

/// Runs upkeep now and then every `interval_seconds` until `shutdown`.
pub async fn run(pool: PgPool, config: PartitionsConfig, shutdown: CancellationToken) {
    loop {
        if let Err(error) = upkeep(&pool, config.months_ahead, config.retention_months).await {
            warn!(%error, "partition upkeep failed; retrying in a minute");
            if sleep_or_shutdown(Duration::from_secs(60), &shutdown).await {
                return;
            }
            continue;
        }
        if sleep_or_shutdown(Duration::from_secs(config.interval_seconds), &shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Month arithmetic crosses year boundaries both ways.
    #[test]
    fn month_offsets() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(
            month_start_offset(date, 0),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        assert_eq!(
            month_start_offset(date, 3),
            NaiveDate::from_ymd_opt(2027, 2, 1).unwrap()
        );
        assert_eq!(
            month_start_offset(date, -11),
            NaiveDate::from_ymd_opt(2025, 12, 1).unwrap()
        );
        assert_eq!(
            month_start_offset(date, -23),
            NaiveDate::from_ymd_opt(2024, 12, 1).unwrap()
        );
    }
}
