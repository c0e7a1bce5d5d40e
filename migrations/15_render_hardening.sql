-- 15_render_hardening.sql: what the render schema needed after the farm was driven from outside
-- (issue 9). Additive only.
--
-- * render.control_plane_beacon: when the control plane (all replicas together) last became
--   able to hear nodes. The reaper counts a node's silence, and a lease's expiry, from the later
--   of the node's last report and that moment, so nobody's lease expires because the control
--   plane or its database was down (docs/failure-semantics.md, "outage grace").
-- * render.render_jobs.request_hash: BLAKE3 of the canonical submission, so reusing an
--   idempotency key with a different request is a conflict, not a silent return of the first job.

CREATE TABLE render.control_plane_beacon (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    hearing_since timestamptz NOT NULL DEFAULT now(),
    last_pass_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE render.control_plane_beacon IS 'One row: every reaper pass of every replica stamps last_pass_at; a pass that finds it older than the outage gap starts a new hearing_since.';
COMMENT ON COLUMN render.control_plane_beacon.hearing_since IS 'Since when some control plane has been continuously able to hear nodes (reach the database and reap).';
COMMENT ON COLUMN render.control_plane_beacon.last_pass_at IS 'The last reaper pass of any replica.';

ALTER TABLE render.render_jobs
    ADD COLUMN request_hash bytea CHECK (request_hash IS NULL OR octet_length(request_hash) = 32);
COMMENT ON COLUMN render.render_jobs.request_hash IS 'BLAKE3 of the canonical submission; a resubmission under the same idempotency key must match it.';

-- Requirement-aware claims (docs/dispatch.md): a tenant enters the claim's ranking only when it
-- has an active job this node may run with a pending chunk, found through these two indexes
-- instead of the tenant's whole job history or a job's finished chunks.
CREATE INDEX render_jobs_tenant_active_idx ON render.render_jobs (tenant_id)
    WHERE status IN ('queued', 'rendering');
CREATE INDEX frame_jobs_pending_job_idx ON render.frame_jobs (job_id) WHERE state = 'pending';
