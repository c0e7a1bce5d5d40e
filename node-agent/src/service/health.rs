//! The health loop: a sysinfo sample every interval (taken on a blocking thread), kept for the next
//! heartbeat; samples beyond what one heartbeat carries, or that a failed heartbeat could not
//! deliver, go to the durable outbox.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Agent, lock};
use crate::{
    health::{HealthSample, HealthSampler},
    outbox::OutboxItem,
};

impl Agent {
    /// Samples the control plane could not take yet go to the durable outbox.
    pub(super) async fn keep_health(&self, samples: Vec<HealthSample>) {
        for sample in samples {
            if let Err(error) = self.chunk.outbox.push(OutboxItem::Health(sample)).await {
                warn!(%error, "health sample dropped");
            }
        }
    }

    /// Samples health every `health.interval_seconds` until `stop`.
    pub(super) async fn health_loop(self: Arc<Self>, stop: CancellationToken) {
        let sampler = Arc::new(Mutex::new(HealthSampler::new(
            self.config.cache.dir.clone(),
            self.config.aerender.output_root.clone(),
        )));
        loop {
            let sample = crate::health::sample_async(sampler.clone()).await;
            // Bounded: a heartbeat carries at most this many; older ones go to the outbox.
            let overflow: Vec<HealthSample> = {
                let mut pending = lock(&self.health);
                pending.push(sample);
                let excess = pending.len().saturating_sub(500);
                pending.drain(..excess).collect()
            };
            self.keep_health(overflow).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(self.config.health.interval_seconds)) => {}
            }
        }
    }
}
