-- Claims up to N pending frame chunks for one node, fairly across tenants, in one statement.
-- $1 node id, $2 node os, $3 node AE version, $4 node tags, $5 chunks wanted, $6 lease TTL (s),
-- $7 default guaranteed leases, $8 default burst cap (0: none), $9 template hashes in the
-- node's cache, $10 candidate window per tenant, $11 tenants considered, $12 bad-node grace (s),
-- $13 the node renders (has After Effects), $14 the node encodes (has ffmpeg).
-- docs/dispatch.md explains the ordering. A work item is a chunk of frames ('render') or a job's
-- encode ('encode', pending once every chunk is in): a node is offered the kinds it can do, and
-- the job's render requirements (OS, AE version, tags) apply to its chunks only.
WITH RECURSIVE pending_tenants(tenant_id) AS (
    -- Loose index scan: one probe per tenant with pending work, not one row per pending chunk.
    (SELECT f.tenant_id FROM render.frame_jobs f WHERE f.state = 'pending' ORDER BY f.tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT f.tenant_id FROM render.frame_jobs f
            WHERE f.state = 'pending' AND f.tenant_id > p.tenant_id
            ORDER BY f.tenant_id LIMIT 1)
    FROM pending_tenants p
    WHERE p.tenant_id IS NOT NULL
),
tenant_load AS (
    SELECT p.tenant_id,
           coalesce(q.guaranteed_leases, $7) AS guaranteed,
           CASE WHEN q.tenant_id IS NULL THEN nullif($8, 0) ELSE q.burst_leases END AS burst,
           (SELECT count(*) FROM render.frame_jobs l WHERE l.tenant_id = p.tenant_id AND l.state = 'leased') AS running,
           (SELECT f.priority FROM render.frame_jobs f WHERE f.tenant_id = p.tenant_id AND f.state = 'pending'
            ORDER BY f.priority DESC LIMIT 1) AS top_priority
    FROM pending_tenants p
    LEFT JOIN render.tenant_quotas q ON q.tenant_id = p.tenant_id
    WHERE p.tenant_id IS NOT NULL
      -- Requirements filter before the ranking window: only tenants with a job this node may
      -- run compete for it, so unrunnable work ranked higher cannot hide runnable work. Judged
      -- on the job (its status says which kind of item is pending), never by joining the
      -- pending chunks: a scalar subquery with LIMIT stays a per-tenant probe, where an EXISTS
      -- may be planned as a hash join over every pending chunk (issue 13: 150 ms a claim).
      AND (SELECT true FROM render.render_jobs j
           WHERE j.tenant_id = p.tenant_id AND j.status IN ('queued', 'rendering', 'rendered', 'encoding')
             AND CASE WHEN j.status IN ('rendered', 'encoding') THEN $14
                      ELSE $13 AND (j.required_os IS NULL OR j.required_os = $2)
                           AND (j.required_ae_version IS NULL OR starts_with($3, j.required_ae_version))
                           AND j.required_tags <@ $4::text[] END
           LIMIT 1)
),
eligible AS (
    -- Tenants below their guarantee first, then by priority tier, then the least loaded.
    SELECT t.tenant_id,
           row_number() OVER (ORDER BY (t.running < t.guaranteed) DESC, t.top_priority DESC,
                                       t.running::float8 / greatest(t.guaranteed, 1), t.tenant_id) AS rank
    FROM tenant_load t
    WHERE t.burst IS NULL OR t.running < t.burst
    ORDER BY rank
    LIMIT $11
),
node_jobs AS (
    SELECT DISTINCT l.job_id FROM render.frame_jobs l WHERE l.lease_node_id = $1 AND l.state = 'leased'
),
candidates AS (
    -- The head of each eligible tenant's queue that this node may run.
    SELECT c.id, e.rank, c.priority, c.queued_at, c.job_id, c.chunk_index,
           (c.template_hash = ANY($9::bytea[]) OR c.job_id IN (SELECT job_id FROM node_jobs)) AS warm
    FROM eligible e
    CROSS JOIN LATERAL (
        SELECT f.id, f.priority, f.queued_at, f.job_id, f.chunk_index, f.template_hash
        FROM render.frame_jobs f
        JOIN render.render_jobs j ON j.id = f.job_id
        WHERE f.tenant_id = e.tenant_id
          AND f.state = 'pending'
          AND CASE WHEN f.kind = 'encode' THEN $14
                   ELSE $13 AND (j.required_os IS NULL OR j.required_os = $2)
                        AND (j.required_ae_version IS NULL OR starts_with($3, j.required_ae_version))
                        AND j.required_tags <@ $4::text[] END
          -- A bad node is skipped until the chunk has waited the grace with no other taker
          -- (updated_at: when it went back to pending), so a job never starves on it.
          AND NOT EXISTS (SELECT 1 FROM render.job_bad_nodes b WHERE b.job_id = f.job_id AND b.node_id = $1
                          AND f.updated_at > now() - make_interval(secs => $12))
        ORDER BY f.priority DESC, f.queued_at, f.job_id, f.chunk_index
        LIMIT $10
    ) c
),
capacity AS (
    SELECT coalesce((
        SELECT greatest(0, least($5, n.max_leases
               - (SELECT count(*) FROM render.frame_jobs l WHERE l.lease_node_id = $1 AND l.state = 'leased')))
        FROM render.nodes n WHERE n.id = $1 AND n.state = 'online'), 0) AS slots
),
chosen AS (
    SELECT f.id
    FROM candidates c
    JOIN render.frame_jobs f ON f.id = c.id
    WHERE f.state = 'pending'
    ORDER BY c.rank, c.priority DESC, c.warm DESC, c.queued_at, c.job_id, c.chunk_index
    LIMIT (SELECT slots FROM capacity)
    FOR UPDATE OF f SKIP LOCKED
),
claimed AS (
    UPDATE render.frame_jobs f
    SET state = 'leased',
        lease_token = nextval('render.lease_token_seq'),
        lease_node_id = $1,
        leased_at = now(),
        lease_expires_at = now() + make_interval(secs => $6),
        attempt = f.attempt + 1,
        updated_at = now()
    FROM chosen
    WHERE f.id = chosen.id
    RETURNING f.id, f.job_id, f.tenant_id, f.chunk_index, f.frame_start, f.frame_end, f.lease_token,
              f.lease_expires_at, f.attempt, f.frames_written, f.scene_index, f.kind
),
started AS (
    -- The claim holds chunk locks, so it must never wait for a job lock (others take jobs
    -- first): a job locked right now stays 'queued' ('rendered') until its next claim or
    -- completion. A 'rendered' job's only pending item is its encode.
    UPDATE render.render_jobs j
    SET status = CASE WHEN s.status = 'queued' THEN 'rendering' ELSE 'encoding' END,
        started_at = coalesce(j.started_at, now()), updated_at = now()
    FROM (SELECT q.id, q.status FROM render.render_jobs q
          WHERE q.id IN (SELECT job_id FROM claimed) AND q.status IN ('queued', 'rendered')
          FOR NO KEY UPDATE SKIP LOCKED) s
    WHERE j.id = s.id
)
-- A project's chunk renders its scene's composition with the user's values for that scene; an
-- encode item takes the job's scenes (index and frames, in play order) and audio.
SELECT c.id, c.job_id, c.tenant_id, c.chunk_index, c.frame_start, c.frame_end, c.lease_token, c.lease_expires_at,
       c.attempt, c.frames_written, j.template_id, j.template_version, j.template_url, j.template_hash,
       j.template_size_bytes, coalesce(s.composition, j.composition) AS composition, j.fps::float8 AS fps,
       j.output_settings, c.scene_index, s.scene_id, s.fields AS scene_fields, c.kind,
       CASE WHEN c.kind = 'encode' THEN j.audio END AS audio,
       CASE WHEN c.kind = 'encode' THEN
           (SELECT coalesce(jsonb_agg(jsonb_build_array(a.scene_index, a.frame_start, a.frame_end)
                                      ORDER BY a.scene_index), '[]')
            FROM render.job_scenes a WHERE a.job_id = c.job_id) END AS encode_scenes
FROM claimed c
JOIN render.render_jobs j ON j.id = c.job_id
LEFT JOIN render.job_scenes s ON s.job_id = c.job_id AND s.scene_index = c.scene_index
ORDER BY c.job_id, c.chunk_index
