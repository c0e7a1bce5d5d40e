-- 07_content_scenes.sql: the scenes of a template version and their editable fields.
--
-- A scene is one composition of the AEP that users can pick, reorder and fill in; its fields are
-- the placeholders (texts, images, colours, ...) the render replaces.

CREATE TABLE content.scenes (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL,
    template_id           uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    template_version_id   uuid NOT NULL REFERENCES content.template_versions (id) ON DELETE CASCADE,
    position              integer NOT NULL CHECK (position >= 0),
    comp_name             text NOT NULL CHECK (btrim(comp_name) <> ''),
    title                 text NOT NULL CHECK (btrim(title) <> ''),
    description           text,
    start_frame           integer NOT NULL DEFAULT 0 CHECK (start_frame >= 0),
    end_frame             integer NOT NULL,
    is_optional           boolean NOT NULL DEFAULT false,
    is_premium            boolean NOT NULL DEFAULT false,
    thumbnail_file_id     uuid,
    preview_video_file_id uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (end_frame >= start_frame),
    UNIQUE (template_version_id, position),
    UNIQUE (template_version_id, comp_name)
);
COMMENT ON COLUMN content.scenes.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.scenes.thumbnail_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN content.scenes.preview_video_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
CREATE INDEX scenes_template_idx ON content.scenes (template_id);

CREATE TABLE content.scene_fields (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scene_id      uuid NOT NULL REFERENCES content.scenes (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
    kind          text NOT NULL CHECK (kind IN ('text', 'image', 'video', 'color', 'audio', 'number',
                                               'boolean', 'select', 'character')),
    label         text NOT NULL CHECK (btrim(label) <> ''),
    layer_name    text NOT NULL CHECK (btrim(layer_name) <> ''),
    position      integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    is_required   boolean NOT NULL DEFAULT false,
    max_length    integer CHECK (max_length > 0),
    default_value jsonb,
    options       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    CHECK (max_length IS NULL OR kind = 'text'),
    UNIQUE (scene_id, key)
);
