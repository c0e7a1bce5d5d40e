-- 17_render_exports.sql: from rendered frames to a delivered video (issue 12, docs/encode.md).
-- Additive only.
--
-- * render.frame_jobs.kind: a work item renders frames ('render', every chunk so far) or encodes
--   the job's frames and audio into its video ('encode': one per job, created when its last chunk
--   completes, leased and fenced like a chunk, not counted in chunks_total).
-- * render.frame_jobs.frames_removed_at: when the node that rendered a completed chunk confirmed
--   it removed the job's frames (they are kept for render.frames retention after the job ends).
-- * render.nodes: the encoder a node reported (ffmpeg and ffprobe versions) and whether it has no
--   After Effects (encode work only).
-- * render.exports: the video's duration and codecs as ffprobe read them; at most one export a
--   job, so a redone encode can never leave two.

ALTER TABLE render.frame_jobs
    ADD COLUMN kind text NOT NULL DEFAULT 'render' CHECK (kind IN ('render', 'encode')),
    ADD COLUMN frames_removed_at timestamptz;
COMMENT ON COLUMN render.frame_jobs.kind IS 'render: a chunk of frames for After Effects; encode: the job''s one encode of its frames and audio into the delivered video.';
COMMENT ON COLUMN render.frame_jobs.frames_removed_at IS 'When the node that rendered this chunk confirmed it removed the job''s frames after the retention time.';
CREATE UNIQUE INDEX frame_jobs_one_encode_idx ON render.frame_jobs (job_id) WHERE kind = 'encode';
-- Frame retention looks up, per node, the finished jobs whose frames it still holds.
CREATE INDEX frame_jobs_frames_kept_idx ON render.frame_jobs (lease_node_id, job_id)
    WHERE state = 'completed' AND kind = 'render' AND frames_removed_at IS NULL;

ALTER TABLE render.nodes
    ADD COLUMN ffmpeg_version text CHECK (length(ffmpeg_version) <= 128),
    ADD COLUMN ffprobe_version text CHECK (length(ffprobe_version) <= 128),
    ADD COLUMN encode_only boolean NOT NULL DEFAULT false,
    ADD CHECK ((ffmpeg_version IS NULL) = (ffprobe_version IS NULL)),
    ADD CHECK (NOT encode_only OR ffmpeg_version IS NOT NULL);
COMMENT ON COLUMN render.nodes.ffmpeg_version IS 'ffmpeg found by the agent at its last start; NULL: the node takes no encode work.';
COMMENT ON COLUMN render.nodes.encode_only IS 'The node has no After Effects: it takes encode work only.';

ALTER TABLE render.exports
    ADD COLUMN duration_ms bigint CHECK (duration_ms >= 0),
    ADD COLUMN video_codec text CHECK (length(video_codec) <= 64),
    ADD COLUMN audio_codec text CHECK (length(audio_codec) <= 64);
CREATE UNIQUE INDEX exports_one_per_job_idx ON render.exports (job_id);

-- Dispatch looks for tenants with a job in any state that has pending work: chunks while queued
-- or rendering, the encode item while rendered or encoding.
CREATE INDEX render_jobs_tenant_dispatchable_idx ON render.render_jobs (tenant_id)
    WHERE status IN ('queued', 'rendering', 'rendered', 'encoding');
