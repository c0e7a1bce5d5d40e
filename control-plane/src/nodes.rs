//! Render nodes: registration, the in-memory view dispatch reads (refreshed from the database,
//! which stays the only shared state), coalesced liveness, and the node state machine
//! (`docs/state-machines.md`).
//!
//! Heartbeats are cheap on purpose: a heartbeat only records "seen at" in memory; one
//! multi-row statement per second writes all of them to `render.node_liveness`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use flatrender_proto::types::{NodeId, NodeState, OperatingSystem, TokenKind};
use sqlx::PgPool;
use tokio::{sync::RwLock, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    db::{self, DbError, frame_jobs::LeaseSelector},
    error::{ControlPlaneError, ControlPlaneResult},
    shutdown::sleep_or_shutdown,
    views::NodeCapabilities,
};

const FACTS_REFRESH: Duration = Duration::from_secs(1);
const CACHE_INVENTORY_TTL: Duration = Duration::from_secs(30);

/// What dispatch needs to know about a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    /// Operating system.
    pub os: String,
    /// After Effects version.
    pub ae_version: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Current state.
    pub state: NodeState,
    /// Drain deadline, when draining with one.
    pub drain_deadline: Option<DateTime<Utc>>,
    /// What it takes besides rendering.
    pub capabilities: NodeCapabilities,
}

type CachedHashes = (Vec<Vec<u8>>, Instant);

/// The node view shared by the API handlers, dispatch and the reaper.
pub struct NodeRegistry {
    pool: PgPool,
    facts: RwLock<HashMap<NodeId, NodeFacts>>,
    // Short critical sections, no awaits inside: std mutexes.
    seen: Mutex<HashMap<NodeId, DateTime<Utc>>>,
    cached_templates: Mutex<HashMap<NodeId, CachedHashes>>,
}

impl NodeRegistry {
    /// An empty registry; call [`Self::refresh`] (or run [`Self::run`]) to fill it.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            facts: RwLock::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            cached_templates: Mutex::new(HashMap::new()),
        }
    }

    /// Reloads every node's facts from the database.
    pub async fn refresh(&self) -> Result<(), DbError> {
        let rows = {
            let mut connection = self.pool.acquire().await?;
            db::nodes::all_facts(&mut connection).await?
        };
        let fresh: HashMap<NodeId, NodeFacts> = rows.into_iter().filter_map(facts_of).collect();
        *self.facts.write().await = fresh;
        Ok(())
    }

    /// A node's facts; reads just that node when it is not known here yet (registered on
    /// another replica, or a moment ago).
    pub async fn facts(&self, node_id: NodeId) -> Result<Option<NodeFacts>, DbError> {
        if let Some(facts) = self.facts.read().await.get(&node_id) {
            return Ok(Some(facts.clone()));
        }
        let row = {
            let mut connection = self.pool.acquire().await?;
            db::nodes::facts(&mut connection, node_id).await?
        };
        Ok(self.remember(row).await)
    }

    /// Keeps a freshly read node's facts; returns them.
    pub(crate) async fn remember(&self, row: Option<db::nodes::NodeFactsRow>) -> Option<NodeFacts> {
        let (node_id, facts) = facts_of(row?)?;
        self.facts.write().await.insert(node_id, facts.clone());
        Some(facts)
    }

    /// Records what a node reported it can do at an agent's start (its first heartbeat).
    pub async fn update_capabilities(&self, node_id: NodeId, capabilities: &NodeCapabilities) -> Result<(), DbError> {
        let known = self
            .facts
            .read()
            .await
            .get(&node_id)
            .map(|facts| facts.capabilities.clone());
        if known.as_ref() == Some(capabilities) {
            return Ok(());
        }
        {
            let mut connection = self.pool.acquire().await?;
            db::nodes::set_capabilities(&mut connection, node_id, capabilities).await?;
        }
        if let Some(facts) = self.facts.write().await.get_mut(&node_id) {
            facts.capabilities = capabilities.clone();
        }
        info!(%node_id, encoder = ?capabilities.encoder, encode_only = capabilities.encode_only, "node capabilities");
        Ok(())
    }

    /// Notes a state change made here so this instance sees it before the next refresh.
    pub async fn set_state(&self, node_id: NodeId, state: NodeState, drain_deadline: Option<DateTime<Utc>>) {
        if let Some(facts) = self.facts.write().await.get_mut(&node_id) {
            facts.state = state;
            facts.drain_deadline = drain_deadline;
        }
    }

    /// Records a heartbeat (written in the next liveness flush).
    pub fn record_seen(&self, node_id: NodeId) {
        lock(&self.seen).insert(node_id, Utc::now());
    }

    /// The template hashes a node holds (cached briefly).
    pub async fn cached_hashes(&self, node_id: NodeId) -> Result<Vec<Vec<u8>>, DbError> {
        if let Some((hashes, at)) = lock(&self.cached_templates).get(&node_id)
            && at.elapsed() < CACHE_INVENTORY_TTL
        {
            return Ok(hashes.clone());
        }
        let mut connection = self.pool.acquire().await?;
        let hashes = db::nodes::cached_hashes(&mut connection, node_id).await?;
        lock(&self.cached_templates).insert(node_id, (hashes.clone(), Instant::now()));
        Ok(hashes)
    }

    /// Forgets the cached inventory of a node (it just reported a change).
    pub fn invalidate_cache_inventory(&self, node_id: NodeId) {
        lock(&self.cached_templates).remove(&node_id);
    }

    /// Writes pending liveness in one statement, and brings back online the nodes heard after
    /// they were marked offline (by any replica: this one's view may not know yet).
    pub async fn flush_liveness(&self) -> Result<usize, DbError> {
        let seen: Vec<(NodeId, DateTime<Utc>)> = lock(&self.seen).drain().collect();
        if seen.is_empty() {
            return Ok(0);
        }
        let written = async {
            let mut transaction = self.pool.begin().await?;
            db::nodes::touch_liveness(&mut transaction, &seen).await?;
            let back = db::nodes::revive_heard(&mut transaction, &seen).await?;
            transaction.commit().await?;
            Ok::<_, DbError>(back)
        }
        .await;
        if let Ok(back) = &written {
            for node_id in back {
                info!(%node_id, "node heard again after being marked offline: online");
                self.set_state(*node_id, NodeState::Online, None).await;
            }
        }
        if let Err(error) = written {
            // Put them back so the next flush retries (newer heartbeats win).
            let mut pending = lock(&self.seen);
            for (node_id, at) in seen {
                pending.entry(node_id).or_insert(at);
            }
            return Err(error);
        }
        Ok(seen.len())
    }

    /// Refreshes facts and flushes liveness every second until `shutdown` (then flushes once more).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let stopping = sleep_or_shutdown(FACTS_REFRESH, &shutdown).await;
            if let Err(error) = self.flush_liveness().await {
                warn!(%error, "liveness flush failed");
            }
            if stopping {
                return;
            }
            if let Err(error) = self.refresh().await {
                warn!(%error, "node refresh failed");
            }
        }
    }
}

fn facts_of(row: db::nodes::NodeFactsRow) -> Option<(NodeId, NodeFacts)> {
    let Some(state) = NodeState::parse(&row.state) else {
        warn!(node_id = %row.id, state = %row.state, "node has unknown state; ignored");
        return None;
    };
    let capabilities = row.capabilities();
    Some((
        NodeId::from_uuid(row.id),
        NodeFacts {
            capabilities,
            os: row.os,
            ae_version: row.ae_version,
            tags: row.tags,
            state,
            drain_deadline: row.drain_deadline,
        },
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned map only means a panic elsewhere; the data is still consistent.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A validated registration.
#[derive(Clone, Debug)]
pub struct NodeRegistration {
    /// Unique node name.
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Operating system.
    pub os: OperatingSystem,
    /// OS version.
    pub os_version: Option<String>,
    /// After Effects version.
    pub ae_version: Option<String>,
    /// Agent version.
    pub agent_version: String,
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory.
    pub memory_bytes: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Concurrent chunks.
    pub max_leases: i32,
    /// What it takes besides rendering.
    pub capabilities: NodeCapabilities,
}

/// A registered node: its id, its state, and its new node token (shown once).
pub struct Registered {
    /// The node.
    pub node_id: NodeId,
    /// Its state (offline nodes come back online; disabled and quarantined stay so).
    pub state: NodeState,
    /// The node token that replaces every earlier one.
    pub token: String,
}

/// Creates or refreshes a node and issues its token, in one transaction on one connection (a
/// farm reconnecting after a restart registers all at once: nothing here may need a second
/// connection or re-read every node).
pub async fn register(
    pool: &PgPool,
    registry: &NodeRegistry,
    registration: &NodeRegistration,
) -> ControlPlaneResult<Registered> {
    let mut transaction = pool.begin().await?;
    let node_id = db::nodes::upsert(
        &mut transaction,
        &db::nodes::Registration {
            name: &registration.name,
            hostname: &registration.hostname,
            os: registration.os.as_str(),
            os_version: registration.os_version.as_deref(),
            ae_version: registration.ae_version.as_deref(),
            agent_version: &registration.agent_version,
            cpu_cores: registration.cpu_cores,
            memory_bytes: registration.memory_bytes,
            tags: &registration.tags,
            max_leases: registration.max_leases,
            capabilities: &registration.capabilities,
        },
    )
    .await?;
    let label = format!("node {}", registration.name);
    let (token_id, token) =
        crate::auth::create_token_in(&mut transaction, TokenKind::Node, &label, None, Some(node_id), None).await?;
    db::tokens::revoke_node_tokens_except(&mut transaction, node_id, token_id).await?;
    let row = db::nodes::facts(&mut transaction, node_id).await?;
    transaction.commit().await?;
    let state = registry
        .remember(row)
        .await
        .map_or(NodeState::Online, |facts| facts.state);
    info!(%node_id, name = %registration.name, os = %registration.os, ae_version = ?registration.ae_version, %state, "node registered");
    Ok(Registered { node_id, state, token })
}

/// An ops or agent-driven change of node state.
#[derive(Clone, Copy, Debug)]
pub enum NodeTransition {
    /// Finish running work, take no more; requeue what still runs at the deadline.
    Drain(Option<DateTime<Utc>>),
    /// Back to online from draining or drained.
    Undrain,
    /// Out of dispatch at once; running work is requeued.
    Disable,
    /// Back online from disabled or quarantined (ops).
    Enable,
    /// The agent reports a crash loop.
    Quarantine,
    /// A probe render succeeded while quarantined.
    ProbeSucceeded,
    /// A heartbeat from a node marked offline.
    CameBack,
}

impl NodeTransition {
    fn plan(self) -> (&'static [NodeState], NodeState) {
        use NodeState::*;
        match self {
            NodeTransition::Drain(_) => (&[Online, Draining, Drained], Draining),
            NodeTransition::Undrain => (&[Draining, Drained], Online),
            NodeTransition::Disable => (&[Online, Draining, Drained, Offline, Quarantined], Disabled),
            NodeTransition::Enable => (&[Disabled, Quarantined], Online),
            NodeTransition::Quarantine => (&[Online, Draining, Drained], Quarantined),
            NodeTransition::ProbeSucceeded => (&[Quarantined], Online),
            NodeTransition::CameBack => (&[Offline], Online),
        }
    }
}

/// Applies a transition; returns the chunks requeued as a side effect (disable, quarantine).
/// A transition from a state it does not apply to is `FAILED_PRECONDITION`.
pub async fn transition(
    pool: &PgPool,
    registry: &NodeRegistry,
    node_id: NodeId,
    change: NodeTransition,
    reason: Option<&str>,
) -> ControlPlaneResult<u64> {
    let (from, to) = change.plan();
    let deadline = match change {
        NodeTransition::Drain(deadline) => deadline,
        _ => None,
    };
    let mut transaction = pool.begin().await?;
    if !db::nodes::exists(&mut transaction, node_id).await? {
        return Err(ControlPlaneError::NotFound(format!("node {node_id}")));
    }
    if !db::nodes::transition(&mut transaction, node_id, from, to, reason, deadline).await? {
        let current = registry
            .facts(node_id)
            .await?
            .map_or("unknown".to_owned(), |facts| facts.state.to_string());
        return Err(ControlPlaneError::FailedPrecondition(format!(
            "node {node_id} is {current}; cannot move it to {to} from there"
        )));
    }
    if let NodeTransition::ProbeSucceeded | NodeTransition::Enable = change {
        // Re-admitted (a canary render passed, or ops said so): its crashes are behind it.
        db::crashes::mark_recovered(&mut transaction, node_id).await?;
    }
    if let NodeTransition::CameBack = change {
        // Heard just now: written with the state, not a second later by the liveness flush,
        // so no reaper pass can find the node online and silent.
        db::nodes::touch_liveness(&mut transaction, &[(node_id, Utc::now())]).await?;
    }
    let requeued = match change {
        NodeTransition::Disable | NodeTransition::Quarantine => {
            let error_class = if to == NodeState::Disabled {
                "node_disabled"
            } else {
                "node_quarantined"
            };
            db::frame_jobs::requeue_leases(
                &mut transaction,
                LeaseSelector::Nodes(&[node_id]),
                false,
                error_class,
                reason.unwrap_or(error_class),
            )
            .await?
            .len() as u64
        }
        _ => 0,
    };
    if requeued > 0 {
        db::frame_jobs::notify_work(&mut transaction).await?;
    }
    transaction.commit().await?;
    registry.set_state(node_id, to, deadline).await;
    info!(%node_id, state = %to, reason = reason.unwrap_or(""), requeued, "node state changed");
    Ok(requeued)
}
