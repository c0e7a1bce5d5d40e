-- 11_render_nodes.sql: the render farm's machines, their credentials, liveness, template caches
-- and health samples. Owned by the Render Orchestrator (role flatrender_render).
--
-- Liveness is kept apart from the node row on purpose: heartbeats from thousands of nodes only
-- touch the narrow render.node_liveness table (coalesced, one multi-row UPDATE per flush), while
-- render.nodes changes only when a node registers or changes state.

CREATE TABLE render.nodes (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text NOT NULL UNIQUE
                         CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    hostname             text NOT NULL CHECK (length(hostname) BETWEEN 1 AND 255),
    os                   text NOT NULL CHECK (os IN ('windows', 'macos', 'linux')),
    os_version           text CHECK (length(os_version) <= 128),
    ae_version           text CHECK (length(ae_version) <= 64),
    agent_version        text NOT NULL CHECK (length(agent_version) BETWEEN 1 AND 64),
    cpu_cores            integer NOT NULL CHECK (cpu_cores > 0),
    memory_bytes         bigint NOT NULL CHECK (memory_bytes >= 0),
    tags                 text[] NOT NULL DEFAULT '{}',
    max_leases           integer NOT NULL DEFAULT 1 CHECK (max_leases BETWEEN 1 AND 64),
    state                text NOT NULL DEFAULT 'online'
                         CHECK (state IN ('online', 'draining', 'drained', 'offline', 'disabled', 'quarantined')),
    state_reason         text CHECK (length(state_reason) <= 1000),
    state_changed_at     timestamptz NOT NULL DEFAULT now(),
    drain_deadline       timestamptz,
    registered_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (drain_deadline IS NULL OR state = 'draining')
);
COMMENT ON TABLE render.nodes IS 'After Effects render machines running the FlatRender node agent.';
COMMENT ON COLUMN render.nodes.state IS 'online: takes work; draining: finishes running work, takes none; drained: idle after draining; offline: missed heartbeats; disabled: by ops; quarantined: crash loop, back by ops or a successful probe.';
COMMENT ON COLUMN render.nodes.drain_deadline IS 'When set, work still running at this time is requeued.';
CREATE INDEX nodes_state_idx ON render.nodes (state);

CREATE TABLE render.node_liveness (
    node_id       uuid PRIMARY KEY REFERENCES render.nodes (id) ON DELETE CASCADE,
    last_seen_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);
COMMENT ON TABLE render.node_liveness IS 'Last heartbeat per node, written in coalesced batches; kept narrow so frequent updates stay HOT.';
CREATE INDEX node_liveness_last_seen_idx ON render.node_liveness (last_seen_at);

-- Bearer tokens for every caller of the control plane. Only a hash is stored.
CREATE TABLE render.api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind          text NOT NULL CHECK (kind IN ('join', 'node', 'service', 'admin')),
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    tenant_ids    uuid[],
    node_id       uuid REFERENCES render.nodes (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK ((kind = 'node') = (node_id IS NOT NULL)),
    CHECK (tenant_ids IS NULL OR kind = 'service')
);
COMMENT ON TABLE render.api_tokens IS 'Bearer tokens: join (exchanged for a node token at registration), node, service (backends), admin (ops). token_hash is BLAKE3 of the secret.';
COMMENT ON COLUMN render.api_tokens.tenant_ids IS 'Soft references to identity.tenants(id): the tenants a service token may act for; NULL means all tenants.';

-- Which templates each node holds in its local LRU cache (dispatch prefers these nodes).
CREATE TABLE render.node_template_cache (
    node_id           uuid NOT NULL REFERENCES render.nodes (id) ON DELETE CASCADE,
    content_hash      bytea NOT NULL CHECK (octet_length(content_hash) = 32),
    template_id       uuid,
    template_version  integer CHECK (template_version > 0),
    size_bytes        bigint NOT NULL CHECK (size_bytes >= 0),
    hits              bigint NOT NULL DEFAULT 0 CHECK (hits >= 0),
    cached_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, content_hash)
);
COMMENT ON TABLE render.node_template_cache IS 'Inventory of each node''s local AEP template cache (LRU, BLAKE3-addressed), reported by the agent.';
COMMENT ON COLUMN render.node_template_cache.template_id IS 'Soft reference to content.templates(id).';
CREATE INDEX node_template_cache_hash_idx ON render.node_template_cache (content_hash);

-- Health samples, partitioned by month on recorded_at. No FK to render.nodes: the table is
-- append-only and high-volume, and samples must outlive a deleted node for post-mortems.
CREATE TABLE render.node_health_logs (
    node_id                 uuid NOT NULL,
    recorded_at             timestamptz NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now(),
    cpu_percent             real CHECK (cpu_percent BETWEEN 0 AND 100),
    memory_used_bytes       bigint CHECK (memory_used_bytes >= 0),
    memory_total_bytes      bigint CHECK (memory_total_bytes >= 0),
    swap_used_bytes         bigint CHECK (swap_used_bytes >= 0),
    swap_total_bytes        bigint CHECK (swap_total_bytes >= 0),
    cache_disk_free_bytes   bigint CHECK (cache_disk_free_bytes >= 0),
    output_disk_free_bytes  bigint CHECK (output_disk_free_bytes >= 0),
    ae_process_count        integer CHECK (ae_process_count >= 0),
    ae_memory_bytes         bigint CHECK (ae_memory_bytes >= 0),
    load_average_1m         real CHECK (load_average_1m >= 0),
    uptime_seconds          bigint CHECK (uptime_seconds >= 0),
    aerender_running        boolean
) PARTITION BY RANGE (recorded_at);
COMMENT ON TABLE render.node_health_logs IS 'Per-node health samples (sysinfo), monthly partitions named node_health_logs_yYYYYmMM plus a default partition; see public.ensure_monthly_partitions.';
COMMENT ON COLUMN render.node_health_logs.node_id IS 'Reference to render.nodes(id), deliberately without FK (append-only, outlives deleted nodes).';
CREATE INDEX node_health_logs_node_time_idx ON render.node_health_logs (node_id, recorded_at DESC);
SELECT public.ensure_monthly_partitions('render.node_health_logs', DATE '2026-01-01', 1);
