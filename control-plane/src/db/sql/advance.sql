-- Advances jobs $1 after completions of their work items committed (complete.sql), in one
-- statement (docs/state-machines.md):
--   queued -> rendering            a chunk of it is in (its first claim may have left it queued);
--   -> rendered + encode queued    every chunk is in and the job delivers a video;
--   -> completed                   every chunk is in and it delivers a PNG sequence, or its encode
--                                  is in (complete.sql recorded the export with it).
-- A job row is locked only when it changes, so running this after every completion costs two
-- index probes per job, not a wait on a hot row. It reads committed chunks only: whichever
-- completion commits last sees every chunk in, and two that both do are told apart by the
-- status check on the locked row. The lease reaper runs it too, for jobs whose completing
-- control plane died between the two statements.
-- Returns each job that changed: id, new status, whether its encode was queued.
WITH job AS MATERIALIZED (
    -- CASE, not AND: the cheap probe decides first. While any chunk of the job is leased (the
    -- common case: other nodes are rendering it) the pending chunks are not looked at.
    SELECT j.id, j.status, j.tenant_id, j.chunks_total, j.frame_start, j.frame_end, j.priority, j.created_at,
           j.template_hash, j.output_settings ->> 'container' = 'png_sequence' AS frames_only,
           CASE WHEN j.status NOT IN ('queued', 'rendering') THEN false
                WHEN EXISTS (SELECT 1 FROM render.frame_jobs f
                             WHERE f.tenant_id = j.tenant_id AND f.job_id = j.id AND f.state = 'leased'
                               AND f.kind = 'render') THEN false
                -- In chunk order, so the plan is the index (frame_jobs_pending_job_idx), never a
                -- scan of the table from its finished head.
                ELSE (SELECT f.chunk_index FROM render.frame_jobs f
                      WHERE f.job_id = j.id AND f.state = 'pending' AND f.kind = 'render'
                      ORDER BY f.chunk_index LIMIT 1) IS NULL END
               AS all_rendered,
           CASE WHEN j.status IN ('rendered', 'encoding')
                THEN EXISTS (SELECT 1 FROM render.frame_jobs f
                             WHERE f.job_id = j.id AND f.kind = 'encode' AND f.state = 'completed')
                ELSE false END AS encoded
    FROM render.render_jobs j
    WHERE j.id = ANY($1::uuid[]) AND j.status IN ('queued', 'rendering', 'rendered', 'encoding')
),
next AS (
    SELECT job.*,
           CASE WHEN job.status IN ('rendered', 'encoding') THEN CASE WHEN job.encoded THEN 'completed' END
                WHEN job.all_rendered AND job.frames_only THEN 'completed'
                WHEN job.all_rendered THEN 'rendered'
                WHEN job.status = 'queued' THEN 'rendering' END AS status_next
    FROM job
),
advanced AS (
    UPDATE render.render_jobs j
    SET status = n.status_next,
        chunks_completed = CASE WHEN n.all_rendered THEN j.chunks_total ELSE j.chunks_completed END,
        started_at = coalesce(j.started_at, now()),
        rendered_at = CASE WHEN n.status_next = 'rendered' OR (n.status_next = 'completed' AND n.frames_only)
                           THEN now() ELSE j.rendered_at END,
        finished_at = CASE WHEN n.status_next = 'completed' THEN now() ELSE j.finished_at END,
        updated_at = now()
    FROM next n
    -- The status read above must still hold on the locked row: of two completions that both saw
    -- the job's last chunk in, the second finds it advanced and changes nothing.
    WHERE j.id = n.id AND n.status_next IS NOT NULL AND j.status = n.status
    RETURNING j.id, j.status, j.tenant_id, j.chunks_total, j.frame_start, j.frame_end, j.priority, j.created_at,
              j.template_hash
),
encode_queued AS (
    -- One encode per job (frame_jobs_one_encode_idx): a job rendered again after its encode
    -- failed puts the same item back in the queue.
    INSERT INTO render.frame_jobs (job_id, tenant_id, chunk_index, frame_start, frame_end, priority, queued_at,
                                   template_hash, kind)
    SELECT a.id, a.tenant_id, a.chunks_total, a.frame_start, a.frame_end, a.priority, a.created_at, a.template_hash,
           'encode'
    FROM advanced a
    WHERE a.status = 'rendered'
    ON CONFLICT (job_id) WHERE kind = 'encode' DO UPDATE
    SET state = 'pending', attempt = 0, lease_token = NULL, lease_node_id = NULL, lease_expires_at = NULL,
        frames_done = 0, last_error_class = NULL, last_error = NULL, completed_at = NULL, updated_at = now()
    RETURNING job_id
)
SELECT a.id, a.status, EXISTS (SELECT 1 FROM encode_queued e WHERE e.job_id = a.id) AS encode_queued
FROM advanced a
ORDER BY a.id
