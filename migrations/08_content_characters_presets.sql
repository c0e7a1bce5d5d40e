-- 08_content_characters_presets.sql: characters users can cast into templates, and presets
-- (named sets of field values, colours or styles) for a template.

CREATE TABLE content.characters (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    slug              text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    name              text NOT NULL CHECK (btrim(name) <> ''),
    description       text,
    status            text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    is_premium        boolean NOT NULL DEFAULT false,
    thumbnail_file_id uuid,
    rig_file_id       uuid,
    attributes        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    sort_order        integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug)
);
COMMENT ON COLUMN content.characters.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.characters.thumbnail_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN content.characters.rig_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema): the character''s AE precomp/rig.';

-- Which characters a template offers.
CREATE TABLE content.template_characters (
    template_id  uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    character_id uuid NOT NULL REFERENCES content.characters (id) ON DELETE CASCADE,
    position     integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    PRIMARY KEY (template_id, character_id)
);
CREATE INDEX template_characters_character_idx ON content.template_characters (character_id);

CREATE TABLE content.presets (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL,
    template_id       uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (btrim(name) <> ''),
    kind              text NOT NULL DEFAULT 'full' CHECK (kind IN ('color', 'text', 'style', 'full')),
    -- Field key -> value, matching content.scene_fields.key of the template's scenes.
    field_values      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(field_values) = 'object'),
    character_id      uuid REFERENCES content.characters (id) ON DELETE SET NULL,
    thumbnail_file_id uuid,
    is_default        boolean NOT NULL DEFAULT false,
    position          integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_id, name)
);
COMMENT ON COLUMN content.presets.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.presets.thumbnail_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
-- At most one default preset per template.
CREATE UNIQUE INDEX presets_one_default_key ON content.presets (template_id) WHERE is_default;
