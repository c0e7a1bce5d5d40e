//! Frame retention: a finished job's rendered frames stay on the nodes that wrote them for
//! `dispatch.frames_retention_seconds` (the encode may need them again until the job ends, ops
//! may want to look), then each such node is told, in a heartbeat reply, to remove
//! `<output root>/<job id>/`, and its next heartbeat confirms it. Disks would fill otherwise.
//!
//! Looked up per node at most once a minute (or once per retention time, when shorter), so the
//! heartbeat path stays one cheap statement in the common case of nothing to remove.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use flatrender_proto::types::{JobId, NodeId};
use sqlx::PgPool;
use tokio::time::Instant;
use tracing::info;

use crate::{db, error::ControlPlaneResult};

/// Longest time between two look-ups for one node.
const CHECK_EVERY: Duration = Duration::from_secs(60);
/// Removals handed to a node per heartbeat.
const PER_HEARTBEAT: i64 = 16;

/// Hands out frame removals and records their confirmations.
pub struct FrameRetention {
    pool: PgPool,
    retention: Duration,
    // Short critical sections, no awaits inside.
    checked: Mutex<HashMap<NodeId, Instant>>,
}

impl FrameRetention {
    /// Frames are kept `retention` after their job ends.
    pub fn new(pool: PgPool, retention: Duration) -> Self {
        Self {
            pool,
            retention,
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// Jobs whose frames `node_id` should remove now (empty between look-ups).
    pub async fn due(&self, node_id: NodeId) -> ControlPlaneResult<Vec<JobId>> {
        let every = CHECK_EVERY.min(self.retention);
        {
            let mut checked = lock(&self.checked);
            if checked.get(&node_id).is_some_and(|at| at.elapsed() < every) {
                return Ok(Vec::new());
            }
            checked.insert(node_id, Instant::now());
        }
        let mut connection = self.pool.acquire().await?;
        let due =
            db::retention::frames_due(&mut connection, node_id, self.retention.as_secs_f64(), PER_HEARTBEAT).await?;
        if due.len() as i64 == PER_HEARTBEAT {
            // More may be waiting: look again at the next heartbeat.
            lock(&self.checked).remove(&node_id);
        }
        Ok(due)
    }

    /// Records that `node_id` removed the frames of `jobs`.
    pub async fn confirm(&self, node_id: NodeId, jobs: &[JobId]) -> ControlPlaneResult<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut connection = self.pool.acquire().await?;
        let chunks =
            db::retention::confirm_removed(&mut connection, node_id, jobs, self.retention.as_secs_f64()).await?;
        info!(%node_id, jobs = jobs.len(), chunks, "node removed finished jobs' frames");
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only means a panic elsewhere; the data is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
