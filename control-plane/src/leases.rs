//! Leases after the claim: renewal (batched across heartbeats), progress, failure with the
//! per-job bad-node list (completions are `crate::completer`'s), and the reaper that requeues expired leases and the work of
//! silent or past-deadline nodes. Failure semantics are in `docs/failure-semantics.md`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use flatrender_proto::types::{CrashClass, FrameJobId, JobId, LeaseToken, NodeId, RecoveryAction, TenantId};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    config::DispatchConfig,
    db::{
        self, DbError,
        frame_jobs::{LeaseClaim, LeaseSelector, RequeuedRow, describe_item},
    },
    dispatch::Dispatcher,
    error::{ControlPlaneError, ControlPlaneResult},
    metrics::Metrics,
    nodes::NodeRegistry,
    shutdown::sleep_or_shutdown,
};

/// Expired leases handled per reaper pass.
const REAP_BATCH: i64 = 500;
/// Pending renewal requests before heartbeats wait for room.
const RENEW_QUEUE: usize = 10_000;

type RenewReply = oneshot::Sender<Result<Vec<FrameJobId>, DbError>>;

/// Batches lease renewals from many heartbeats into one statement: while one statement runs,
/// the next batch gathers (group commit), so no latency is added when the farm is quiet.
pub struct LeaseRenewer {
    sender: mpsc::Sender<(Vec<LeaseClaim>, RenewReply)>,
}

impl LeaseRenewer {
    /// Starts the batching task on `pool`.
    pub fn start(pool: PgPool, lease_ttl: Duration) -> Self {
        let (sender, mut receiver) = mpsc::channel::<(Vec<LeaseClaim>, RenewReply)>(RENEW_QUEUE);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while let Ok(next) = receiver.try_recv() {
                    batch.push(next);
                    if batch.len() >= 1000 {
                        break;
                    }
                }
                let leases: Vec<LeaseClaim> = batch.iter_mut().flat_map(|(leases, _)| leases.drain(..)).collect();
                let result = match pool.acquire().await {
                    Ok(mut connection) => {
                        db::frame_jobs::renew(&mut connection, &leases, lease_ttl.as_secs_f64()).await
                    }
                    Err(error) => Err(error.into()),
                };
                for (_, reply) in batch {
                    let answer = match &result {
                        Ok(renewed) => Ok(renewed.clone()),
                        Err(error) => Err(DbError::Other(sqlx::Error::Protocol(error.to_string()))),
                    };
                    // The heartbeat may have given up waiting; nothing to do then.
                    let _ = reply.send(answer);
                }
            }
        });
        Self { sender }
    }

    /// Renews `leases`; returns the ids still live (the others were lost).
    pub async fn renew(&self, leases: Vec<LeaseClaim>) -> ControlPlaneResult<Vec<FrameJobId>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((leases, reply))
            .await
            .map_err(|_| ControlPlaneError::Unavailable("lease renewal is shutting down".into()))?;
        let renewed = answer
            .await
            .map_err(|_| ControlPlaneError::Unavailable("lease renewal stopped".into()))??;
        Ok(renewed)
    }
}

/// Records progress and renews the lease; `FAILED_PRECONDITION` when the lease is not live.
pub async fn report_progress(
    pool: &PgPool,
    lease: LeaseClaim,
    frames_written: &[i32],
    lease_ttl: Duration,
) -> ControlPlaneResult<DateTime<Utc>> {
    let mut connection = pool.acquire().await?;
    db::frame_jobs::report_progress(&mut connection, &lease, frames_written, lease_ttl.as_secs_f64())
        .await?
        .ok_or_else(|| stale_lease(lease.frame_job_id, lease.token))
}

fn stale_lease(frame_job_id: FrameJobId, token: LeaseToken) -> ControlPlaneError {
    ControlPlaneError::FailedPrecondition(format!(
        "lease {token} on frame job {frame_job_id} is not live (expired, requeued or cancelled)"
    ))
}

/// A failure report from a node.
#[derive(Clone, Debug)]
pub struct FailureReport {
    /// The lease.
    pub frame_job_id: FrameJobId,
    /// Its fencing token.
    pub token: LeaseToken,
    /// The agent's classification.
    pub crash_class: CrashClass,
    /// The log parser's class.
    pub error_class: Option<String>,
    /// aerender's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Last lines of the log.
    pub log_tail: String,
    /// Human-readable message.
    pub message: String,
    /// Frames already written and verified.
    pub frames_written: Vec<i32>,
    /// What the agent recommends.
    pub recovery_action: RecoveryAction,
}

/// Applies a failure: requeue (skipping this node for the job when the agent says so), or fail
/// the chunk and its job when it cannot succeed anywhere or ran out of attempts. Returns whether
/// the chunk will be retried.
pub async fn fail(
    pool: &PgPool,
    node_id: NodeId,
    report: &FailureReport,
    metrics: &Metrics,
) -> ControlPlaneResult<bool> {
    // A node handing its chunk back (graceful stop) is not a failure: no attempt, no crash row.
    let handback = report.recovery_action == RecoveryAction::Requeue;
    let give_up = !handback
        && (report.recovery_action == RecoveryAction::FailJob || report.crash_class == CrashClass::TemplateError);
    let lease = LeaseClaim {
        frame_job_id: report.frame_job_id,
        token: report.token,
        node_id,
        frames_done: 0,
    };
    let error_class = report
        .error_class
        .clone()
        .unwrap_or_else(|| report.crash_class.to_string());
    let mut transaction = pool.begin().await?;
    db::frame_jobs::lock_jobs_of_leases(&mut transaction, &LeaseSelector::Chunks(&[report.frame_job_id])).await?;
    let row = db::frame_jobs::fail(
        &mut transaction,
        &lease,
        give_up,
        !handback,
        &error_class,
        &report.message,
        &report.frames_written,
    )
    .await?
    .ok_or_else(|| stale_lease(report.frame_job_id, report.token))?;
    let job_id = JobId::from_uuid(row.job_id);
    if handback {
        db::frame_jobs::notify_work(&mut transaction).await?;
        transaction.commit().await?;
        info!(%job_id, frame_job_id = %report.frame_job_id, %node_id, "chunk handed back");
        return Ok(true);
    }
    if matches!(
        report.recovery_action,
        RecoveryAction::RetryElsewhere | RecoveryAction::Quarantine
    ) || matches!(report.crash_class, CrashClass::Crash | CrashClass::Hang)
    {
        db::frame_jobs::add_bad_node(&mut transaction, job_id, node_id, &error_class).await?;
    }
    db::crashes::insert(
        &mut transaction,
        &db::crashes::NewCrash {
            node_id,
            job_id: Some(job_id),
            frame_job_id: Some(report.frame_job_id),
            tenant_id: Some(TenantId::from_uuid(row.tenant_id)),
            crash_class: report.crash_class,
            error_class: report.error_class.as_deref(),
            exit_code: report.exit_code,
            log_tail: &report.log_tail,
            recovery_action: report.recovery_action,
        },
    )
    .await?;
    let will_retry = row.state == "pending";
    if will_retry {
        db::frame_jobs::notify_work(&mut transaction).await?;
    } else {
        let reason = chunk_failure_reason(
            &describe_item(&row.kind, row.chunk_index, row.frame_start, row.frame_end),
            row.attempt,
            give_up,
            &error_class,
            &report.message,
        );
        db::jobs::fail(&mut transaction, job_id, &reason).await?;
        info!(%job_id, reason = %reason, "job failed");
    }
    transaction.commit().await?;
    metrics.failure(report.crash_class);
    info!(
        %job_id, frame_job_id = %report.frame_job_id, %node_id, lease_token = %report.token,
        crash_class = %report.crash_class, error_class = %error_class, will_retry, "chunk failed"
    );
    Ok(will_retry)
}

/// The sentence a person reads on a failed job.
fn chunk_failure_reason(what: &str, attempts: i32, template_error: bool, error_class: &str, message: &str) -> String {
    let detail = if message.trim().is_empty() {
        error_class.to_owned()
    } else {
        format!("{error_class}: {}", message.trim())
    };
    let reason = if template_error {
        format!("{what} cannot render on any node ({detail})")
    } else {
        format!(
            "{what} failed {attempts} time{} ({detail})",
            if attempts == 1 { "" } else { "s" }
        )
    };
    reason.chars().take(3900).collect()
}

/// Periodic housekeeping of leases and node liveness, on every control plane (statements are
/// safe to run concurrently).
pub struct Reaper {
    pool: PgPool,
    config: DispatchConfig,
    nodes: Arc<NodeRegistry>,
    dispatcher: Arc<Dispatcher>,
    metrics: Arc<Metrics>,
    passes: AtomicU32,
}

/// Every this many passes the reaper also advances jobs a completion left behind.
const LAGGING_JOBS_EVERY: u32 = 10;

impl Reaper {
    /// A reaper.
    pub fn new(
        pool: PgPool,
        config: DispatchConfig,
        nodes: Arc<NodeRegistry>,
        dispatcher: Arc<Dispatcher>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            pool,
            config,
            nodes,
            dispatcher,
            metrics,
            passes: AtomicU32::new(0),
        }
    }

    /// Runs passes until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let interval = Duration::from_millis(self.config.reaper_interval_ms);
        while !sleep_or_shutdown(interval, &shutdown).await {
            if let Err(error) = self.pass().await {
                warn!(%error, "reaper pass failed");
            }
        }
    }

    /// One pass: expired leases, silent nodes, drain deadlines, finished drains.
    ///
    /// Silence and expiry count from the later of a node's last report and the moment the
    /// control plane became able to hear it again (the beacon): a node is never punished for
    /// an outage of ours or of the database.
    pub async fn pass(&self) -> ControlPlaneResult<()> {
        // What this replica heard is in the database before anyone is judged silent.
        if let Err(error) = self.nodes.flush_liveness().await {
            warn!(%error, "liveness flush before the reaper pass failed");
        }
        let heard_for = {
            let mut connection = self.pool.acquire().await?;
            db::nodes::beacon_pass(&mut connection, self.config.outage_gap().as_secs_f64()).await?
        };
        let mut requeued = 0;
        if heard_for >= self.config.lease_ttl().as_secs_f64() {
            let mut transaction = self.pool.begin().await?;
            let selector = LeaseSelector::Expired(REAP_BATCH);
            db::frame_jobs::lock_jobs_of_leases(&mut transaction, &selector).await?;
            let expired = db::frame_jobs::requeue_leases(
                &mut transaction,
                selector,
                true,
                "lease_expired",
                "lease expired without renewal",
            )
            .await?;
            requeued += self.settle(&mut transaction, &expired, "lease expired").await?;
            transaction.commit().await?;
        }

        let mut transaction = self.pool.begin().await?;
        let silent = if heard_for >= self.config.node_offline_after().as_secs_f64() {
            db::nodes::mark_silent_offline(&mut transaction, self.config.node_offline_after().as_secs_f64()).await?
        } else {
            Vec::new()
        };
        if !silent.is_empty() {
            db::frame_jobs::lock_jobs_of_leases(&mut transaction, &LeaseSelector::Nodes(&silent)).await?;
            let lost = db::frame_jobs::requeue_leases(
                &mut transaction,
                LeaseSelector::Nodes(&silent),
                true,
                "node_offline",
                "node stopped heartbeating",
            )
            .await?;
            requeued += self.settle(&mut transaction, &lost, "node offline").await?;
        }
        let overdue = db::nodes::drains_past_deadline(&mut transaction).await?;
        if !overdue.is_empty() {
            let moved = db::frame_jobs::requeue_leases(
                &mut transaction,
                LeaseSelector::Nodes(&overdue),
                false,
                "drain_deadline",
                "drain deadline passed",
            )
            .await?;
            requeued += moved.len();
        }
        let drained = db::nodes::finish_idle_drains(&mut transaction).await?;
        if requeued > 0 {
            db::frame_jobs::notify_work(&mut transaction).await?;
        }
        transaction.commit().await?;

        for node_id in &silent {
            warn!(%node_id, "node offline: no heartbeat");
            self.nodes
                .set_state(*node_id, flatrender_proto::types::NodeState::Offline, None)
                .await;
        }
        for node_id in &drained {
            info!(%node_id, "node drained");
            self.nodes
                .set_state(*node_id, flatrender_proto::types::NodeState::Drained, None)
                .await;
        }
        if requeued > 0 {
            self.dispatcher.work_added();
        }
        if self.passes.fetch_add(1, Ordering::Relaxed) % LAGGING_JOBS_EVERY == 0 {
            self.advance_lagging_jobs().await?;
        }
        Ok(())
    }

    /// Advances jobs whose status lags their chunks: a control plane died (or lost the
    /// database) between recording a completion and advancing its job (`crate::completer`). A
    /// completion racing this pass is harmless: advancing is idempotent.
    pub async fn advance_lagging_jobs(&self) -> ControlPlaneResult<usize> {
        let mut connection = self.pool.acquire().await?;
        let lagging = db::completions::lagging_jobs(&mut connection, REAP_BATCH).await?;
        if !lagging.is_empty() {
            info!(jobs = lagging.len(), "advancing jobs a completion left behind");
            crate::completer::advance_jobs(&mut connection, &lagging).await?;
        }
        Ok(lagging.len())
    }

    /// Records crashes for lost leases and fails jobs whose chunks ran out of attempts.
    async fn settle(&self, connection: &mut PgConnection, rows: &[RequeuedRow], why: &str) -> Result<usize, DbError> {
        let mut requeued = 0;
        for row in rows {
            let job_id = JobId::from_uuid(row.job_id);
            if let Some(node) = row.node_id {
                db::crashes::insert(
                    connection,
                    &db::crashes::NewCrash {
                        node_id: NodeId::from_uuid(node),
                        job_id: Some(job_id),
                        frame_job_id: Some(FrameJobId::from_uuid(row.id)),
                        tenant_id: Some(TenantId::from_uuid(row.tenant_id)),
                        crash_class: CrashClass::AgentLost,
                        error_class: None,
                        exit_code: None,
                        log_tail: "",
                        recovery_action: RecoveryAction::Requeue,
                    },
                )
                .await?;
                self.metrics.failure(CrashClass::AgentLost);
            }
            warn!(%job_id, frame_job_id = %row.id, node_id = ?row.node_id, state = %row.state, why, "lease ended by control plane");
            if row.state == "failed" {
                let reason = chunk_failure_reason(
                    &describe_item(&row.kind, row.chunk_index, row.frame_start, row.frame_end),
                    row.attempt,
                    false,
                    "agent_lost",
                    why,
                );
                db::jobs::fail(connection, job_id, &reason).await?;
            } else {
                requeued += 1;
            }
        }
        Ok(requeued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failure reasons say which frames, how often, and why, in words.
    #[test]
    fn failure_reasons_read_well() {
        assert_eq!(
            chunk_failure_reason(
                &describe_item("render", 2, 100, 149),
                3,
                false,
                "crash",
                "aerender exited with -1073741819"
            ),
            "chunk 2 (frames 100-149) failed 3 times (crash: aerender exited with -1073741819)"
        );
        assert_eq!(
            chunk_failure_reason(&describe_item("render", 0, 0, 9), 1, true, "comp_not_found", ""),
            "chunk 0 (frames 0-9) cannot render on any node (comp_not_found)"
        );
        assert_eq!(
            chunk_failure_reason(
                &describe_item("encode", 4, 0, 249),
                3,
                false,
                "crash",
                "ffmpeg exited with signal 9"
            ),
            "the encode failed 3 times (crash: ffmpeg exited with signal 9)"
        );
    }
}
