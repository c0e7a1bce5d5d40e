-- 16_render_projects.sql: a saved project on the farm (issue 11, docs/content.md). Additive only.
--
-- * render.job_scenes: a project's scenes in play order, each one composition of the template
--   with its frames, its place on the video's timeline and the user's field values (validated
--   JSON, written by the control plane only).
-- * render.frame_jobs.scene_index: the scene a chunk renders (NULL: a single-composition job).
-- * render.render_jobs.audio: the project's music, sound-effect cues and voiceover in full (the
--   seed's music_url, music_volume, sfx_volume, voiceover_url, voiceover_volume, has_voiceover
--   are filled from it too, so they keep their meaning).
-- For a project, render_jobs.composition is the first scene's and frame_start..frame_end numbers
-- the video's frames from 0, so frames_total stays the frame count of the whole job.

CREATE TABLE render.job_scenes (
    job_id         uuid NOT NULL REFERENCES render.render_jobs (id) ON DELETE CASCADE,
    scene_index    integer NOT NULL CHECK (scene_index BETWEEN 0 AND 99),
    scene_id       uuid,
    composition    text NOT NULL CHECK (length(composition) BETWEEN 1 AND 255),
    frame_start    integer NOT NULL CHECK (frame_start >= 0),
    frame_end      integer NOT NULL,
    timeline_start integer NOT NULL CHECK (timeline_start >= 0),
    fields         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(fields) = 'array'),
    PRIMARY KEY (job_id, scene_index),
    CHECK (frame_end >= frame_start)
);
COMMENT ON TABLE render.job_scenes IS 'Scenes of a saved-project job in play order: the composition, its frames, and the user''s field values applied before rendering.';
COMMENT ON COLUMN render.job_scenes.scene_id IS 'Soft reference to content.scenes(id).';
COMMENT ON COLUMN render.job_scenes.timeline_start IS 'The scene''s first frame on the video''s timeline (the frames of the scenes before it).';
COMMENT ON COLUMN render.job_scenes.fields IS 'Field values as validated at submission: [{key, layer, property, value: {kind, value}}], assets with URL, BLAKE3, size and file name.';

ALTER TABLE render.frame_jobs
    ADD COLUMN scene_index integer CHECK (scene_index IS NULL OR scene_index BETWEEN 0 AND 99);
COMMENT ON COLUMN render.frame_jobs.scene_index IS 'The render.job_scenes row this chunk renders; NULL for a single-composition job.';

ALTER TABLE render.render_jobs
    ADD COLUMN audio jsonb CHECK (audio IS NULL OR jsonb_typeof(audio) = 'object');
COMMENT ON COLUMN render.render_jobs.audio IS 'A project''s audio as validated at submission: music, sfx cues with their master volume, voiceover (docs/content.md); NULL when none was given in that form.';
