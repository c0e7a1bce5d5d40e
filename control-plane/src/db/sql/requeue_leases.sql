-- Ends live leases and returns their chunks to the queue, or fails them when out of attempts.
-- Selects by: $1 > 0 → up to $1 expired leases; else $2 node ids; else $3 chunk ids.
-- $4 whether this counts as a failed attempt, $5 error class, $6 reason.
WITH target AS (
    SELECT f.id, f.lease_node_id AS node_id
    FROM render.frame_jobs f
    WHERE f.state = 'leased'
      AND (($1 > 0 AND f.lease_expires_at < now())
           OR f.lease_node_id = ANY($2::uuid[])
           OR f.id = ANY($3::uuid[]))
    ORDER BY f.lease_expires_at
    LIMIT CASE WHEN $1 > 0 THEN $1 ELSE NULL END
    FOR UPDATE OF f SKIP LOCKED
)
UPDATE render.frame_jobs f
SET state = CASE WHEN $4 AND f.attempt >= j.max_attempts THEN 'failed' ELSE 'pending' END,
    -- A requeue that is not the node's fault gives the attempt back.
    attempt = CASE WHEN $4 THEN f.attempt ELSE greatest(f.attempt - 1, 0) END,
    lease_token = NULL,
    lease_expires_at = NULL,
    frames_done = 0,
    last_error_class = $5,
    last_error = left($6, 4000),
    updated_at = now()
FROM target t, render.render_jobs j
WHERE f.id = t.id AND j.id = f.job_id
RETURNING f.id, f.job_id, f.tenant_id, f.chunk_index, f.frame_start, f.frame_end, f.state, f.attempt, t.node_id, f.kind
