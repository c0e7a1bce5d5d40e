-- Completes leased chunks reported by node $5 and advances their jobs, in one statement.
-- Input arrays: $1 frame job ids, $2 fencing tokens, $3 outputs (jsonb), $4 render seconds.
-- Returns per input, in input order: its id, 'accepted' | 'duplicate' | 'stale', and the job id
-- when this completion finished the job's last chunk. The caller has locked the chunks' jobs
-- first, in id order (`lock_jobs_of_leases`): jobs before chunks, one order everywhere.
WITH input AS (
    SELECT i.id, i.token, i.outputs, i.seconds, i.n,
           -- The same chunk and token twice in one request counts once; the rest are duplicates.
           row_number() OVER (PARTITION BY i.id, i.token ORDER BY i.n) = 1 AS first
    FROM unnest($1::uuid[], $2::int8[], $3::jsonb[], $4::float8[]) WITH ORDINALITY AS i(id, token, outputs, seconds, n)
),
done AS (
    UPDATE render.frame_jobs f
    SET state = 'completed',
        lease_expires_at = NULL,
        completed_at = now(),
        frames_done = f.frame_end - f.frame_start + 1,
        frames_written = ARRAY(SELECT generate_series(f.frame_start, f.frame_end)),
        outputs = i.outputs,
        render_seconds = i.seconds,
        updated_at = now()
    FROM input i
    WHERE i.first AND f.id = i.id AND f.lease_token = i.token AND f.lease_node_id = $5 AND f.state = 'leased'
    RETURNING f.id, f.job_id, f.lease_token
),
per_job AS (
    SELECT job_id, count(*) AS chunks FROM done GROUP BY job_id
),
advanced AS (
    -- Every chunk rendered: the job passes through 'rendered'. No encoder is wired yet, so it
    -- completes in the same step (docs/state-machines.md).
    UPDATE render.render_jobs j
    SET chunks_completed = j.chunks_completed + p.chunks,
        status = CASE WHEN j.chunks_completed + p.chunks = j.chunks_total THEN 'completed' ELSE 'rendering' END,
        started_at = coalesce(j.started_at, now()),
        rendered_at = CASE WHEN j.chunks_completed + p.chunks = j.chunks_total THEN now() ELSE j.rendered_at END,
        finished_at = CASE WHEN j.chunks_completed + p.chunks = j.chunks_total THEN now() ELSE j.finished_at END,
        updated_at = now()
    FROM per_job p
    WHERE j.id = p.job_id AND j.status IN ('queued', 'rendering')
    RETURNING j.id, j.status
)
SELECT i.id,
       CASE WHEN d.id IS NOT NULL AND d.lease_token = i.token AND i.first THEN 'accepted'
            WHEN d.id IS NOT NULL AND d.lease_token = i.token THEN 'duplicate'
            WHEN EXISTS (SELECT 1 FROM render.frame_jobs f
                         WHERE f.id = i.id AND f.state = 'completed' AND f.lease_token = i.token) THEN 'duplicate'
            ELSE 'stale' END AS verdict,
       CASE WHEN i.first THEN (SELECT a.id FROM advanced a WHERE a.id = d.job_id AND a.status = 'completed') END
           AS finished_job
FROM input i
LEFT JOIN done d ON d.id = i.id AND d.lease_token = i.token
ORDER BY i.n
