//! The agent's run loop: register (once; the node credential is kept on disk), then heartbeat,
//! sample health, take work when idle and allowed, render, and deliver results through the
//! durable outbox, until shutdown. Obeys control-plane commands (cancel a lease, drain, prefetch
//! a template) and quarantines itself after a crash loop, until a canary render passes (`canary`)
//! or ops enable the node again.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use flatrender_proto::{
    pb,
    types::{CrashClass, NodeState, RecoveryAction},
};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Notify, watch},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    cache::{CacheConfig, CacheEntryInfo, TemplateCache},
    client::ControlPlaneClient,
    config::{AgentConfig, NodeConfig},
    delivery::Delivery,
    health::{HealthSample, HealthSampler},
    leases::{LeaseTable, StopReason},
    metrics::AgentMetrics,
    outbox::{ChunkFailure, Outbox, OutboxItem, OutboxLimits},
    recovery::CrashLoopDetector,
    retry::Backoff,
    runner::{self, ChunkContext, ChunkOutcome},
    supervisor,
};

mod quarantine;

/// How long a stopping agent still waits for an acquire already in flight.
const HANDBACK_WAIT: Duration = Duration::from_secs(3);
/// Back-off of registration retries (the control plane unreachable at start-up).
const REGISTER_RETRY_BASE: Duration = Duration::from_secs(1);
const REGISTER_RETRY_CAP: Duration = Duration::from_secs(60);
/// Back-off of failed acquires; a heartbeat that gets through again cuts it short.
const ACQUIRE_RETRY_BASE: Duration = Duration::from_millis(500);
const ACQUIRE_RETRY_CAP: Duration = Duration::from_secs(30);

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

/// The node identity kept on disk after registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    /// Node id.
    pub node_id: String,
    /// Bearer token of the node.
    pub node_token: String,
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
        std::fs::create_dir_all(&config.node.state_dir)?;
        let tag_prefix = process_tag_prefix(&config.node);
        let swept = supervisor::sweep_tagged(&tag_prefix, config.kill_grace()).await;
        if !swept.signalled.is_empty() {
            warn!(
                processes = swept.signalled.len(),
                "killed After Effects processes left by a previous agent run"
            );
        }
        let install = supervisor::find_aerender(
            (!config.aerender.path.as_os_str().is_empty()).then_some(config.aerender.path.as_path()),
        )?;
        info!(aerender = %install.path.display(), version = ?install.version, "found aerender");
        let metrics = Arc::new(AgentMetrics::new());
        let cache = TemplateCache::open(CacheConfig {
            dir: config.cache.dir.clone(),
            budget_bytes: config.cache.budget_bytes,
            download_timeout: Duration::from_secs(config.cache.download_timeout_seconds),
            max_attempts: config.cache.max_attempts,
            retry_base_delay: Duration::from_millis(500),
        })
        .await?;
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
                std::fs::read(path)
                    .with_context(|| format!("control_plane.ca_cert: cannot read {}", path.display()))?,
            )
        };
        let client = Arc::new(ControlPlaneClient::new(
            config.control_plane.endpoints.clone(),
            Duration::from_secs(config.control_plane.request_timeout_seconds),
            ca_pem,
        ));
        let delivery = Arc::new(Delivery::new(client.clone(), outbox.clone(), metrics.clone()));
        let agent = Arc::new(Self {
            chunk: Arc::new(ChunkContext {
                config: config.clone(),
                client: client.clone(),
                cache,
                outbox,
                metrics,
                install,
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

    fn credential_path(&self) -> PathBuf {
        self.config.node.state_dir.join("credential.json")
    }

    /// Loads the stored credential, or registers with the join token and stores the new one.
    async fn ensure_registered(&self) -> anyhow::Result<()> {
        if let Some(credential) = read_credential(&self.credential_path()) {
            self.client.set_token(&credential.node_token);
            info!(node_id = %credential.node_id, "using stored node credential");
            return Ok(());
        }
        self.register().await
    }

    async fn register(&self) -> anyhow::Result<()> {
        let join_token = self.config.join_token()?;
        self.client.set_token(&join_token);
        let system = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::nothing().with_memory(sysinfo::MemoryRefreshKind::everything()),
        );
        let request = pb::RegisterNodeRequest {
            name: self.config.node.name.clone(),
            hostname: sysinfo::System::host_name().unwrap_or_else(|| self.config.node.name.clone()),
            os: current_os() as i32,
            os_version: sysinfo::System::long_os_version().unwrap_or_default(),
            ae_version: self.chunk.install.version.clone().unwrap_or_default(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            cpu_cores: i32::try_from(std::thread::available_parallelism().map_or(1, |cores| cores.get())).unwrap_or(1),
            memory_bytes: i64::try_from(system.total_memory()).unwrap_or(i64::MAX),
            tags: self.config.node.tags.clone(),
            max_leases: self.config.node.max_leases,
        };
        let mut backoff = Backoff::new(REGISTER_RETRY_BASE, REGISTER_RETRY_CAP);
        let response = loop {
            match self.client.register(request.clone()).await {
                Ok(response) => break response,
                Err(error) if error.code().is_some() => anyhow::bail!("registration refused: {error}"),
                Err(error) => {
                    let delay = backoff.next_delay();
                    warn!(%error, ?delay, "control plane unreachable; retrying registration");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let credential = Credential {
            node_id: response.node_id.clone(),
            node_token: response.node_token.clone(),
        };
        write_credential(&self.credential_path(), &credential)?;
        self.client.set_token(&credential.node_token);
        self.apply_timing(response.heartbeat_interval.as_ref(), response.lease_ttl.as_ref());
        info!(node_id = %credential.node_id, "registered with the control plane");
        Ok(())
    }

    fn apply_timing(&self, heartbeat: Option<&prost_types::Duration>, lease_ttl: Option<&prost_types::Duration>) {
        if let Some(interval) = heartbeat.and_then(to_duration).filter(|interval| !interval.is_zero()) {
            *lock(&self.heartbeat_interval) = interval;
        }
        if let Some(ttl) = lease_ttl.and_then(to_duration).filter(|ttl| !ttl.is_zero()) {
            *lock(&self.lease_ttl) = ttl;
        }
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

    /// Whether the agent may take more work now.
    fn may_acquire(&self) -> bool {
        let online = *lock(&self.state) == NodeState::Online;
        let backing_off = lock(&self.back_off_until).is_some_and(|until| Instant::now() < until);
        online && lock(&self.quarantine).is_none() && !backing_off && !self.chunk.outbox.results_full()
    }

    async fn work_loop(self: Arc<Self>, shutdown: CancellationToken) {
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
                            info!(frame_job_id = %assignment.frame_job_id, job_id = %assignment.job_id, lease_token = assignment.lease_token, "rendering chunk");
                            let outcome =
                                runner::run_chunk(&agent.chunk, &assignment, lease, |failure| agent.escalate(failure))
                                    .await;
                            agent.leases.remove(&assignment.frame_job_id);
                            // Report before anything else (a quarantine) can change the lease.
                            agent.delivery.deliver_pending().await;
                            agent.after_chunk(&outcome);
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

    fn after_chunk(&self, outcome: &ChunkOutcome) {
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
            clear_disk_cache(&self.config.aerender.disk_cache_dir);
        }
        match outcome {
            ChunkOutcome::Completed => lock(&self.crash_loop).reset(),
            ChunkOutcome::Failed(failure) => {
                if failure.action == RecoveryAction::BackOff {
                    *lock(&self.back_off_until) =
                        Some(Instant::now() + Duration::from_secs(self.config.recovery.back_off_seconds));
                }
                if failure.action == RecoveryAction::Quarantine {
                    self.enter_quarantine(failure);
                }
            }
            ChunkOutcome::Stopped(_) => {}
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
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
            // Taken, not read: a probe passing while this heartbeat is in flight is not lost.
            probe_succeeded: self.probe_succeeded.swap(false, Ordering::Relaxed),
        };
        let probe_succeeded = request.probe_succeeded;
        match self.client.heartbeat(request).await {
            Ok(response) => {
                *resync_cache = false;
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
                self.keep_health(health).await;
                if error.code() == Some(tonic::Code::Unauthenticated) {
                    warn!("node token refused; registering again");
                    let _ = std::fs::remove_file(self.credential_path());
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

    /// Samples the control plane could not take yet go to the durable outbox.
    async fn keep_health(&self, samples: Vec<HealthSample>) {
        for sample in samples {
            if let Err(error) = self.chunk.outbox.push(OutboxItem::Health(sample)).await {
                warn!(%error, "health sample dropped");
            }
        }
    }

    async fn health_loop(self: Arc<Self>, stop: CancellationToken) {
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

fn current_os() -> pb::OperatingSystem {
    if cfg!(windows) {
        pb::OperatingSystem::Windows
    } else if cfg!(target_os = "macos") {
        pb::OperatingSystem::Macos
    } else {
        pb::OperatingSystem::Linux
    }
}

fn to_duration(value: &prost_types::Duration) -> Option<Duration> {
    Some(Duration::new(
        u64::try_from(value.seconds).ok()?,
        u32::try_from(value.nanos).ok()?,
    ))
}

fn read_credential(path: &Path) -> Option<Credential> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(credential) => Some(credential),
        Err(error) => {
            warn!(%error, path = %path.display(), "ignoring an unreadable credential file; registering again");
            None
        }
    }
}

fn write_credential(path: &Path, credential: &Credential) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, serde_json::to_vec_pretty(credential)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temp, path)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the agent's state is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
