-- 18_dispatch_speed.sql: indexes and table settings for dispatch at the speed of the database
-- (issue 13, docs/dispatch.md "Completions" and "The queue table").
--
-- * Completions no longer update the job row per chunk; the statement that advances a job
--   (advance.sql) probes its pending chunks (frame_jobs_pending_job_idx) and its leased ones,
--   found by tenant and job in the leased index, which also serves the claim's per-tenant count.
-- * A completion marks the node's open crashes recovered: only open ones are indexed.

DROP INDEX render.frame_jobs_leased_tenant_idx;
CREATE INDEX frame_jobs_leased_tenant_job_idx ON render.frame_jobs (tenant_id, job_id) WHERE state = 'leased';

CREATE INDEX node_crashes_open_idx ON render.node_crashes (node_id) WHERE recovered_at IS NULL;
