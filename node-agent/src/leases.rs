//! The leases this agent holds right now: what heartbeats renew, what cancel commands reach, and
//! the self-fencing clock (a chunk whose lease could not be renewed within the TTL is stopped,
//! because the control plane may have given it to someone else by then; it is handed back, with
//! its verified frames, once the control plane can be reached).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI32, Ordering},
    },
    time::Duration,
};

use flatrender_proto::pb;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a running chunk was stopped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The control plane cancelled the lease (job cancelled, lease requeued).
    LeaseLost,
    /// The lease could not be renewed within its TTL.
    SelfFenced,
    /// The agent is stopping and hands the chunk back.
    Shutdown,
}

/// One lease being worked on.
#[derive(Debug)]
pub struct RunningLease {
    /// The chunk.
    pub frame_job_id: String,
    /// Its fencing token.
    pub lease_token: i64,
    frames_done: AtomicI32,
    renewed_at: Mutex<Instant>,
    stop_reason: Mutex<Option<StopReason>>,
    /// Fires when the chunk must stop.
    pub cancel: CancellationToken,
}

impl RunningLease {
    /// Frames done so far (reported with heartbeats).
    pub fn set_frames_done(&self, frames: i32) {
        self.frames_done.store(frames, Ordering::Relaxed);
    }

    /// Stops the chunk for `reason` (the first reason wins).
    pub fn stop(&self, reason: StopReason) {
        let mut current = lock(&self.stop_reason);
        if current.is_none() {
            *current = Some(reason);
        }
        self.cancel.cancel();
    }

    /// Why it was stopped, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *lock(&self.stop_reason)
    }

    /// The control plane confirmed the lease is live.
    pub fn renewed(&self) {
        *lock(&self.renewed_at) = Instant::now();
    }
}

/// All leases held by this agent.
#[derive(Debug, Default)]
pub struct LeaseTable {
    // Short critical sections, no awaits: a std mutex.
    leases: Mutex<HashMap<String, Arc<RunningLease>>>,
}

impl LeaseTable {
    /// Starts tracking a lease.
    pub fn insert(&self, assignment: &pb::WorkAssignment) -> Arc<RunningLease> {
        let lease = Arc::new(RunningLease {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            frames_done: AtomicI32::new(0),
            renewed_at: Mutex::new(Instant::now()),
            stop_reason: Mutex::new(None),
            cancel: CancellationToken::new(),
        });
        lock(&self.leases).insert(lease.frame_job_id.clone(), lease.clone());
        lease
    }

    /// Stops tracking a lease.
    pub fn remove(&self, frame_job_id: &str) {
        lock(&self.leases).remove(frame_job_id);
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        lock(&self.leases).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The heartbeat's view.
    pub fn statuses(&self) -> Vec<pb::LeaseStatus> {
        lock(&self.leases)
            .values()
            .map(|lease| pb::LeaseStatus {
                frame_job_id: lease.frame_job_id.clone(),
                lease_token: lease.lease_token,
                frames_done: lease.frames_done.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// After a successful heartbeat: every reported lease not cancelled is renewed.
    pub fn renewed_except(&self, lost: &[String]) {
        for lease in lock(&self.leases).values() {
            if !lost.contains(&lease.frame_job_id) {
                lease.renewed();
            }
        }
    }

    /// Stops one lease.
    pub fn stop(&self, frame_job_id: &str, lease_token: i64, reason: StopReason) -> bool {
        match lock(&self.leases).get(frame_job_id) {
            Some(lease) if lease.lease_token == lease_token => {
                lease.stop(reason);
                true
            }
            _ => false,
        }
    }

    /// Stops every lease (agent shutdown).
    pub fn stop_all(&self, reason: StopReason) {
        for lease in lock(&self.leases).values() {
            lease.stop(reason);
        }
    }

    /// Stops leases not renewed within `ttl` (minus a safety margin); returns their ids.
    pub fn fence_expired(&self, ttl: Duration) -> Vec<String> {
        let margin = ttl / 10;
        let limit = ttl.saturating_sub(margin);
        let mut fenced = Vec::new();
        for lease in lock(&self.leases).values() {
            if lock(&lease.renewed_at).elapsed() >= limit && lease.stop_reason().is_none() {
                lease.stop(StopReason::SelfFenced);
                fenced.push(lease.frame_job_id.clone());
            }
        }
        fenced
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the lease data is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(id: &str, token: i64) -> pb::WorkAssignment {
        pb::WorkAssignment {
            frame_job_id: id.into(),
            lease_token: token,
            job_id: "job".into(),
            ..Default::default()
        }
    }

    /// A lease not renewed within the TTL is fenced; renewed ones are not.
    #[tokio::test(start_paused = true)]
    async fn self_fencing_after_ttl() {
        let table = LeaseTable::default();
        let stale = table.insert(&assignment("a", 1));
        let fresh = table.insert(&assignment("b", 2));
        tokio::time::advance(Duration::from_secs(50)).await;
        fresh.renewed();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(table.fence_expired(Duration::from_secs(60)), vec!["a".to_string()]);
        assert!(stale.cancel.is_cancelled());
        assert_eq!(stale.stop_reason(), Some(StopReason::SelfFenced));
        assert!(!fresh.cancel.is_cancelled());
    }

    /// A cancel command must name the live token; renewals skip lost leases.
    #[tokio::test(start_paused = true)]
    async fn cancel_needs_the_token() {
        let table = LeaseTable::default();
        let lease = table.insert(&assignment("a", 7));
        assert!(!table.stop("a", 6, StopReason::LeaseLost));
        assert!(table.stop("a", 7, StopReason::LeaseLost));
        assert_eq!(lease.stop_reason(), Some(StopReason::LeaseLost));
        lease.set_frames_done(3);
        assert_eq!(table.statuses()[0].frames_done, 3);
        table.remove("a");
        assert!(table.is_empty());
    }
}
