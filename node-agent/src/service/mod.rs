//! The agent's run loop: register (once; the node credential is kept on disk), then heartbeat,
//! sample health, take work when idle and allowed, render or encode, and deliver results through
//! the durable outbox, until shutdown. Obeys control-plane commands (cancel a lease, drain, prefetch
//! a template) and quarantines itself after a crash loop, until a canary render passes (`canary`)
//! or ops enable the node again.
//!
//! One file per loop: `register` (the node credential), `work` (acquire, render, after a chunk),
//! `heartbeat` (and the control plane's commands), `health` (samples), `quarantine` (and the
//! canary probe loop); `programs` finds aerender and the encoder at start (the node's
//! capabilities). This file holds the shared state and `run`, which starts them all.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64},
    },
    time::Duration,
};

use anyhow::Context;
use flatrender_proto::types::NodeState;
use tokio::{
    sync::{Notify, watch},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    cache::{AssetCache, CacheConfig, TemplateCache},
    client::ControlPlaneClient,
    config::{AgentConfig, NodeConfig},
    content::{hook, workdir},
    delivery::Delivery,
    export::ExportStore,
    health::HealthSample,
    leases::{LeaseTable, StopReason},
    metrics::AgentMetrics,
    outbox::{Outbox, OutboxLimits},
    recovery::CrashLoopDetector,
    runner::ChunkContext,
    supervisor,
};

mod frames;
mod health;
mod heartbeat;
mod programs;
mod quarantine;
mod register;
mod work;

pub use register::Credential;

/// Prefix of the process tags of every aerender this agent starts (swept at start-up). It names
/// the node and its state folder: agents sharing a machine never sweep each other's renders, even
/// when two are (mis)configured with one name, while a restarted agent still finds its own orphans.
pub fn process_tag_prefix(node: &NodeConfig) -> String {
    let state_dir = std::fs::canonicalize(&node.state_dir)
        .or_else(|_| std::path::absolute(&node.state_dir))
        .unwrap_or_else(|_| node.state_dir.clone());
    let hash = blake3::hash(state_dir.as_os_str().as_encoded_bytes()).to_hex();
    format!("flatrender/{}@{}/", node.name, &hash[..8])
}

/// Shared state of a running agent.
pub struct Agent {
    config: Arc<AgentConfig>,
    client: Arc<ControlPlaneClient>,
    leases: Arc<LeaseTable>,
    chunk: Arc<ChunkContext>,
    delivery: Arc<Delivery>,
    state: Mutex<NodeState>,
    quarantine: Mutex<Option<String>>,
    /// Bumped by every new quarantine, so the probe loop starts its back-off afresh.
    quarantine_epoch: AtomicU64,
    /// Wakes the probe loop when the node quarantines itself.
    quarantine_started: Notify,
    /// The last quarantine epoch a heartbeat delivered: no probe before the control plane knows
    /// of the quarantine, or a quick pass would hide it from ops.
    quarantine_reported: watch::Sender<u64>,
    quarantine_acknowledged: AtomicBool,
    probe_succeeded: AtomicBool,
    /// Set once a heartbeat of this run delivered the node's capabilities.
    capabilities_reported: AtomicBool,
    /// Jobs whose frames were removed, to confirm with the next heartbeat.
    frames_removed: Arc<Mutex<Vec<String>>>,
    crash_loop: Mutex<CrashLoopDetector>,
    back_off_until: Mutex<Option<Instant>>,
    heartbeat_interval: Mutex<Duration>,
    lease_ttl: Mutex<Duration>,
    chunk_finished: Notify,
    /// Wakes the work loop out of its retry back-off when a heartbeat gets through again.
    control_plane_back: Notify,
    health: Mutex<Vec<HealthSample>>,
    cache_errors: AtomicU32,
}

impl Agent {
    /// Opens everything the agent needs and registers if it has no credential yet.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Arc<Self>> {
        let config = Arc::new(config);
        tokio::fs::create_dir_all(&config.node.state_dir).await?;
        let tag_prefix = process_tag_prefix(&config.node);
        let swept = supervisor::sweep_tagged(&tag_prefix, config.kill_grace()).await;
        if !swept.signalled.is_empty() {
            warn!(
                processes = swept.signalled.len(),
                "killed After Effects processes left by a previous agent run"
            );
        }
        let programs::Programs { install, encoder } = programs::find(&config, &tag_prefix).await?;
        // Before registering: a node that cannot apply saved projects' values must not take work.
        // An encode-only node runs no After Effects, so it has no hook to install.
        if let Some(install) = &install {
            let startup_dir = hook::startup_scripts_dir(&config.aerender.startup_scripts_dir, &install.path);
            tokio::task::spawn_blocking(move || hook::install(&startup_dir)).await??;
        }
        let work_root = workdir::work_root(&config.node.state_dir);
        match tokio::task::spawn_blocking(move || workdir::remove_leftovers(&work_root)).await? {
            Ok(0) => {}
            Ok(removed) => info!(removed, "removed working folders left by a previous agent run"),
            Err(error) => warn!(%error, "could not remove working folders left by a previous agent run"),
        }
        let metrics = Arc::new(AgentMetrics::new());
        let cache_config = |dir: &std::path::Path, budget_bytes: u64| CacheConfig {
            dir: dir.to_path_buf(),
            budget_bytes,
            download_timeout: Duration::from_secs(config.cache.download_timeout_seconds),
            max_attempts: config.cache.max_attempts,
            retry_base_delay: Duration::from_millis(500),
        };
        let cache = TemplateCache::open(cache_config(&config.cache.dir, config.cache.budget_bytes)).await?;
        let assets = AssetCache::open(cache_config(&config.cache.asset_dir(), config.cache.asset_budget_bytes)).await?;
        let cache_metrics = metrics.clone();
        cache.observe_stats(move |stats| cache_metrics.observe_cache(stats));
        let outbox = Arc::new(
            Outbox::open(
                config.node.state_dir.join("outbox"),
                OutboxLimits {
                    max_health_samples: config.outbox.max_health_samples,
                    max_bytes: config.outbox.max_bytes,
                },
            )
            .await?,
        );
        let ca_pem = if config.control_plane.ca_cert.as_os_str().is_empty() {
            None
        } else {
            let path = &config.control_plane.ca_cert;
            Some(
                tokio::fs::read(path)
                    .await
                    .with_context(|| format!("control_plane.ca_cert: cannot read {}", path.display()))?,
            )
        };
        let client = Arc::new(ControlPlaneClient::new(
            config.control_plane.endpoints.clone(),
            Duration::from_secs(config.control_plane.request_timeout_seconds),
            ca_pem,
        ));
        let exports = Arc::new(ExportStore::from_config(&config.export)?);
        let delivery = Arc::new(Delivery::new(
            client.clone(),
            outbox.clone(),
            exports.clone(),
            metrics.clone(),
        ));
        let agent = Arc::new(Self {
            chunk: Arc::new(ChunkContext {
                config: config.clone(),
                client: client.clone(),
                cache,
                assets,
                outbox,
                metrics,
                install,
                encoder,
                exports,
                process_tag_prefix: tag_prefix,
            }),
            delivery,
            config: config.clone(),
            client,
            leases: Arc::new(LeaseTable::default()),
            state: Mutex::new(NodeState::Online),
            quarantine: Mutex::new(None),
            quarantine_epoch: AtomicU64::new(0),
            quarantine_started: Notify::new(),
            quarantine_reported: watch::Sender::new(0),
            quarantine_acknowledged: AtomicBool::new(false),
            probe_succeeded: AtomicBool::new(false),
            capabilities_reported: AtomicBool::new(false),
            frames_removed: Arc::default(),
            crash_loop: Mutex::new(CrashLoopDetector::new(
                config.recovery.crash_loop_threshold,
                Duration::from_secs(config.recovery.crash_loop_window_seconds),
            )),
            back_off_until: Mutex::new(None),
            heartbeat_interval: Mutex::new(Duration::from_secs(10)),
            lease_ttl: Mutex::new(Duration::from_secs(60)),
            chunk_finished: Notify::new(),
            control_plane_back: Notify::new(),
            health: Mutex::new(Vec::new()),
            cache_errors: AtomicU32::new(0),
        });
        agent.ensure_registered().await?;
        Ok(agent)
    }

    /// Runs until `shutdown`, then hands back or finishes running work and flushes the outbox.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().heartbeat_loop(background.clone()));
        tasks.spawn(self.clone().probe_loop(background.clone()));
        tasks.spawn(self.clone().health_loop(background.clone()));
        tasks.spawn(self.delivery.clone().run(background.clone()));
        tasks.spawn(crate::render_logs::prune_loop(
            self.config.node.state_dir.clone(),
            self.config.node.render_log_retention_days,
            background.clone(),
        ));
        if !self.config.metrics.listen.is_empty() {
            let listener = tokio::net::TcpListener::bind(&self.config.metrics.listen).await?;
            info!(listen = %listener.local_addr()?, "agent metrics listening");
            tasks.spawn(crate::metrics::serve(
                listener,
                self.chunk.metrics.clone(),
                background.clone().cancelled_owned(),
            ));
        }
        self.clone().work_loop(shutdown.clone()).await;

        // Stopping: give running chunks a grace period, then hand them back.
        let grace = Duration::from_secs(self.config.node.shutdown_grace_seconds);
        let deadline = Instant::now() + grace;
        while !self.leases.is_empty() && Instant::now() < deadline {
            let _ = tokio::time::timeout_at(deadline, self.chunk_finished.notified()).await;
        }
        if !self.leases.is_empty() {
            info!(running = self.leases.len(), "handing running chunks back");
            self.leases.stop_all(StopReason::Shutdown);
            while !self.leases.is_empty() {
                self.chunk_finished.notified().await;
            }
        }
        self.delivery.deliver_pending().await;
        background.cancel();
        while tasks.join_next().await.is_some() {}
        info!("agent stopped");
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the agent's state is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn node(name: &str, state_dir: &Path) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            state_dir: state_dir.to_path_buf(),
            ..NodeConfig::default()
        }
    }

    /// The process tag prefix names the node and its state folder, so agents sharing a machine
    /// never sweep each other, not even two configured with the same name; it is stable across
    /// restarts so a restarted agent still finds its own orphans.
    #[test]
    fn tag_prefixes_are_per_agent() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let prefix = process_tag_prefix(&node("node-a", one.path()));
        assert!(
            prefix.starts_with("flatrender/node-a@") && prefix.ends_with('/'),
            "{prefix}"
        );
        assert_eq!(prefix, process_tag_prefix(&node("node-a", one.path())), "stable");
        let same_name_elsewhere = process_tag_prefix(&node("node-a", two.path()));
        assert_ne!(prefix, same_name_elsewhere);
        let longer_name = process_tag_prefix(&node("node-a-2", one.path()));
        assert!(!format!("{longer_name}x").starts_with(&prefix));
        assert!(!format!("{prefix}x").starts_with(&longer_name));
    }
}
