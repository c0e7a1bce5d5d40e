//! The probe: `aerender -version` must print its banner and exit 0 within a minute, leaving no
//! process behind. `doctor` uses it to show that aerender starts at all. It says nothing about
//! whether renders work (it passes where every render crashes), so re-admitting a quarantined
//! node takes a canary render instead (`canary`).

use std::{path::Path, time::Duration};

use tracing::warn;

use crate::{aerender_log::LogEvent, aerender_log::LogParser, supervisor};

const PROBE_BUDGET: Duration = Duration::from_secs(60);

/// Runs the probe; true when aerender answered.
/// `tag` marks the processes (see `supervisor::spawn`).
pub async fn probe(aerender: &Path, tag: &str, kill_grace: Duration) -> bool {
    let mut process = match supervisor::spawn_aerender(aerender, ["-version"], tag) {
        Ok(process) => process,
        Err(error) => {
            warn!(%error, "probe could not start aerender");
            return false;
        }
    };
    let mut parser = LogParser::new();
    let mut banner = false;
    let outcome = tokio::time::timeout(PROBE_BUDGET, async {
        while let Some(line) = process.next_line().await {
            banner |= parser
                .feed_line(&line.text)
                .iter()
                .any(|event| matches!(event, LogEvent::Banner { .. }));
        }
        process.wait().await
    })
    .await;
    let report = process.kill_tree(kill_grace).await;
    match outcome {
        Ok(exit) => banner && exit.code == Some(0) && report.survivors.is_empty(),
        Err(_) => false,
    }
}
