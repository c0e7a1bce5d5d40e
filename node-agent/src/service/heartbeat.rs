//! The heartbeat loop: lease statuses, cache inventory changes, health samples and the quarantine
//! go up; timing, the node state and commands (cancel a lease, drain, prefetch a template) come
//! back. While the control plane is unreachable it fences leases past their TTL, and a refused
//! token means registering again.

use std::sync::{Arc, atomic::Ordering};

use flatrender_proto::{pb, types::NodeState};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Agent, lock};
use crate::{cache::CacheEntryInfo, health::HealthSample, leases::StopReason, retry::Backoff, runner};

impl Agent {
    /// Heartbeats every interval until `stop`; failing, it retries sooner with jitter and fences.
    pub(super) async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut resync_cache = true;
        let mut failing: Option<Backoff> = None;
        loop {
            let interval = *lock(&self.heartbeat_interval);
            let delay = if self.heartbeat(&mut resync_cache).await.is_ok() {
                if failing.take().is_some() {
                    // The control plane hears us again: deliver and ask for work now, not when
                    // those loops' own back-offs end (the outage grace is one lease long).
                    self.delivery.wake();
                    self.control_plane_back.notify_one();
                }
                interval
            } else {
                // Unreachable: keep rendering, but never past the lease TTL. A fenced chunk is
                // handed back through the outbox (runner::run_chunk).
                let fenced = self.leases.fence_expired(*lock(&self.lease_ttl));
                if !fenced.is_empty() {
                    warn!(
                        ?fenced,
                        "leases could not be renewed within their TTL; stopped those renders to hand them back"
                    );
                }
                // Jittered, so a farm does not come back in lock-step; capped at the interval,
                // because a node must speak within the grace the control plane gives it after an
                // outage, and the fencing check above must keep running.
                failing
                    .get_or_insert_with(|| Backoff::new(interval / 8, interval))
                    .next_delay()
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn heartbeat(&self, resync_cache: &mut bool) -> Result<(), ()> {
        let changes = self.chunk.cache.take_changes();
        let full_sync = *resync_cache || changes.full_sync;
        let inventory = if full_sync {
            self.chunk.cache.inventory()
        } else {
            changes.upserted
        };
        let health: Vec<HealthSample> = std::mem::take(&mut *lock(&self.health));
        let (quarantine, quarantine_epoch) = {
            let quarantine = lock(&self.quarantine);
            (quarantine.clone(), self.quarantine_epoch.load(Ordering::Relaxed))
        };
        let request = pb::HeartbeatRequest {
            leases: self.leases.statuses(),
            cache: Some(pb::CacheInventory {
                full_sync,
                upserted: inventory.iter().map(cache_entry_to_pb).collect(),
                removed_blake3_hex: if full_sync {
                    Vec::new()
                } else {
                    changes.removed.iter().map(|hash| hash.to_hex()).collect()
                },
            }),
            health: health.iter().map(HealthSample::to_pb).collect(),
            quarantined: quarantine.is_some(),
            quarantine_reason: quarantine.clone().unwrap_or_default(),
            // Until one heartbeat of this run got through: ffmpeg may have come or gone since the
            // node registered, and a stored credential skips registration.
            capabilities: (!self.capabilities_reported.load(Ordering::Relaxed)).then(|| self.capabilities()),
            frames_removed_job_ids: self.take_frames_removed(),
            // Taken, not read: a probe passing while this heartbeat is in flight is not lost.
            probe_succeeded: self.probe_succeeded.swap(false, Ordering::Relaxed),
        };
        let probe_succeeded = request.probe_succeeded;
        let reports_capabilities = request.capabilities.is_some();
        let frames_removed = request.frames_removed_job_ids.clone();
        match self.client.heartbeat(request).await {
            Ok(response) => {
                *resync_cache = false;
                if reports_capabilities {
                    self.capabilities_reported.store(true, Ordering::Relaxed);
                }
                if quarantine.is_some() {
                    self.quarantine_reported.send_replace(quarantine_epoch);
                }
                self.apply_timing(response.heartbeat_interval.as_ref(), None);
                let state = NodeState::from_wire(response.state, "state").unwrap_or(NodeState::Online);
                self.observe_state(state);
                let mut lost = Vec::new();
                for command in response.commands.into_iter().filter_map(|command| command.command) {
                    match command {
                        pb::node_command::Command::CancelLease(cancel) => {
                            info!(frame_job_id = %cancel.frame_job_id, reason = %cancel.reason, "control plane cancelled a lease");
                            self.leases
                                .stop(&cancel.frame_job_id, cancel.lease_token, StopReason::LeaseLost);
                            lost.push(cancel.frame_job_id);
                        }
                        pb::node_command::Command::Drain(_) => {}
                        pb::node_command::Command::PrefetchTemplate(prefetch) => self.prefetch(prefetch),
                        pb::node_command::Command::RemoveFrames(remove) => self.remove_frames(&remove),
                    }
                }
                self.leases.renewed_except(&lost);
                Ok(())
            }
            Err(error) => {
                *resync_cache = true;
                if probe_succeeded {
                    self.probe_succeeded.store(true, Ordering::Relaxed);
                }
                warn!(%error, "heartbeat failed");
                self.keep_frames_removed(frames_removed);
                self.keep_health(health).await;
                if error.code() == Some(tonic::Code::Unauthenticated) {
                    warn!("node token refused; registering again");
                    let _ = tokio::fs::remove_file(self.credential_path()).await;
                    if let Err(error) = self.register().await {
                        warn!(%error, "re-registration failed");
                    }
                }
                Err(())
            }
        }
    }

    fn observe_state(&self, state: NodeState) {
        let mut current = lock(&self.state);
        if *current != state {
            info!(from = %current, to = %state, "node state");
        }
        *current = state;
        drop(current);
        match state {
            NodeState::Quarantined => self.quarantine_acknowledged.store(true, Ordering::Relaxed),
            NodeState::Online if self.quarantine_acknowledged.swap(false, Ordering::Relaxed) => {
                // Ops (or a probe) brought the node back.
                *lock(&self.quarantine) = None;
                lock(&self.crash_loop).reset();
            }
            _ => {}
        }
    }

    fn prefetch(&self, prefetch: pb::PrefetchTemplate) {
        let Some(template) = prefetch.template else { return };
        let cache = self.chunk.cache.clone();
        tokio::spawn(async move {
            let spec = match runner::template_spec(&template) {
                Ok(spec) => spec,
                Err(error) => return warn!(%error, "bad prefetch command"),
            };
            if let Err(error) = cache.prefetch(&spec).await {
                warn!(%error, "prefetch failed");
            }
        });
    }
}

fn cache_entry_to_pb(entry: &CacheEntryInfo) -> pb::CacheEntry {
    pb::CacheEntry {
        blake3_hex: entry.hash.to_hex(),
        template_id: entry.template_id.map(|id| id.to_string()).unwrap_or_default(),
        template_version: entry.template_version,
        size_bytes: i64::try_from(entry.size_bytes).unwrap_or(i64::MAX),
        hits: i64::try_from(entry.hits).unwrap_or(i64::MAX),
        last_used_at: Some(prost_types::Timestamp {
            seconds: entry.last_used_at.timestamp(),
            nanos: i32::try_from(entry.last_used_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}
