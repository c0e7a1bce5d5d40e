//! Delivers what waits in the outbox: completions and failures first, then buffered health
//! samples, acknowledging each item once the control plane has answered it. Redelivery is safe:
//! a completion already recorded answers `DUPLICATE`, and a report for a lease that is gone
//! answers `STALE_LEASE`/`FAILED_PRECONDITION`; both are final, so the item is dropped. While
//! the control plane is unreachable, passes back off (`retry`); a heartbeat that gets through
//! again wakes the loop at once. A completion answered `JOB_ENDED` (the job was cancelled or
//! failed meanwhile) has its stored export discarded.

use std::{sync::Arc, time::Duration};

use flatrender_proto::pb;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    client::{ClientError, ControlPlaneClient},
    export::ExportStore,
    metrics::AgentMetrics,
    outbox::{ChunkCompletion, Outbox, OutboxItem},
    retry::Backoff,
};

const HEALTH_BATCH: usize = 500;
const POLL: Duration = Duration::from_secs(1);
/// Back-off of passes that found the control plane unreachable.
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(30);

/// Delivers the outbox; one delivery pass at a time, so no item is sent twice concurrently.
pub struct Delivery {
    client: Arc<ControlPlaneClient>,
    outbox: Arc<Outbox>,
    exports: Arc<ExportStore>,
    metrics: Arc<AgentMetrics>,
    pass: tokio::sync::Mutex<()>,
    wake: Notify,
}

/// How a delivery pass ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Nothing left.
    Empty,
    /// Items wait for an answer that came back (refused health batches).
    Pending,
    /// The control plane could not be reached; items wait.
    Unreachable,
}

impl Delivery {
    /// A deliverer of `outbox` through `client`.
    pub fn new(
        client: Arc<ControlPlaneClient>,
        outbox: Arc<Outbox>,
        exports: Arc<ExportStore>,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        Self {
            client,
            outbox,
            exports,
            metrics,
            pass: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        }
    }

    /// Delivers in the background until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        loop {
            let delay = match self.pass().await {
                Pass::Unreachable => backoff.next_delay(),
                Pass::Empty | Pass::Pending => {
                    backoff.reset();
                    POLL
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// Tries to deliver everything pending once; returns true when the outbox is empty.
    pub async fn deliver_pending(&self) -> bool {
        self.pass().await == Pass::Empty
    }

    /// Starts a pass now (the control plane is reachable again).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn pass(&self) -> Pass {
        let _pass = self.pass.lock().await;
        deliver(&self.client, &self.outbox, &self.exports, &self.metrics).await
    }
}

async fn deliver(client: &ControlPlaneClient, outbox: &Outbox, exports: &ExportStore, metrics: &AgentMetrics) -> Pass {
    for (id, item) in outbox.pending_results() {
        let delivered = match &item {
            OutboxItem::Completion(completion) => {
                let request = pb::CompleteWorkRequest {
                    chunks: vec![completion.to_pb()],
                };
                match client.complete(request).await {
                    Ok(response) => {
                        let outcome = response.results.first().map(pb::CompletionResult::outcome);
                        info!(frame_job_id = %completion.frame_job_id, ?outcome, "completion delivered");
                        if outcome == Some(pb::CompletionOutcome::JobEnded) {
                            discard_export(exports, completion).await;
                        }
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            OutboxItem::Failure(failure) => client.fail(failure.to_pb()).await.map(|response| {
                info!(frame_job_id = %failure.frame_job_id, will_retry = response.will_retry, "failure delivered");
            }),
            OutboxItem::Health(_) => Ok(()),
        };
        match delivered {
            Ok(()) => ack(outbox, id).await,
            Err(ClientError::Unreachable(_)) => {
                metrics.set_outbox_pending(outbox.len());
                return Pass::Unreachable;
            }
            // The lease was given away meanwhile (after a self-fence in a real partition, or an
            // expiry): the chunk is someone else's now, and the report is final.
            Err(error) if error.is_lost_lease() => {
                info!(%error, "a queued report names a lease that is no longer ours; dropping it");
                ack(outbox, id).await;
            }
            // An answer that will never change (invalid): drop the item.
            Err(error) => {
                warn!(%error, "control plane refused a queued report; dropping it");
                ack(outbox, id).await;
            }
        }
    }
    loop {
        let batch = outbox.pending_health(HEALTH_BATCH);
        if batch.is_empty() {
            break;
        }
        let request = pb::HeartbeatRequest {
            health: batch.iter().map(|(_, sample)| sample.to_pb()).collect(),
            ..Default::default()
        };
        match client.heartbeat(request).await {
            Ok(_) => {
                for (id, _) in batch {
                    ack(outbox, id).await;
                }
            }
            Err(ClientError::Unreachable(_)) => {
                metrics.set_outbox_pending(outbox.len());
                return Pass::Unreachable;
            }
            Err(error) => {
                warn!(%error, "control plane refused buffered health samples; dropping them");
                for (id, _) in batch {
                    ack(outbox, id).await;
                }
            }
        }
    }
    metrics.set_outbox_pending(outbox.len());
    if outbox.is_empty() { Pass::Empty } else { Pass::Pending }
}

/// The job was cancelled or failed while its encode was stored: no attempt will adopt the
/// export, so it is removed. Before the ack: a crash in between redelivers, and discarding again
/// is harmless. A STALE answer keeps the file (the lease's successor adopts it).
async fn discard_export(exports: &ExportStore, completion: &ChunkCompletion) {
    let Some(export) = &completion.export else { return };
    match exports.discard(&export.location).await {
        Ok(()) => {
            info!(frame_job_id = %completion.frame_job_id, location = %export.location, "job ended meanwhile; stored export discarded")
        }
        Err(error) => {
            warn!(frame_job_id = %completion.frame_job_id, location = %export.location, %error, "job ended meanwhile, but its stored export could not be discarded")
        }
    }
}

async fn ack(outbox: &Outbox, id: crate::outbox::ItemId) {
    if let Err(error) = outbox.ack(id).await {
        warn!(%error, "cannot remove a delivered item from the outbox");
    }
}
