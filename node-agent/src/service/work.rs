//! The work loop: acquire chunks while the node may take work, render (or, for an encode item,
//! encode) each in its own task, hand back what arrives while stopping, and after each chunk
//! apply the recovery ladder (back off, quarantine, clear After Effects' disk cache after
//! repeated cache errors; only the back-off after an encode).

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use flatrender_proto::{
    pb,
    types::{CrashClass, NodeState, RecoveryAction},
};
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Agent, lock};
use crate::{
    outbox::{ChunkFailure, OutboxItem},
    recovery::Failure,
    retry::Backoff,
    runner::{self, ChunkOutcome},
};

/// How long a stopping agent still waits for an acquire already in flight.
const HANDBACK_WAIT: Duration = Duration::from_secs(3);
/// Back-off of failed acquires; a heartbeat that gets through again cuts it short.
const ACQUIRE_RETRY_BASE: Duration = Duration::from_millis(500);
const ACQUIRE_RETRY_CAP: Duration = Duration::from_secs(30);

impl Agent {
    /// Whether the agent may take more work now.
    fn may_acquire(&self) -> bool {
        let online = *lock(&self.state) == NodeState::Online;
        let backing_off = lock(&self.back_off_until).is_some_and(|until| Instant::now() < until);
        online && lock(&self.quarantine).is_none() && !backing_off && !self.chunk.outbox.results_full()
    }

    /// Takes and renders work until `shutdown`; chunks still running are left to `run`.
    pub(super) async fn work_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut running = JoinSet::new();
        let mut backoff = Backoff::new(ACQUIRE_RETRY_BASE, ACQUIRE_RETRY_CAP);
        loop {
            while running.try_join_next().is_some() {}
            let free = usize::try_from(self.config.node.max_leases)
                .unwrap_or(1)
                .saturating_sub(self.leases.len());
            if shutdown.is_cancelled() {
                break;
            }
            if free == 0 || !self.may_acquire() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.chunk_finished.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let wait = Duration::from_secs(self.config.control_plane.acquire_wait_seconds);
            let acquire = self.client.acquire(i32::try_from(free).unwrap_or(1), wait);
            tokio::pin!(acquire);
            let acquired = tokio::select! {
                acquired = &mut acquire => acquired,
                () = shutdown.cancelled() => {
                    // A claim may already be on its way back: take it (briefly) and hand it back
                    // rather than leave the chunk leased to nobody until its lease expires.
                    if let Ok(Ok(assignments)) = tokio::time::timeout(HANDBACK_WAIT, &mut acquire).await {
                        self.hand_back(&assignments).await;
                    }
                    break;
                }
            };
            match acquired {
                Ok(assignments) => {
                    backoff.reset();
                    for assignment in assignments {
                        let lease = self.leases.insert(&assignment);
                        let agent = self.clone();
                        running.spawn(async move {
                            let kind = pb::WorkKind::try_from(assignment.kind);
                            let outcome = match kind {
                                Ok(pb::WorkKind::Encode) => {
                                    info!(frame_job_id = %assignment.frame_job_id, job_id = %assignment.job_id, lease_token = assignment.lease_token, "encoding");
                                    runner::run_encode(&agent.chunk, &assignment, lease).await
                                }
                                // Unset: a control plane from before encode items.
                                Ok(pb::WorkKind::Render | pb::WorkKind::Unspecified) => {
                                    info!(frame_job_id = %assignment.frame_job_id, job_id = %assignment.job_id, lease_token = assignment.lease_token, "rendering chunk");
                                    runner::run_chunk(&agent.chunk, &assignment, lease, |failure| agent.escalate(failure))
                                        .await
                                }
                                Err(_) => agent.refuse_unknown_kind(&assignment).await,
                            };
                            agent.leases.remove(&assignment.frame_job_id);
                            // Report before anything else (a quarantine) can change the lease.
                            agent.delivery.deliver_pending().await;
                            if kind == Ok(pb::WorkKind::Encode) {
                                agent.after_encode(&outcome);
                            } else {
                                agent.after_chunk(&outcome).await;
                            }
                            agent.chunk_finished.notify_waiters();
                        });
                    }
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    warn!(%error, ?delay, "acquire failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                        // Heard again: no need to sit out the rest of the back-off.
                        () = self.control_plane_back.notified() => {}
                    }
                }
            }
        }
        // Let the spawned chunks run to the end (run() decides how long).
        tokio::spawn(async move { while running.join_next().await.is_some() {} });
    }

    /// Returns assignments the agent will not render (it is stopping): a hand-back costs no attempt.
    async fn hand_back(&self, assignments: &[pb::WorkAssignment]) {
        for assignment in assignments {
            info!(frame_job_id = %assignment.frame_job_id, "handing back a chunk acquired while stopping");
            let item = OutboxItem::Failure(ChunkFailure {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                crash_class: CrashClass::Unknown.to_wire(),
                message: "agent stopping".into(),
                recovery_action: RecoveryAction::Requeue.to_wire(),
                ..ChunkFailure::default()
            });
            if let Err(error) = self.chunk.outbox.push(item).await {
                warn!(%error, "could not queue the hand-back; the lease will expire instead");
            }
        }
    }

    /// Work of a kind this agent does not know (a newer control plane): failed so that it goes
    /// to a node that knows it.
    async fn refuse_unknown_kind(&self, assignment: &pb::WorkAssignment) -> ChunkOutcome {
        warn!(frame_job_id = %assignment.frame_job_id, kind = assignment.kind, "work of an unknown kind; refusing it");
        let failure = Failure {
            crash_class: CrashClass::Unknown,
            error_class: None,
            action: RecoveryAction::RetryElsewhere,
            message: format!(
                "work kind {} is unknown to this agent (version {})",
                assignment.kind,
                env!("CARGO_PKG_VERSION")
            ),
        };
        let item = OutboxItem::Failure(ChunkFailure {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            crash_class: failure.crash_class.to_wire(),
            message: failure.message.clone(),
            recovery_action: failure.action.to_wire(),
            ..ChunkFailure::default()
        });
        if let Err(error) = self.chunk.outbox.push(item).await {
            warn!(%error, "could not queue the refusal; the lease will expire instead");
        }
        ChunkOutcome::Failed(failure)
    }

    /// After an encode: only a back-off applies. Encodes neither count towards the crash loop
    /// nor end one, and clear no After Effects cache: the canary that ends a quarantine proves
    /// After Effects, not ffmpeg (a failed encode goes to another node instead).
    fn after_encode(&self, outcome: &ChunkOutcome) {
        if let ChunkOutcome::Failed(failure) = outcome {
            if failure.action == RecoveryAction::BackOff {
                self.back_off();
            }
        }
    }

    /// Takes no work for `recovery.back_off_seconds`.
    fn back_off(&self) {
        *lock(&self.back_off_until) = Some(Instant::now() + Duration::from_secs(self.config.recovery.back_off_seconds));
    }

    /// The recovery ladder after a chunk: clear the AE disk cache, back off, or quarantine.
    async fn after_chunk(&self, outcome: &ChunkOutcome) {
        let cache_error =
            matches!(outcome, ChunkOutcome::Failed(failure) if failure.crash_class == CrashClass::CacheError);
        let repeated_cache_errors = if cache_error {
            self.cache_errors.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.cache_errors.store(0, Ordering::Relaxed);
            0
        };
        if repeated_cache_errors >= 2 {
            self.cache_errors.store(0, Ordering::Relaxed);
            let dir = self.config.aerender.disk_cache_dir.clone();
            // Many files on a possibly slow disk: not on the async threads.
            if let Err(error) = tokio::task::spawn_blocking(move || clear_disk_cache(&dir)).await {
                warn!(%error, "clearing the AE disk cache did not finish");
            }
        }
        match outcome {
            ChunkOutcome::Completed => lock(&self.crash_loop).reset(),
            ChunkOutcome::Failed(failure) => {
                if failure.action == RecoveryAction::BackOff {
                    self.back_off();
                }
                if failure.action == RecoveryAction::Quarantine {
                    self.enter_quarantine(failure);
                }
            }
            ChunkOutcome::Stopped(_) => {}
        }
    }
}

/// Empties After Effects' disk cache folder (its contents, not the folder): the last step of the
/// recovery ladder after repeated cache errors. A no-op when no folder is configured.
fn clear_disk_cache(dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        warn!(dir = %dir.display(), "AE disk cache folder not readable; not cleared");
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(error) => warn!(path = %path.display(), %error, "could not remove from the AE disk cache"),
        }
    }
    info!(dir = %dir.display(), removed, "cleared After Effects' disk cache after repeated cache errors");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clearing the disk cache empties the folder but keeps it; no folder configured is a no-op.
    #[test]
    fn disk_cache_is_emptied_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.cache"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("b"), b"y").unwrap();
        clear_disk_cache(dir.path());
        assert!(dir.path().exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        clear_disk_cache(Path::new(""));
    }
}
