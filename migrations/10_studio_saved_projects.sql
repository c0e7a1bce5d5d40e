-- 10_studio_saved_projects.sql: a user's saved (customised) projects and their audio.
--
-- A saved project is a user's work on one template version: field values per scene, chosen
-- scenes, preset, character, and three audio tracks - music, sound effects (sfx) and
-- voiceover - each with its own volume.
--
-- Volumes (music_volume, sfx_volume, voiceover_volume, saved_project_sfx.volume) are linear
-- gains numeric(4,3) in 0..1: 1 = the source level unchanged, 0 = muted, no boost above 1. This
-- is the same scale as render.render_jobs.*_volume, so a render job copies them unchanged.

-- Library of licensed music and sound effects users can pick from.
CREATE TABLE studio.audio_tracks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('music', 'sfx')),
    title       text NOT NULL CHECK (btrim(title) <> ''),
    artist      text,
    file_id     uuid NOT NULL,
    duration_ms integer NOT NULL CHECK (duration_ms > 0),
    bpm         smallint CHECK (bpm BETWEEN 20 AND 300),
    mood        text,
    genre       text,
    license     text,
    is_premium  boolean NOT NULL DEFAULT false,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN studio.audio_tracks.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the studio service).';
COMMENT ON COLUMN studio.audio_tracks.file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
CREATE INDEX audio_tracks_library_idx ON studio.audio_tracks (tenant_id, kind) WHERE is_active;

CREATE TABLE studio.saved_projects (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL,
    user_id                  uuid NOT NULL,
    template_id              uuid NOT NULL,
    template_version_id      uuid,
    title                    text NOT NULL CHECK (btrim(title) <> ''),
    status                   text NOT NULL DEFAULT 'draft'
                                 CHECK (status IN ('draft', 'rendering', 'rendered', 'failed', 'archived')),
    -- Scene field values: {"<scene_id>": {"<field key>": value, ...}, ...}
    field_values             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(field_values) = 'object'),
    scene_ids                uuid[] NOT NULL DEFAULT '{}',
    preset_id                uuid,
    character_id             uuid,
    output_resolution        text NOT NULL DEFAULT '1080p' CHECK (output_resolution IN ('480p', '720p', '1080p', '4k')),
    output_format            text NOT NULL DEFAULT 'mp4' CHECK (output_format IN ('mp4', 'mov', 'webm', 'gif')),

    -- Music: from the library (music_track_id) or the user's upload (music_file_id).
    music_source             text NOT NULL DEFAULT 'none' CHECK (music_source IN ('none', 'library', 'upload')),
    music_track_id           uuid REFERENCES studio.audio_tracks (id) ON DELETE SET NULL,
    music_file_id            uuid,
    music_start_ms           integer NOT NULL DEFAULT 0 CHECK (music_start_ms >= 0),
    music_fade_in_ms         integer NOT NULL DEFAULT 0 CHECK (music_fade_in_ms >= 0),
    music_fade_out_ms        integer NOT NULL DEFAULT 0 CHECK (music_fade_out_ms >= 0),
    music_loop               boolean NOT NULL DEFAULT true,
    music_volume             numeric(4, 3) NOT NULL DEFAULT 1 CHECK (music_volume BETWEEN 0 AND 1),

    -- Sound effects: the cues are in studio.saved_project_sfx; sfx_volume is their master level.
    sfx_enabled              boolean NOT NULL DEFAULT true,
    sfx_volume               numeric(4, 3) NOT NULL DEFAULT 1 CHECK (sfx_volume BETWEEN 0 AND 1),

    -- Voiceover: uploaded, recorded in the browser, or text-to-speech.
    voiceover_source         text NOT NULL DEFAULT 'none'
                                 CHECK (voiceover_source IN ('none', 'upload', 'recording', 'tts')),
    voiceover_file_id        uuid,
    voiceover_tts_text       text,
    voiceover_tts_voice      text,
    voiceover_start_ms       integer NOT NULL DEFAULT 0 CHECK (voiceover_start_ms >= 0),
    voiceover_duration_ms    integer CHECK (voiceover_duration_ms > 0),
    voiceover_duck_music     boolean NOT NULL DEFAULT true,
    voiceover_volume         numeric(4, 3) NOT NULL DEFAULT 1 CHECK (voiceover_volume BETWEEN 0 AND 1),
    has_voiceover            boolean GENERATED ALWAYS AS (voiceover_source <> 'none') STORED,

    thumbnail_file_id        uuid,
    last_render_job_id       uuid,
    last_rendered_at         timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at               timestamptz,

    CHECK (music_source <> 'library' OR music_track_id IS NOT NULL),
    CHECK (music_source <> 'upload' OR music_file_id IS NOT NULL),
    CHECK (voiceover_source NOT IN ('upload', 'recording') OR voiceover_file_id IS NOT NULL),
    CHECK (voiceover_source <> 'tts' OR (voiceover_tts_text IS NOT NULL AND btrim(voiceover_tts_text) <> ''))
);
COMMENT ON COLUMN studio.saved_projects.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the studio service).';
COMMENT ON COLUMN studio.saved_projects.user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.template_id IS 'Soft reference to content.templates.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.template_version_id IS
    'Soft reference to content.template_versions.id (no FK: cross-schema); NULL = the template''s current version.';
COMMENT ON COLUMN studio.saved_projects.scene_ids IS 'Soft references to content.scenes.id, in play order (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.preset_id IS 'Soft reference to content.presets.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.character_id IS 'Soft reference to content.characters.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.music_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.voiceover_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.thumbnail_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.last_render_job_id IS 'Soft reference to render.render_jobs.id (no FK: cross-schema).';
COMMENT ON COLUMN studio.saved_projects.music_volume IS 'Linear gain 0..1 (1 = source level unchanged, 0 = muted).';
COMMENT ON COLUMN studio.saved_projects.sfx_volume IS 'Linear gain 0..1 (1 = source level unchanged, 0 = muted).';
COMMENT ON COLUMN studio.saved_projects.voiceover_volume IS 'Linear gain 0..1 (1 = source level unchanged, 0 = muted).';
CREATE INDEX saved_projects_user_recent_idx ON studio.saved_projects (tenant_id, user_id, updated_at DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX saved_projects_template_idx ON studio.saved_projects (template_id);

-- Sound-effect cues placed on a saved project's timeline.
CREATE TABLE studio.saved_project_sfx (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    saved_project_id uuid NOT NULL REFERENCES studio.saved_projects (id) ON DELETE CASCADE,
    audio_track_id   uuid REFERENCES studio.audio_tracks (id) ON DELETE SET NULL,
    file_id          uuid,
    label            text,
    start_ms         integer NOT NULL CHECK (start_ms >= 0),
    volume           numeric(4, 3) NOT NULL DEFAULT 1 CHECK (volume BETWEEN 0 AND 1),
    position         integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    CHECK (audio_track_id IS NOT NULL OR file_id IS NOT NULL)
);
COMMENT ON COLUMN studio.saved_project_sfx.file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema): an uploaded effect.';
COMMENT ON COLUMN studio.saved_project_sfx.volume IS 'Linear gain 0..1 of this cue, multiplied by sfx_volume.';
CREATE INDEX saved_project_sfx_project_idx ON studio.saved_project_sfx (saved_project_id, start_ms);
