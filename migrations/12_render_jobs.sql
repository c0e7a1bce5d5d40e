-- 12_render_jobs.sql: render jobs, their frame chunks (the unit of dispatch), leases with fencing
-- tokens, per-tenant quotas, crashes, repairs, snapshots and exports. Owned by the Render
-- Orchestrator (role flatrender_render).
--
-- Dispatch model (docs/dispatch.md): a job is split into frame chunks at submit, in the same
-- transaction. A node claims pending chunks with FOR UPDATE SKIP LOCKED; each claim draws a new
-- fencing token from render.lease_token_seq, and every later report must present it, so a node
-- that lost its lease (expired, requeued, cancelled) changes nothing.

CREATE TABLE render.tenant_quotas (
    tenant_id         uuid PRIMARY KEY,
    guaranteed_leases integer NOT NULL DEFAULT 1 CHECK (guaranteed_leases >= 0),
    burst_leases      integer CHECK (burst_leases IS NULL OR burst_leases >= guaranteed_leases),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE render.tenant_quotas IS 'Fair share per tenant: guaranteed concurrent leases, and a burst cap (NULL: no cap). Tenants without a row get the control plane''s configured defaults.';
COMMENT ON COLUMN render.tenant_quotas.tenant_id IS 'Soft reference to identity.tenants(id).';

CREATE TABLE render.render_jobs (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL,
    user_id              uuid NOT NULL,
    saved_project_id     uuid,
    idempotency_key      text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    kind                 text NOT NULL DEFAULT 'export' CHECK (kind IN ('export', 'preview', 'snapshot')),
    priority             smallint NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    template_id          uuid NOT NULL,
    template_version     integer NOT NULL CHECK (template_version > 0),
    template_url         text NOT NULL CHECK (template_url ~ '^https?://' AND length(template_url) <= 2048),
    template_hash        bytea NOT NULL CHECK (octet_length(template_hash) = 32),
    template_size_bytes  bigint NOT NULL CHECK (template_size_bytes > 0),
    composition          text NOT NULL CHECK (length(composition) BETWEEN 1 AND 255),
    frame_start          integer NOT NULL CHECK (frame_start >= 0),
    frame_end            integer NOT NULL,
    fps                  numeric(8, 3) NOT NULL CHECK (fps > 0 AND fps <= 240),
    output_settings      jsonb NOT NULL DEFAULT '{}',
    music_url            text CHECK (music_url ~ '^https?://'),
    music_volume         numeric(4, 3) CHECK (music_volume BETWEEN 0 AND 1),
    sfx_url              text CHECK (sfx_url ~ '^https?://'),
    sfx_volume           numeric(4, 3) CHECK (sfx_volume BETWEEN 0 AND 1),
    voiceover_url        text CHECK (voiceover_url ~ '^https?://'),
    voiceover_volume     numeric(4, 3) CHECK (voiceover_volume BETWEEN 0 AND 1),
    has_voiceover        boolean NOT NULL DEFAULT false,
    required_os          text CHECK (required_os IN ('windows', 'macos', 'linux')),
    required_ae_version  text CHECK (length(required_ae_version) <= 64),
    required_tags        text[] NOT NULL DEFAULT '{}',
    chunk_size           integer NOT NULL CHECK (chunk_size > 0),
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 20),
    status               text NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'rendering', 'rendered', 'encoding', 'completed', 'failed', 'cancelled')),
    frames_total         integer NOT NULL CHECK (frames_total > 0),
    chunks_total         integer NOT NULL CHECK (chunks_total > 0),
    chunks_completed     integer NOT NULL DEFAULT 0 CHECK (chunks_completed BETWEEN 0 AND chunks_total),
    failure_reason       text CHECK (length(failure_reason) <= 4000),
    created_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    rendered_at          timestamptz,
    finished_at          timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (frame_end >= frame_start),
    CHECK (frames_total = frame_end - frame_start + 1),
    CHECK (has_voiceover = (voiceover_url IS NOT NULL)),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);
COMMENT ON COLUMN render.render_jobs.tenant_id IS 'Soft reference to identity.tenants(id).';
COMMENT ON COLUMN render.render_jobs.user_id IS 'Soft reference to identity.users(id).';
COMMENT ON COLUMN render.render_jobs.saved_project_id IS 'Soft reference to studio.saved_projects(id).';
COMMENT ON COLUMN render.render_jobs.template_id IS 'Soft reference to content.templates(id).';
COMMENT ON COLUMN render.render_jobs.template_hash IS 'BLAKE3 of the template file (AEP or zip bundle): the node cache key.';
COMMENT ON COLUMN render.render_jobs.idempotency_key IS 'Client-chosen key: resubmitting with the same tenant and key returns the existing job.';
COMMENT ON COLUMN render.render_jobs.priority IS '0..100, higher first; previews and snapshots are submitted above batch exports.';
CREATE UNIQUE INDEX render_jobs_idempotency_idx ON render.render_jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX render_jobs_tenant_created_idx ON render.render_jobs (tenant_id, created_at DESC, id);
CREATE INDEX render_jobs_user_created_idx ON render.render_jobs (tenant_id, user_id, created_at DESC);
CREATE INDEX render_jobs_active_idx ON render.render_jobs (status)
    WHERE status IN ('queued', 'rendering', 'rendered', 'encoding');

CREATE SEQUENCE render.lease_token_seq AS bigint;
COMMENT ON SEQUENCE render.lease_token_seq IS 'Fencing tokens: every lease draws a new, strictly increasing value.';

CREATE TABLE render.frame_jobs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id             uuid NOT NULL REFERENCES render.render_jobs (id) ON DELETE CASCADE,
    tenant_id          uuid NOT NULL,
    chunk_index        integer NOT NULL CHECK (chunk_index >= 0),
    frame_start        integer NOT NULL CHECK (frame_start >= 0),
    frame_end          integer NOT NULL,
    priority           smallint NOT NULL CHECK (priority BETWEEN 0 AND 100),
    queued_at          timestamptz NOT NULL,
    template_hash      bytea NOT NULL CHECK (octet_length(template_hash) = 32),
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'leased', 'completed', 'failed', 'cancelled')),
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    lease_token        bigint,
    lease_node_id      uuid REFERENCES render.nodes (id) ON DELETE SET NULL,
    leased_at          timestamptz,
    lease_expires_at   timestamptz,
    frames_done        integer NOT NULL DEFAULT 0 CHECK (frames_done >= 0),
    frames_written     integer[] NOT NULL DEFAULT '{}',
    outputs            jsonb NOT NULL DEFAULT '[]',
    last_error_class   text CHECK (length(last_error_class) <= 64),
    last_error         text CHECK (length(last_error) <= 4000),
    render_seconds     double precision CHECK (render_seconds >= 0),
    completed_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, chunk_index),
    CHECK (frame_end >= frame_start),
    CHECK (frames_done <= frame_end - frame_start + 1),
    CHECK ((state = 'leased') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state <> 'leased' OR lease_node_id IS NOT NULL)
);
COMMENT ON TABLE render.frame_jobs IS 'Frame chunks of a render job: the unit a node leases. tenant_id, priority, queued_at and template_hash are copied from the job so the claim query reads one index.';
COMMENT ON COLUMN render.frame_jobs.tenant_id IS 'Soft reference to identity.tenants(id) (copied from render_jobs).';
COMMENT ON COLUMN render.frame_jobs.lease_token IS 'Fencing token of the live lease; reports must present it.';
COMMENT ON COLUMN render.frame_jobs.frames_written IS 'Frames already on disk and verified, kept across retries so only missing frames are rendered again.';
-- The claim query walks this index per tenant, best priority first, FIFO within it.
CREATE INDEX frame_jobs_pending_idx ON render.frame_jobs (tenant_id, priority DESC, queued_at, job_id, chunk_index)
    WHERE state = 'pending';
-- Cache-affinity claims look pending chunks up by template.
CREATE INDEX frame_jobs_pending_template_idx ON render.frame_jobs (template_hash, priority DESC, queued_at)
    WHERE state = 'pending';
CREATE INDEX frame_jobs_lease_expiry_idx ON render.frame_jobs (lease_expires_at) WHERE state = 'leased';
CREATE INDEX frame_jobs_leased_node_idx ON render.frame_jobs (lease_node_id) WHERE state = 'leased';
CREATE INDEX frame_jobs_leased_tenant_idx ON render.frame_jobs (tenant_id) WHERE state = 'leased';

-- Per-job blocklist: nodes a job's chunks failed on are not given that job again.
CREATE TABLE render.job_bad_nodes (
    job_id         uuid NOT NULL REFERENCES render.render_jobs (id) ON DELETE CASCADE,
    node_id        uuid NOT NULL REFERENCES render.nodes (id) ON DELETE CASCADE,
    failures       integer NOT NULL DEFAULT 1 CHECK (failures > 0),
    last_error_class text,
    added_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, node_id)
);

CREATE TABLE render.node_crashes (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    node_id          uuid NOT NULL REFERENCES render.nodes (id) ON DELETE CASCADE,
    job_id           uuid REFERENCES render.render_jobs (id) ON DELETE SET NULL,
    frame_job_id     uuid REFERENCES render.frame_jobs (id) ON DELETE SET NULL,
    tenant_id        uuid,
    crash_class      text NOT NULL CHECK (crash_class IN (
                         'crash', 'hang', 'template_error', 'license', 'launch_failure',
                         'ae_busy', 'output_write', 'cache_error', 'agent_lost', 'unknown')),
    error_class      text CHECK (length(error_class) <= 64),
    exit_code        integer,
    log_tail         text CHECK (length(log_tail) <= 65536),
    recovery_action  text NOT NULL CHECK (recovery_action IN (
                         'retry_here', 'retry_elsewhere', 'fail_job', 'back_off', 'quarantine', 'requeue')),
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    recovered_at     timestamptz,
    CHECK (recovered_at IS NULL OR recovered_at >= occurred_at)
);
COMMENT ON TABLE render.node_crashes IS 'After Effects crashes, hangs and other render failures reported by agents (or seen by the control plane), with the recovery taken.';
COMMENT ON COLUMN render.node_crashes.tenant_id IS 'Soft reference to identity.tenants(id).';
CREATE INDEX node_crashes_node_time_idx ON render.node_crashes (node_id, occurred_at DESC);
CREATE INDEX node_crashes_class_time_idx ON render.node_crashes (crash_class, occurred_at DESC);

CREATE TABLE render.frame_repair_jobs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id         uuid NOT NULL REFERENCES render.render_jobs (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL,
    frame_start    integer NOT NULL CHECK (frame_start >= 0),
    frame_end      integer NOT NULL,
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'queued', 'completed', 'failed')),
    frame_job_id   uuid REFERENCES render.frame_jobs (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz,
    CHECK (frame_end >= frame_start)
);
COMMENT ON TABLE render.frame_repair_jobs IS 'Re-renders of frames found missing or damaged after their chunk completed.';
COMMENT ON COLUMN render.frame_repair_jobs.tenant_id IS 'Soft reference to identity.tenants(id).';
CREATE INDEX frame_repair_jobs_job_idx ON render.frame_repair_jobs (job_id);

CREATE TABLE render.snapshots (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL,
    job_id         uuid REFERENCES render.render_jobs (id) ON DELETE SET NULL,
    template_id    uuid NOT NULL,
    scene_id       uuid,
    frame          integer NOT NULL CHECK (frame >= 0),
    cache_key      text NOT NULL UNIQUE CHECK (length(cache_key) BETWEEN 1 AND 256),
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    image_url      text CHECK (image_url ~ '^https?://'),
    width          integer CHECK (width > 0),
    height         integer CHECK (height > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz
);
COMMENT ON TABLE render.snapshots IS 'Single-frame scene previews; cache_key (hash of template version + scene inputs + frame) deduplicates identical requests.';
COMMENT ON COLUMN render.snapshots.tenant_id IS 'Soft reference to identity.tenants(id).';
COMMENT ON COLUMN render.snapshots.template_id IS 'Soft reference to content.templates(id).';
COMMENT ON COLUMN render.snapshots.scene_id IS 'Soft reference to content.scenes(id).';
CREATE INDEX snapshots_tenant_idx ON render.snapshots (tenant_id, created_at DESC);

CREATE TABLE render.exports (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL,
    job_id         uuid NOT NULL REFERENCES render.render_jobs (id) ON DELETE CASCADE,
    file_id        uuid,
    format         text NOT NULL CHECK (format IN ('mp4', 'mov', 'webm', 'gif', 'png_sequence')),
    width          integer CHECK (width > 0),
    height         integer CHECK (height > 0),
    size_bytes     bigint CHECK (size_bytes >= 0),
    checksum       bytea CHECK (octet_length(checksum) = 32),
    location       text NOT NULL CHECK (length(location) BETWEEN 1 AND 2048),
    created_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE render.exports IS 'Finished outputs of render jobs.';
COMMENT ON COLUMN render.exports.tenant_id IS 'Soft reference to identity.tenants(id).';
COMMENT ON COLUMN render.exports.file_id IS 'Soft reference to file_mgr.files(id) once the file service has taken the export.';
CREATE INDEX exports_job_idx ON render.exports (job_id);
