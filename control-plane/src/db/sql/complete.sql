-- Completes leased work items reported by nodes, several requests at once (the completer batches
-- concurrent CompleteWork calls), in one statement that takes no job lock: the jobs advance in a
-- second statement once this one has committed (advance.sql), so nodes finishing chunks of the
-- same job never queue on its row (docs/dispatch.md, "Completions").
-- Input arrays, one element per reported item: $1 frame job ids, $2 fencing tokens, $3 outputs
-- (jsonb), $4 render seconds, $5 the reporting node, $6 exports (jsonb, NULL for a chunk of
-- frames: see `ExportReport`), $7 the request it came in.
-- Returns per input, in input order: its id, a verdict, and its job when accepted. Verdicts:
-- 'accepted' | 'duplicate' | 'stale' (lease lost) | 'job_ended' (lease lost because the job was
-- cancelled or failed) | 'invalid' (an encode reported without its export, or a chunk with one:
-- then nothing of that request is recorded).
WITH input AS (
    SELECT i.id, i.token, i.outputs, i.seconds, i.export, i.node, i.request, i.n,
           -- The same chunk and token twice counts once; the rest are duplicates.
           row_number() OVER (PARTITION BY i.id, i.token ORDER BY i.n) = 1 AS first
    FROM unnest($1::uuid[], $2::int8[], $3::jsonb[], $4::float8[], $6::jsonb[], $5::uuid[], $7::int4[])
         WITH ORDINALITY AS i(id, token, outputs, seconds, export, node, request, n)
),
locked AS (
    -- Chunks in id order, the one order every statement locks chunks in (jobs, when a statement
    -- locks any, come first: this one locks none). Locking returns each row's latest version, so
    -- a cancel that committed meanwhile is seen here.
    SELECT f.id, f.job_id, f.tenant_id, f.state, f.lease_token, f.lease_node_id, f.kind
    FROM render.frame_jobs f
    WHERE f.id IN (SELECT id FROM input)
    ORDER BY f.id
    FOR NO KEY UPDATE
),
invalid AS (
    SELECT i.n, i.request
    FROM input i
    JOIN locked l ON l.id = i.id AND l.lease_token = i.token AND l.state = 'leased'
    WHERE (l.kind = 'encode') <> (i.export IS NOT NULL)
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
    FROM input i, locked l
    WHERE i.first AND l.id = i.id AND f.id = l.id AND l.lease_token = i.token AND l.lease_node_id = i.node
      AND l.state = 'leased' AND NOT EXISTS (SELECT 1 FROM invalid v WHERE v.request = i.request)
    RETURNING f.id, f.job_id, f.tenant_id, f.lease_token, f.kind, f.lease_node_id
),
recovered AS (
    -- Work done: the nodes' open crashes count as recovered.
    UPDATE render.node_crashes c SET recovered_at = now()
    WHERE c.node_id IN (SELECT d.lease_node_id FROM done d) AND c.recovered_at IS NULL
),
exported AS (
    -- The encode's video, recorded with its completion; advance.sql then completes the job.
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
)
SELECT i.id,
       CASE WHEN EXISTS (SELECT 1 FROM invalid v WHERE v.n = i.n) THEN 'invalid'
            WHEN d.id IS NOT NULL AND i.first THEN 'accepted'
            WHEN d.id IS NOT NULL THEN 'duplicate'
            WHEN l.state = 'completed' AND l.lease_token = i.token THEN 'duplicate'
            WHEN l.state IN ('cancelled', 'failed')
                 OR EXISTS (SELECT 1 FROM render.render_jobs j
                            WHERE j.id = l.job_id AND j.status IN ('cancelled', 'failed')) THEN 'job_ended'
            ELSE 'stale' END AS verdict,
       CASE WHEN d.id IS NOT NULL AND i.first THEN d.job_id END AS job_id
FROM input i
LEFT JOIN locked l ON l.id = i.id
LEFT JOIN done d ON d.id = i.id AND d.lease_token = i.token
ORDER BY i.n
