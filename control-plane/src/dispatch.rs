//! Dispatch: hands pending frame chunks to nodes under leases, fairly across tenants and with
//! cache affinity (the SQL is `db/sql/claim.sql`; the reasoning is in `docs/dispatch.md`), and
//! wakes long-polling nodes when work appears.
//!
//! Wake-ups: a transaction that makes work claimable sends one `NOTIFY flatrender_work`; every
//! control plane listens and wakes one waiting node, which wakes the next one if it found work
//! (a chain, not a thundering herd of thousands of claim queries).

use std::{sync::Arc, time::Duration};

use flatrender_proto::types::{ContentHash, NodeId};
use sqlx::{PgPool, postgres::PgListener};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    config::DispatchConfig,
    db::{self, DbError},
    error::ControlPlaneResult,
    jobs::model::{Assignment, TemplateSpec},
    metrics::Metrics,
    nodes::NodeRegistry,
    shutdown::sleep_or_shutdown,
};

/// Pending chunks looked at per tenant when choosing (cache affinity reorders within this window),
/// at least twice the chunks asked for.
const CANDIDATE_WINDOW: i64 = 16;
/// The window of a second look when the first found nothing while work is pending: claims
/// running at the same moment lock the head of the queue, and a window they hold entirely
/// must not turn into "nothing for you" (docs/dispatch.md, "Empty claims").
const WIDE_CANDIDATE_WINDOW: i64 = 1024;
/// Tenants considered per claim, best-ranked first.
const TENANTS_CONSIDERED: i64 = 16;

/// How often the templates at the head of the queue are re-read.
const HOT_TEMPLATES_REFRESH: Duration = Duration::from_secs(5);
/// A node is not told twice within this time to prefetch the same template.
const PREFETCH_REMINDER: Duration = Duration::from_secs(600);

/// Claims work for nodes and wakes the ones waiting for it.
pub struct Dispatcher {
    pool: PgPool,
    config: DispatchConfig,
    nodes: Arc<NodeRegistry>,
    metrics: Arc<Metrics>,
    work_available: Notify,
    hot_templates: std::sync::RwLock<Vec<TemplateSpec>>,
    // Short critical sections, no awaits inside.
    prefetch_sent: std::sync::Mutex<std::collections::HashMap<(NodeId, ContentHash), Instant>>,
}

impl Dispatcher {
    /// A dispatcher over `pool`.
    pub fn new(pool: PgPool, config: DispatchConfig, nodes: Arc<NodeRegistry>, metrics: Arc<Metrics>) -> Self {
        Self {
            pool,
            config,
            nodes,
            metrics,
            work_available: Notify::new(),
            hot_templates: std::sync::RwLock::new(Vec::new()),
            prefetch_sent: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Templates an idle node should fetch now: hot ones (at the head of the queue) it does not
    /// hold and was not told about recently. At most one per call, so downloads spread out.
    pub async fn prefetch_suggestions(&self, node_id: NodeId) -> ControlPlaneResult<Vec<TemplateSpec>> {
        let hot = self.hot_templates.read().map(|hot| hot.clone()).unwrap_or_default();
        if hot.is_empty() {
            return Ok(Vec::new());
        }
        let cached = self.nodes.cached_hashes(node_id).await?;
        let mut sent = self
            .prefetch_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.retain(|_, at| at.elapsed() < PREFETCH_REMINDER);
        let suggestion = hot.into_iter().find(|template| {
            !cached.iter().any(|hash| hash.as_slice() == template.hash.as_bytes())
                && !sent.contains_key(&(node_id, template.hash))
        });
        Ok(match suggestion {
            Some(template) => {
                sent.insert((node_id, template.hash), Instant::now());
                vec![template]
            }
            None => Vec::new(),
        })
    }

    /// Re-reads the hot templates every few seconds until `shutdown`.
    pub async fn track_hot_templates(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            match self.read_hot_templates().await {
                Ok(hot) => {
                    if let Ok(mut current) = self.hot_templates.write() {
                        *current = hot;
                    }
                }
                Err(error) => warn!(%error, "cannot read hot templates"),
            }
            if sleep_or_shutdown(HOT_TEMPLATES_REFRESH, &shutdown).await {
                return;
            }
        }
    }

    async fn read_hot_templates(&self) -> Result<Vec<TemplateSpec>, DbError> {
        let mut connection = self.pool.acquire().await?;
        db::frame_jobs::hot_templates(&mut connection, 8).await
    }

    /// Signals that work may be claimable (after a local submit or requeue).
    pub fn work_added(&self) {
        self.work_available.notify_one();
    }

    /// Claims up to `max_chunks` chunks for `node_id`, waiting up to `wait` for work to appear.
    pub async fn acquire(
        &self,
        node_id: NodeId,
        max_chunks: i64,
        wait: Duration,
    ) -> ControlPlaneResult<Vec<Assignment>> {
        let deadline = Instant::now() + wait;
        loop {
            // Register interest before looking, so a wake-up between the claim and the wait is kept.
            let notified = self.work_available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let assignments = self.claim_once(node_id, max_chunks).await?;
            if !assignments.is_empty() {
                // There may be more: pass the wake-up on to the next waiting node.
                self.work_available.notify_one();
                return Ok(assignments);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(assignments);
            }
            if tokio::time::timeout(deadline - now, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    /// One claim attempt, no waiting.
    pub async fn claim_once(&self, node_id: NodeId, max_chunks: i64) -> ControlPlaneResult<Vec<Assignment>> {
        let Some(facts) = self.nodes.facts(node_id).await? else {
            return Ok(Vec::new());
        };
        if facts.state != flatrender_proto::types::NodeState::Online {
            return Ok(Vec::new());
        }
        let cached_hashes = self.nodes.cached_hashes(node_id).await?;
        let started = Instant::now();
        let mut connection = self.pool.acquire().await?;
        let mut request = db::frame_jobs::ClaimRequest {
            node_id,
            os: facts.os.as_str(),
            ae_version: facts.ae_version.as_deref().unwrap_or(""),
            tags: &facts.tags,
            max_chunks,
            lease_ttl_seconds: self.config.lease_ttl().as_secs_f64(),
            default_guaranteed: self.config.default_guaranteed_leases,
            default_burst: self.config.default_burst_leases,
            cached_hashes: &cached_hashes,
            window: CANDIDATE_WINDOW.max(2 * max_chunks),
            tenants_considered: TENANTS_CONSIDERED,
            bad_node_grace_seconds: self.config.bad_node_grace_seconds as f64,
            renders: facts.capabilities.renders(),
            encodes: facts.capabilities.encodes(),
        };
        let mut assignments = db::frame_jobs::claim(&mut connection, &request).await?;
        if assignments.is_empty() && db::frame_jobs::any_pending(&mut connection).await? {
            request.window = WIDE_CANDIDATE_WINDOW;
            assignments = db::frame_jobs::claim(&mut connection, &request).await?;
            self.metrics.wide_claim(!assignments.is_empty());
        }
        self.metrics.observe_acquire(started.elapsed(), assignments.len());
        for assignment in &assignments {
            info!(
                job_id = %assignment.job_id, frame_job_id = %assignment.frame_job_id, %node_id,
                lease_token = %assignment.lease_token, frames = %assignment.frame_range, attempt = assignment.attempt,
                "leased chunk"
            );
        }
        Ok(assignments)
    }

    /// Listens for `NOTIFY flatrender_work` from every control plane until `shutdown`.
    pub async fn listen_for_work(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    warn!(%error, "cannot listen for work notifications; retrying");
                    if sleep_or_shutdown(Duration::from_secs(2), &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if let Err(error) = listener.listen(db::frame_jobs::WORK_CHANNEL).await {
                warn!(%error, "LISTEN failed; retrying");
                continue;
            }
            // Notifications may have been missed while disconnected: let waiters look once.
            self.work_available.notify_waiters();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(_) => {
                            debug!("work notification");
                            self.work_available.notify_one();
                        }
                        Err(error) => {
                            warn!(%error, "work listener lost its connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }
}
