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

-- A job's pending chunks in chunk order: "any pending chunk left?" reads the first entry of the
-- job's range, a plan the planner keeps at any size (with job_id alone it chose a scan of the
-- whole table once statistics said most rows were pending).
DROP INDEX render.frame_jobs_pending_job_idx;
CREATE INDEX frame_jobs_pending_job_idx ON render.frame_jobs (job_id, chunk_index) WHERE state = 'pending';

-- render.frame_jobs is a queue table: every chunk is updated twice (claimed, completed) and each
-- update leaves a dead version whose entries sit at the head of the pending indexes, where every
-- claim starts reading. Vacuum it after a fixed number of dead rows, not after 20% of a table
-- that may hold millions, and without cost-based sleeping. (The launcher must also look often:
-- autovacuum_naptime, 5 s in the embedded cluster.)
ALTER TABLE render.frame_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_cost_delay = 0
);
