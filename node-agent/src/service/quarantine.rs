//! Quarantine: the crash that completes a crash loop is reported with the `Quarantine` action,
//! the node then takes no work, and a canary render (`crate::canary`) tried with exponential
//! back-off brings it back, or ops do (`frctl nodes enable`, seen in `observe_state`).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use flatrender_proto::types::RecoveryAction;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Agent, lock};
use crate::{canary, recovery::Failure};

impl Agent {
    /// Counts a failure towards the crash loop. The one that completes the loop is reported with
    /// the `Quarantine` action; the node quarantines itself once that report is delivered
    /// (`after_chunk`), so that the control plane requeuing the node's leases cannot make it stale.
    pub(super) fn escalate(&self, failure: Failure) -> Failure {
        if lock(&self.crash_loop).record(failure.crash_class, Instant::now()) {
            Failure {
                action: RecoveryAction::Quarantine,
                ..failure
            }
        } else {
            failure
        }
    }

    /// Quarantines the node after `failure` completed a crash loop; the reason says what will
    /// re-admit it (which canary, or ops when there is none).
    pub(super) fn enter_quarantine(&self, failure: &Failure) {
        let readmission = match canary::plan(&self.config, &self.chunk.cache) {
            Ok(canary) => format!("a canary render of {} re-admits it", canary.describe()),
            Err(why) => format!("{why}, so it waits for ops (frctl nodes enable)"),
        };
        let recovery = &self.config.recovery;
        let reason = quarantine_reason(
            &format!(
                "crash loop: {} crashes within {} s; {readmission}",
                recovery.crash_loop_threshold, recovery.crash_loop_window_seconds
            ),
            &failure.message,
        );
        warn!(reason = %reason, "quarantining this node");
        {
            // The epoch changes with the reason, under its lock: readers see both or neither.
            let mut quarantine = lock(&self.quarantine);
            *quarantine = Some(reason);
            self.quarantine_epoch.fetch_add(1, Ordering::Relaxed);
        }
        self.quarantine_started.notify_one();
    }

    /// While quarantined, renders the canary, backing off after each failure; a pass takes the
    /// node out of quarantine and the next heartbeat tells the control plane.
    pub(super) async fn probe_loop(self: Arc<Self>, stop: CancellationToken) {
        let recovery = &self.config.recovery;
        let base = Duration::from_secs(recovery.probe_interval_seconds);
        let cap = Duration::from_secs(recovery.probe_interval_max_seconds);
        loop {
            while lock(&self.quarantine).is_none() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.quarantine_started.notified() => {}
                }
            }
            let epoch = {
                let _quarantine = lock(&self.quarantine);
                self.quarantine_epoch.load(Ordering::Relaxed)
            };
            let still_this_quarantine =
                || lock(&self.quarantine).is_some() && self.quarantine_epoch.load(Ordering::Relaxed) == epoch;
            let mut reported = self.quarantine_reported.subscribe();
            let mut num_failed = 0;
            while still_this_quarantine() {
                let delay = canary::probe_delay(base, cap, num_failed, crate::retry::random_unit());
                let reported_and_waited = async {
                    // An error means the sender is gone: the agent is stopping.
                    let _ = reported.wait_for(|reported_epoch| *reported_epoch >= epoch).await;
                    tokio::time::sleep(delay).await;
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = reported_and_waited => {}
                }
                // Ops may have enabled the node (or a new quarantine begun) meanwhile.
                if !still_this_quarantine() {
                    break;
                }
                match canary::probe(&self.chunk, &stop).await {
                    _ if stop.is_cancelled() => return,
                    Ok(canary) => {
                        let mut quarantine = lock(&self.quarantine);
                        // A pass proves nothing about a crash loop that began during the render.
                        if self.quarantine_epoch.load(Ordering::Relaxed) == epoch {
                            info!(%canary, "canary render passed; leaving quarantine");
                            *quarantine = None;
                            lock(&self.crash_loop).reset();
                            self.probe_succeeded.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(reason) => {
                        num_failed += 1;
                        warn!(num_failed, %reason, "canary render failed; staying quarantined");
                    }
                }
            }
        }
    }
}

/// Longest quarantine reason the control plane stores (`render.nodes.state_reason`).
const MAX_REASON_CHARS: usize = 1000;

/// `what`, then the last failure's message, cut to what the control plane stores.
fn quarantine_reason(what: &str, last_failure: &str) -> String {
    format!("{what}; last: {last_failure}")
        .chars()
        .take(MAX_REASON_CHARS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quarantine reason fits `render.nodes.state_reason` however long the last failure's
    /// message is, and keeps what re-admits the node in front of it.
    #[test]
    fn quarantine_reasons_are_bounded() {
        let reason = quarantine_reason("crash loop; waiting for ops", &"é".repeat(5000));
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);
        assert!(reason.starts_with("crash loop; waiting for ops; last: é"));
        assert_eq!(quarantine_reason("loop", "boom"), "loop; last: boom");
    }
}
