//! Prometheus metrics served on `/metrics`. Counters and histograms are updated where things
//! happen; farm-wide gauges (nodes by state, chunks by state, queue depth per tenant) are
//! refreshed from the database every few seconds, so every replica reports the same farm.

use std::{sync::Arc, time::Duration};

use flatrender_proto::types::CrashClass;
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    db::{self, completions::CompletionVerdict},
    shutdown::sleep_or_shutdown,
    views::HealthSample,
};

const GAUGE_REFRESH: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoundLabel {
    found: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node_id: String,
}

/// Every metric the control plane exports.
pub struct Metrics {
    registry: Registry,
    nodes: Family<StateLabel, Gauge>,
    frame_jobs: Family<StateLabel, Gauge>,
    queue_depth: Family<TenantLabel, Gauge>,
    acquire_latency: Histogram,
    leases_granted: Counter,
    wide_claims: Family<FoundLabel, Counter>,
    completions: Family<OutcomeLabel, Counter>,
    failures: Family<ClassLabel, Counter>,
    health_written: Counter,
    health_dropped: Counter,
    node_cpu: Family<NodeLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    node_memory_used: Family<NodeLabel, Gauge>,
    node_disk_free: Family<NodeLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flatrender");
        let nodes = Family::<StateLabel, Gauge>::default();
        registry.register("nodes", "Render nodes by state", nodes.clone());
        let frame_jobs = Family::<StateLabel, Gauge>::default();
        registry.register(
            "frame_jobs",
            "Frame chunks in flight by state (pending, leased); finished ones are counted by completions and failures",
            frame_jobs.clone(),
        );
        let queue_depth = Family::<TenantLabel, Gauge>::default();
        registry.register("queue_depth", "Pending frame chunks per tenant", queue_depth.clone());
        let acquire_latency = Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]);
        registry.register(
            "lease_acquire_seconds",
            "Time to run one claim query",
            acquire_latency.clone(),
        );
        let leases_granted = Counter::default();
        registry.register("leases_granted", "Leases handed to nodes", leases_granted.clone());
        let wide_claims = Family::<FoundLabel, Counter>::default();
        registry.register(
            "wide_claims",
            "Second looks with a wide window after a claim found nothing while work was pending, by whether they found work",
            wide_claims.clone(),
        );
        let completions = Family::<OutcomeLabel, Counter>::default();
        registry.register("completions", "Chunk completions by outcome", completions.clone());
        let failures = Family::<ClassLabel, Counter>::default();
        registry.register("failures", "Chunk failures and crashes by class", failures.clone());
        let health_written = Counter::default();
        registry.register(
            "health_samples_written",
            "Health samples stored",
            health_written.clone(),
        );
        let health_dropped = Counter::default();
        registry.register(
            "health_samples_dropped",
            "Health samples dropped (queue full or write failed)",
            health_dropped.clone(),
        );
        let node_cpu = Family::<NodeLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register("node_cpu_percent", "Latest CPU use per node", node_cpu.clone());
        let node_memory_used = Family::<NodeLabel, Gauge>::default();
        registry.register(
            "node_memory_used_bytes",
            "Latest memory use per node",
            node_memory_used.clone(),
        );
        let node_disk_free = Family::<NodeLabel, Gauge>::default();
        registry.register(
            "node_output_disk_free_bytes",
            "Latest free output disk per node",
            node_disk_free.clone(),
        );
        Self {
            registry,
            nodes,
            frame_jobs,
            queue_depth,
            acquire_latency,
            leases_granted,
            wide_claims,
            completions,
            failures,
            health_written,
            health_dropped,
            node_cpu,
            node_memory_used,
            node_disk_free,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            warn!("metrics encoding failed");
        }
        text
    }

    /// One claim query ran and granted `granted` leases.
    pub fn observe_acquire(&self, elapsed: Duration, granted: usize) {
        self.acquire_latency.observe(elapsed.as_secs_f64());
        self.leases_granted.inc_by(granted as u64);
    }

    /// A claim looked again with a wide window; `found` says whether that found work.
    pub fn wide_claim(&self, found: bool) {
        self.wide_claims
            .get_or_create(&FoundLabel {
                found: if found { "true" } else { "false" }.into(),
            })
            .inc();
    }

    /// A completion was judged.
    pub fn completion(&self, verdict: CompletionVerdict) {
        let outcome = match verdict {
            CompletionVerdict::Accepted => "accepted",
            CompletionVerdict::Duplicate => "duplicate",
            CompletionVerdict::Stale => "stale",
            CompletionVerdict::JobEnded => "job_ended",
        };
        self.completions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A chunk failed or a lease was lost.
    pub fn failure(&self, class: CrashClass) {
        self.failures
            .get_or_create(&ClassLabel {
                class: class.as_str().into(),
            })
            .inc();
    }

    /// Health samples were stored.
    pub fn health_samples_written(&self, count: u64) {
        self.health_written.inc_by(count);
    }

    /// Health samples were dropped.
    pub fn health_samples_dropped(&self, count: u64) {
        self.health_dropped.inc_by(count);
    }

    /// Updates a node's gauges from its latest sample.
    pub fn node_health(&self, sample: &HealthSample) {
        let label = NodeLabel {
            node_id: sample.node_id.to_string(),
        };
        self.node_cpu.get_or_create(&label).set(f64::from(sample.cpu_percent));
        self.node_memory_used
            .get_or_create(&label)
            .set(sample.memory_used_bytes);
        self.node_disk_free
            .get_or_create(&label)
            .set(sample.output_disk_free_bytes);
    }

    /// Refreshes the farm-wide gauges from the database.
    pub async fn refresh_gauges(&self, pool: &PgPool) -> Result<(), db::DbError> {
        let mut connection = pool.acquire().await?;
        let nodes = db::nodes::count_by_state(&mut connection).await?;
        let queues = db::frame_jobs::tenant_queues(&mut connection).await?;
        self.nodes.clear();
        for (state, count) in nodes {
            self.nodes.get_or_create(&StateLabel { state }).set(count);
        }
        let (pending, leased) = queues
            .iter()
            .fold((0, 0), |(pending, leased), (_, p, l)| (pending + p, leased + l));
        self.frame_jobs.clear();
        for (state, count) in [("pending", pending), ("leased", leased)] {
            self.frame_jobs
                .get_or_create(&StateLabel { state: state.into() })
                .set(count);
        }
        self.queue_depth.clear();
        for (tenant, pending, _) in queues {
            self.queue_depth
                .get_or_create(&TenantLabel {
                    tenant_id: tenant.to_string(),
                })
                .set(pending);
        }
        Ok(())
    }

    /// Refreshes gauges every few seconds until `shutdown`; a slow refresh (a queue of millions)
    /// spaces the next one out so that refreshing takes at most 2% of the time.
    pub async fn run(self: Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        loop {
            let started = tokio::time::Instant::now();
            if let Err(error) = self.refresh_gauges(&pool).await {
                warn!(%error, "metrics refresh failed");
            }
            let pause = GAUGE_REFRESH.max(started.elapsed() * 50);
            if sleep_or_shutdown(pause, &shutdown).await {
                return;
            }
        }
    }
}
