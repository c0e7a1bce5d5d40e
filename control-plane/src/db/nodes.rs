//! `render.nodes`, `render.node_liveness` and `render.node_template_cache`.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{ContentHash, NodeId, NodeState, OperatingSystem, TemplateId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;
use crate::views::{CacheEntryView, EncoderVersions, NodeCapabilities, NodeView};

/// A node row with its liveness and running lease count.
#[derive(Clone, Debug, sqlx::FromRow)]
struct NodeRow {
    pub id: Uuid,
    pub name: String,
    pub hostname: String,
    pub os: String,
    pub os_version: Option<String>,
    pub ae_version: Option<String>,
    pub agent_version: String,
    pub cpu_cores: i32,
    pub memory_bytes: i64,
    pub tags: Vec<String>,
    pub max_leases: i32,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_changed_at: DateTime<Utc>,
    pub drain_deadline: Option<DateTime<Utc>>,
    pub registered_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub running_leases: i64,
    pub ffmpeg_version: Option<String>,
    pub ffprobe_version: Option<String>,
    pub encode_only: bool,
}

const NODE_SELECT: &str = "SELECT n.id, n.name, n.hostname, n.os, n.os_version, n.ae_version, n.agent_version,
        n.cpu_cores, n.memory_bytes, n.tags, n.max_leases, n.state, n.state_reason, n.state_changed_at,
        n.drain_deadline, n.registered_at, l.last_seen_at, n.ffmpeg_version, n.ffprobe_version, n.encode_only,
        (SELECT count(*) FROM render.frame_jobs f WHERE f.lease_node_id = n.id AND f.state = 'leased') AS running_leases
    FROM render.nodes n LEFT JOIN render.node_liveness l ON l.node_id = n.id";

/// What a node says about itself at registration.
pub(crate) struct Registration<'a> {
    pub name: &'a str,
    pub hostname: &'a str,
    pub os: &'a str,
    pub os_version: Option<&'a str>,
    pub ae_version: Option<&'a str>,
    pub agent_version: &'a str,
    pub cpu_cores: i32,
    pub memory_bytes: i64,
    pub tags: &'a [String],
    pub max_leases: i32,
    pub capabilities: &'a NodeCapabilities,
}

/// Creates the node or refreshes its facts (same name = same node). An offline node comes back
/// online; disabled and quarantined nodes stay so until ops act.
pub(crate) async fn upsert(connection: &mut PgConnection, registration: &Registration<'_>) -> Result<NodeId, DbError> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO render.nodes (name, hostname, os, os_version, ae_version, agent_version, cpu_cores, memory_bytes, tags,
                                   max_leases, ffmpeg_version, ffprobe_version, encode_only)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (name) DO UPDATE SET
             hostname = EXCLUDED.hostname, os = EXCLUDED.os, os_version = EXCLUDED.os_version,
             ae_version = EXCLUDED.ae_version, agent_version = EXCLUDED.agent_version,
             cpu_cores = EXCLUDED.cpu_cores, memory_bytes = EXCLUDED.memory_bytes, tags = EXCLUDED.tags,
             max_leases = EXCLUDED.max_leases, ffmpeg_version = EXCLUDED.ffmpeg_version,
             ffprobe_version = EXCLUDED.ffprobe_version, encode_only = EXCLUDED.encode_only,
             state = CASE WHEN render.nodes.state = 'offline' THEN 'online' ELSE render.nodes.state END,
             state_changed_at = CASE WHEN render.nodes.state = 'offline' THEN now() ELSE render.nodes.state_changed_at END
         RETURNING id",
    )
    .bind(registration.name)
    .bind(registration.hostname)
    .bind(registration.os)
    .bind(registration.os_version)
    .bind(registration.ae_version)
    .bind(registration.agent_version)
    .bind(registration.cpu_cores)
    .bind(registration.memory_bytes)
    .bind(registration.tags)
    .bind(registration.max_leases)
    .bind(registration.capabilities.encoder.as_ref().map(|encoder| encoder.ffmpeg.as_str()))
    .bind(registration.capabilities.encoder.as_ref().map(|encoder| encoder.ffprobe.as_str()))
    .bind(registration.capabilities.encode_only)
    .fetch_one(&mut *connection)
    .await?;
    sqlx::query(
        "INSERT INTO render.node_liveness (node_id) VALUES ($1)
         ON CONFLICT (node_id) DO UPDATE SET last_seen_at = now()",
    )
    .bind(id)
    .execute(connection)
    .await?;
    Ok(NodeId::from_uuid(id))
}

impl TryFrom<NodeRow> for NodeView {
    type Error = DbError;

    fn try_from(row: NodeRow) -> Result<Self, DbError> {
        Ok(NodeView {
            id: NodeId::from_uuid(row.id),
            os: super::stored(OperatingSystem::parse(&row.os), "operating system", &row.os)?,
            state: super::stored(NodeState::parse(&row.state), "node state", &row.state)?,
            name: row.name,
            hostname: row.hostname,
            os_version: row.os_version,
            ae_version: row.ae_version,
            agent_version: row.agent_version,
            cpu_cores: row.cpu_cores,
            memory_bytes: row.memory_bytes,
            tags: row.tags,
            max_leases: row.max_leases,
            state_reason: row.state_reason,
            state_changed_at: row.state_changed_at,
            drain_deadline: row.drain_deadline,
            registered_at: row.registered_at,
            last_seen_at: row.last_seen_at,
            running_leases: row.running_leases,
            capabilities: capabilities(row.ffmpeg_version, row.ffprobe_version, row.encode_only),
        })
    }
}

/// One node.
pub(crate) async fn get(connection: &mut PgConnection, id: NodeId) -> Result<Option<NodeView>, DbError> {
    let row = sqlx::query_as::<_, NodeRow>(&format!("{NODE_SELECT} WHERE n.id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(connection)
        .await?;
    row.map(NodeView::try_from).transpose()
}

/// Nodes by name, optionally filtered by state, keyset-paginated on name.
pub(crate) async fn list(
    connection: &mut PgConnection,
    states: &[NodeState],
    after_name: Option<&str>,
    limit: i64,
) -> Result<Vec<NodeView>, DbError> {
    let states: Vec<&str> = states.iter().map(NodeState::as_str).collect();
    let rows = sqlx::query_as::<_, NodeRow>(&format!(
        "{NODE_SELECT} WHERE (cardinality($1::text[]) = 0 OR n.state = ANY($1)) AND ($2::text IS NULL OR n.name > $2)
         ORDER BY n.name LIMIT $3"
    ))
    .bind(states)
    .bind(after_name)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(NodeView::try_from).collect()
}

fn capabilities(ffmpeg: Option<String>, ffprobe: Option<String>, encode_only: bool) -> NodeCapabilities {
    NodeCapabilities {
        encoder: ffmpeg
            .zip(ffprobe)
            .map(|(ffmpeg, ffprobe)| EncoderVersions { ffmpeg, ffprobe }),
        encode_only,
    }
}

/// The dispatch-relevant facts of every node (refreshed into memory periodically).
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct NodeFactsRow {
    pub id: Uuid,
    pub os: String,
    pub ae_version: Option<String>,
    pub tags: Vec<String>,
    pub state: String,
    pub drain_deadline: Option<DateTime<Utc>>,
    pub ffmpeg_version: Option<String>,
    pub ffprobe_version: Option<String>,
    pub encode_only: bool,
}

impl NodeFactsRow {
    /// What the node takes besides rendering.
    pub fn capabilities(&self) -> NodeCapabilities {
        capabilities(
            self.ffmpeg_version.clone(),
            self.ffprobe_version.clone(),
            self.encode_only,
        )
    }
}

const FACTS_SELECT: &str = "SELECT id, os, ae_version, tags, state, drain_deadline, ffmpeg_version, ffprobe_version, encode_only FROM render.nodes";

/// Records what a node reported it can do at an agent's start.
pub(crate) async fn set_capabilities(
    connection: &mut PgConnection,
    id: NodeId,
    capabilities: &NodeCapabilities,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE render.nodes SET ffmpeg_version = $2, ffprobe_version = $3, encode_only = $4
         WHERE id = $1 AND (ffmpeg_version, ffprobe_version, encode_only) IS DISTINCT FROM ($2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(capabilities.encoder.as_ref().map(|encoder| encoder.ffmpeg.as_str()))
    .bind(capabilities.encoder.as_ref().map(|encoder| encoder.ffprobe.as_str()))
    .bind(capabilities.encode_only)
    .execute(connection)
    .await?;
    Ok(())
}

/// Facts of all nodes.
pub(crate) async fn all_facts(connection: &mut PgConnection) -> Result<Vec<NodeFactsRow>, DbError> {
    let rows = sqlx::query_as::<_, NodeFactsRow>(FACTS_SELECT)
        .fetch_all(connection)
        .await?;
    Ok(rows)
}

/// Facts of one node.
pub(crate) async fn facts(connection: &mut PgConnection, id: NodeId) -> Result<Option<NodeFactsRow>, DbError> {
    let row = sqlx::query_as::<_, NodeFactsRow>(&format!("{FACTS_SELECT} WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(connection)
        .await?;
    Ok(row)
}

/// Moves a node to `to` if it is currently in one of `from`; returns whether it moved.
pub(crate) async fn transition(
    connection: &mut PgConnection,
    id: NodeId,
    from: &[NodeState],
    to: NodeState,
    reason: Option<&str>,
    drain_deadline: Option<DateTime<Utc>>,
) -> Result<bool, DbError> {
    let from: Vec<&str> = from.iter().map(NodeState::as_str).collect();
    let moved = sqlx::query(
        "UPDATE render.nodes SET state = $3, state_reason = $4, drain_deadline = $5, state_changed_at = now()
         WHERE id = $1 AND state = ANY($2)",
    )
    .bind(id.as_uuid())
    .bind(from)
    .bind(to.as_str())
    .bind(reason)
    .bind(drain_deadline)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Whether a node exists.
pub(crate) async fn exists(connection: &mut PgConnection, id: NodeId) -> Result<bool, DbError> {
    let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM render.nodes WHERE id = $1)")
        .bind(id.as_uuid())
        .fetch_one(connection)
        .await?;
    Ok(found)
}

/// Records heartbeats of many nodes in one statement.
pub(crate) async fn touch_liveness(
    connection: &mut PgConnection,
    seen: &[(NodeId, DateTime<Utc>)],
) -> Result<(), DbError> {
    let ids: Vec<Uuid> = seen.iter().map(|(id, _)| id.as_uuid()).collect();
    let times: Vec<DateTime<Utc>> = seen.iter().map(|(_, at)| *at).collect();
    sqlx::query(
        "INSERT INTO render.node_liveness (node_id, last_seen_at)
         SELECT i.node_id, i.seen FROM unnest($1::uuid[], $2::timestamptz[]) AS i(node_id, seen)
         JOIN render.nodes n ON n.id = i.node_id
         ON CONFLICT (node_id) DO UPDATE SET last_seen_at = greatest(render.node_liveness.last_seen_at, EXCLUDED.last_seen_at)",
    )
    .bind(ids)
    .bind(times)
    .execute(connection)
    .await?;
    Ok(())
}

/// Offline nodes heard after they were marked offline go back online; returns them.
pub(crate) async fn revive_heard(
    connection: &mut PgConnection,
    seen: &[(NodeId, DateTime<Utc>)],
) -> Result<Vec<NodeId>, DbError> {
    let ids: Vec<Uuid> = seen.iter().map(|(id, _)| id.as_uuid()).collect();
    let times: Vec<DateTime<Utc>> = seen.iter().map(|(_, at)| *at).collect();
    let back: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE render.nodes n SET state = 'online', state_reason = NULL, state_changed_at = now()
         FROM unnest($1::uuid[], $2::timestamptz[]) AS i(node_id, seen)
         WHERE n.id = i.node_id AND n.state = 'offline' AND i.seen > n.state_changed_at
         RETURNING n.id",
    )
    .bind(ids)
    .bind(times)
    .fetch_all(connection)
    .await?;
    Ok(back.into_iter().map(NodeId::from_uuid).collect())
}

/// Stamps a reaper pass on the beacon; returns for how many seconds the control plane has been
/// able to hear nodes. A pass that finds the previous one (of any replica) older than
/// `outage_gap_seconds` starts a new hearing period: there was an outage.
pub(crate) async fn beacon_pass(connection: &mut PgConnection, outage_gap_seconds: f64) -> Result<f64, DbError> {
    let heard_for: f64 = sqlx::query_scalar(
        "INSERT INTO render.control_plane_beacon AS b (singleton) VALUES (true)
         ON CONFLICT (singleton) DO UPDATE SET
             hearing_since = CASE WHEN b.last_pass_at < now() - make_interval(secs => $1) THEN now()
                                  ELSE b.hearing_since END,
             last_pass_at = greatest(b.last_pass_at, now())
         RETURNING extract(epoch FROM now() - hearing_since)::float8",
    )
    .bind(outage_gap_seconds)
    .fetch_one(connection)
    .await?;
    Ok(heard_for)
}

/// Marks nodes silent for longer than `offline_after_seconds` offline; returns them. A node
/// whose state changed within that time (it just came back or registered) is not silent, even
/// if its liveness has not been flushed yet: the row lock makes "came back" and "reaped"
/// unable to interleave, and the re-checked state_changed_at decides.
pub(crate) async fn mark_silent_offline(
    connection: &mut PgConnection,
    offline_after_seconds: f64,
) -> Result<Vec<NodeId>, DbError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE render.nodes n
         SET state = 'offline', state_reason = 'no heartbeat since ' || to_char(l.last_seen_at, 'YYYY-MM-DD HH24:MI:SS TZ'),
             drain_deadline = NULL, state_changed_at = now()
         FROM render.node_liveness l
         WHERE l.node_id = n.id AND n.state IN ('online', 'draining', 'drained')
           AND l.last_seen_at < now() - make_interval(secs => $1)
           AND n.state_changed_at < now() - make_interval(secs => $1)
         RETURNING n.id",
    )
    .bind(offline_after_seconds)
    .fetch_all(connection)
    .await?;
    Ok(ids.into_iter().map(NodeId::from_uuid).collect())
}

/// Draining nodes with no running lease become drained; returns them.
pub(crate) async fn finish_idle_drains(connection: &mut PgConnection) -> Result<Vec<NodeId>, DbError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE render.nodes n SET state = 'drained', drain_deadline = NULL, state_changed_at = now()
         WHERE n.state = 'draining'
           AND NOT EXISTS (SELECT 1 FROM render.frame_jobs f WHERE f.lease_node_id = n.id AND f.state = 'leased')
         RETURNING n.id",
    )
    .fetch_all(connection)
    .await?;
    Ok(ids.into_iter().map(NodeId::from_uuid).collect())
}

/// Draining nodes whose deadline passed.
pub(crate) async fn drains_past_deadline(connection: &mut PgConnection) -> Result<Vec<NodeId>, DbError> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM render.nodes WHERE state = 'draining' AND drain_deadline < now()")
            .fetch_all(connection)
            .await?;
    Ok(ids.into_iter().map(NodeId::from_uuid).collect())
}

/// Node counts per state.
pub(crate) async fn count_by_state(connection: &mut PgConnection) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query_as("SELECT state, count(*) FROM render.nodes GROUP BY state ORDER BY state")
        .fetch_all(connection)
        .await?;
    Ok(rows)
}

/// Applies a cache inventory change (or replaces the inventory when `full_sync`).
pub(crate) async fn apply_cache_inventory(
    connection: &mut PgConnection,
    node_id: NodeId,
    full_sync: bool,
    upserted: &[CacheEntryView],
    removed: &[ContentHash],
) -> Result<(), DbError> {
    let hashes: Vec<Vec<u8>> = upserted.iter().map(|entry| entry.hash.as_bytes().to_vec()).collect();
    if full_sync {
        sqlx::query(
            "DELETE FROM render.node_template_cache WHERE node_id = $1 AND NOT (content_hash = ANY($2::bytea[]))",
        )
        .bind(node_id.as_uuid())
        .bind(&hashes)
        .execute(&mut *connection)
        .await?;
    }
    if !removed.is_empty() {
        let removed: Vec<Vec<u8>> = removed.iter().map(|hash| hash.as_bytes().to_vec()).collect();
        sqlx::query("DELETE FROM render.node_template_cache WHERE node_id = $1 AND content_hash = ANY($2::bytea[])")
            .bind(node_id.as_uuid())
            .bind(removed)
            .execute(&mut *connection)
            .await?;
    }
    if !upserted.is_empty() {
        sqlx::query(
            "INSERT INTO render.node_template_cache (node_id, content_hash, template_id, template_version, size_bytes, hits, last_used_at)
             SELECT $1, * FROM unnest($2::bytea[], $3::uuid[], $4::int4[], $5::int8[], $6::int8[], $7::timestamptz[])
             ON CONFLICT (node_id, content_hash) DO UPDATE SET
                 template_id = EXCLUDED.template_id, template_version = EXCLUDED.template_version,
                 size_bytes = EXCLUDED.size_bytes, hits = EXCLUDED.hits, last_used_at = EXCLUDED.last_used_at",
        )
        .bind(node_id.as_uuid())
        .bind(hashes)
        .bind(upserted.iter().map(|entry| entry.template_id.map(|id| id.as_uuid())).collect::<Vec<_>>())
        .bind(upserted.iter().map(|entry| entry.template_version).collect::<Vec<_>>())
        .bind(upserted.iter().map(|entry| entry.size_bytes).collect::<Vec<_>>())
        .bind(upserted.iter().map(|entry| entry.hits).collect::<Vec<_>>())
        .bind(upserted.iter().map(|entry| entry.last_used_at).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    }
    Ok(())
}

/// The template hashes a node holds.
pub(crate) async fn cached_hashes(connection: &mut PgConnection, node_id: NodeId) -> Result<Vec<Vec<u8>>, DbError> {
    let hashes = sqlx::query_scalar("SELECT content_hash FROM render.node_template_cache WHERE node_id = $1")
        .bind(node_id.as_uuid())
        .fetch_all(connection)
        .await?;
    Ok(hashes)
}

/// A node's cache inventory rows.
#[derive(Debug, sqlx::FromRow)]
struct CacheViewRow {
    pub content_hash: Vec<u8>,
    pub template_id: Option<Uuid>,
    pub template_version: Option<i32>,
    pub size_bytes: i64,
    pub hits: i64,
    pub last_used_at: DateTime<Utc>,
}

/// A node's cache, most recently used first.
pub(crate) async fn cache_view(connection: &mut PgConnection, node_id: NodeId) -> Result<Vec<CacheEntryView>, DbError> {
    let rows = sqlx::query_as::<_, CacheViewRow>(
        "SELECT content_hash, template_id, template_version, size_bytes, hits, last_used_at
         FROM render.node_template_cache WHERE node_id = $1 ORDER BY last_used_at DESC",
    )
    .bind(node_id.as_uuid())
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CacheEntryView {
                hash: ContentHash::from_slice(&row.content_hash, "content_hash").map_err(super::corrupt)?,
                template_id: row.template_id.map(TemplateId::from_uuid),
                template_version: row.template_version,
                size_bytes: row.size_bytes,
                hits: row.hits,
                last_used_at: row.last_used_at,
            })
        })
        .collect()
}
