-- Completes leased work items reported by node $5 and advances their jobs, in one statement.
-- Input arrays: $1 frame job ids, $2 fencing tokens, $3 outputs (jsonb), $4 render seconds,
-- $6 exports (jsonb, NULL for a chunk of frames: see `ExportReport`).
-- Returns per input, in input order: its id, a verdict, the job id when this completion finished
-- the job, and the job id when it queued the job's encode. Verdicts: 'accepted' | 'duplicate' |
-- 'stale' (lease lost) | 'job_ended' (lease lost because the job was cancelled or failed) |
-- 'invalid' (an encode reported without its export, or a chunk with one: the caller rolls back).
-- The caller has locked the items' jobs first, in id order (`lock_jobs_of_leases`): jobs before
-- chunks, one order everywhere.
WITH input AS (
    SELECT i.id, i.token, i.outputs, i.seconds, i.export, i.n,
           -- The same chunk and token twice in one request counts once; the rest are duplicates.
           row_number() OVER (PARTITION BY i.id, i.token ORDER BY i.n) = 1 AS first
    FROM unnest($1::uuid[], $2::int8[], $3::jsonb[], $4::float8[], $6::jsonb[])
         WITH ORDINALITY AS i(id, token, outputs, seconds, export, n)
),
done AS (
    UPDATE render.frame_jobs f
    SET state = 'completed',
        lease_expires_at = NULL,
        completed_at = now(),
        frames_done = f.frame_end - f.frame_start + 1,
        frames_written = CASE WHEN f.kind = 'render' THEN ARRAY(SELECT generate_series(f.frame_start, f.frame_end))
                              ELSE f.frames_written END,
        outputs = i.outputs,
        render_seconds = i.seconds,
        updated_at = now()
    FROM input i
    WHERE i.first AND f.id = i.id AND f.lease_token = i.token AND f.lease_node_id = $5 AND f.state = 'leased'
      AND (f.kind = 'encode') = (i.export IS NOT NULL)
    RETURNING f.id, f.job_id, f.tenant_id, f.lease_token, f.kind
),
per_job AS (
    SELECT job_id, count(*) FILTER (WHERE kind = 'render') AS chunks, bool_or(kind = 'encode') AS encoded
    FROM done GROUP BY job_id
),
advanced AS (
    -- Every chunk in: a video job goes to 'rendered' and its encode is queued (claiming it moves
    -- the job to 'encoding'); a PNG sequence is delivered as its frames and completes. The
    -- accepted encode completes the job (docs/state-machines.md).
    UPDATE render.render_jobs j
    SET chunks_completed = j.chunks_completed + p.chunks,
        status = s.status,
        started_at = coalesce(j.started_at, now()),
        rendered_at = CASE WHEN s.all_rendered AND NOT p.encoded THEN now() ELSE j.rendered_at END,
        finished_at = CASE WHEN s.status = 'completed' THEN now() ELSE j.finished_at END,
        updated_at = now()
    FROM per_job p
    JOIN render.render_jobs q ON q.id = p.job_id
    CROSS JOIN LATERAL (
        SELECT q.chunks_completed + p.chunks = q.chunks_total AS all_rendered
    ) r
    CROSS JOIN LATERAL (
        SELECT r.all_rendered,
               CASE WHEN p.encoded THEN 'completed'
                    WHEN NOT r.all_rendered THEN 'rendering'
                    WHEN q.output_settings ->> 'container' = 'png_sequence' THEN 'completed'
                    ELSE 'rendered' END AS status
    ) s
    WHERE j.id = p.job_id AND j.status IN ('queued', 'rendering', 'rendered', 'encoding')
    RETURNING j.id, j.status, j.tenant_id, j.chunks_total, j.frame_start, j.frame_end, j.priority, j.created_at,
              j.template_hash, p.encoded
),
encode_queued AS (
    -- One encode per job (frame_jobs_one_encode_idx): a job rendered again after its encode
    -- failed puts the same item back in the queue.
    INSERT INTO render.frame_jobs (job_id, tenant_id, chunk_index, frame_start, frame_end, priority, queued_at,
                                   template_hash, kind)
    SELECT a.id, a.tenant_id, a.chunks_total, a.frame_start, a.frame_end, a.priority, a.created_at, a.template_hash,
           'encode'
    FROM advanced a
    WHERE a.status = 'rendered' AND NOT a.encoded
    ON CONFLICT (job_id) WHERE kind = 'encode' DO UPDATE
    SET state = 'pending', attempt = 0, lease_token = NULL, lease_node_id = NULL, lease_expires_at = NULL,
        frames_done = 0, last_error_class = NULL, last_error = NULL, completed_at = NULL, updated_at = now()
    RETURNING job_id
),
exported AS (
    INSERT INTO render.exports (tenant_id, job_id, format, width, height, size_bytes, checksum, location, duration_ms,
                                video_codec, audio_codec)
    SELECT d.tenant_id, d.job_id, i.export ->> 'format', (i.export ->> 'width')::int4, (i.export ->> 'height')::int4,
           (i.export ->> 'size_bytes')::int8, decode(i.export ->> 'blake3_hex', 'hex'), i.export ->> 'location',
           (i.export ->> 'duration_ms')::int8, nullif(i.export ->> 'video_codec', ''),
           nullif(i.export ->> 'audio_codec', '')
    FROM done d
    JOIN input i ON i.id = d.id AND i.first
    WHERE d.kind = 'encode'
    ON CONFLICT (job_id) DO UPDATE
    SET format = EXCLUDED.format, width = EXCLUDED.width, height = EXCLUDED.height,
        size_bytes = EXCLUDED.size_bytes, checksum = EXCLUDED.checksum, location = EXCLUDED.location,
        duration_ms = EXCLUDED.duration_ms, video_codec = EXCLUDED.video_codec, audio_codec = EXCLUDED.audio_codec,
        created_at = now()
    RETURNING job_id
)
SELECT i.id,
       CASE WHEN d.id IS NOT NULL AND d.lease_token = i.token AND i.first THEN 'accepted'
            WHEN d.id IS NOT NULL AND d.lease_token = i.token THEN 'duplicate'
            WHEN EXISTS (SELECT 1 FROM render.frame_jobs f
                         WHERE f.id = i.id AND f.state = 'completed' AND f.lease_token = i.token) THEN 'duplicate'
            WHEN EXISTS (SELECT 1 FROM render.frame_jobs f
                         WHERE f.id = i.id AND f.lease_token = i.token AND f.state = 'leased'
                           AND (f.kind = 'encode') <> (i.export IS NOT NULL)) THEN 'invalid'
            WHEN EXISTS (SELECT 1 FROM render.frame_jobs f JOIN render.render_jobs j ON j.id = f.job_id
                         WHERE f.id = i.id AND j.status IN ('cancelled', 'failed')) THEN 'job_ended'
            ELSE 'stale' END AS verdict,
       CASE WHEN i.first THEN (SELECT a.id FROM advanced a WHERE a.id = d.job_id AND a.status = 'completed') END
           AS finished_job,
       CASE WHEN i.first THEN (SELECT e.job_id FROM encode_queued e WHERE e.job_id = d.job_id) END AS encode_job
FROM input i
LEFT JOIN done d ON d.id = i.id AND d.lease_token = i.token
ORDER BY i.n
