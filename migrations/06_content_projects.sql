-- 06_content_projects.sql: templates and their After Effects projects.
--
-- A template is what users browse and customise. Each upload of its After Effects project
-- (.aep bundle) is an immutable content.template_versions row: the AEP file reference, a version
-- number and the BLAKE3 content hash that render nodes use as the key of their local AEP cache.
-- content.templates.current_version_id points at the version new renders use.
-- content.template_svg_previews holds traced SVG colour previews (drop an image -> SVG).

CREATE TABLE content.templates (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL,
    slug                  text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    title                 text NOT NULL CHECK (btrim(title) <> ''),
    description           text,
    category_id           uuid REFERENCES content.categories (id) ON DELETE SET NULL,
    status                text NOT NULL DEFAULT 'draft'
                              CHECK (status IN ('draft', 'review', 'published', 'archived')),
    orientation           text NOT NULL DEFAULT 'landscape'
                              CHECK (orientation IN ('landscape', 'portrait', 'square')),
    is_premium            boolean NOT NULL DEFAULT false,
    price_cents           bigint NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    duration_ms           integer CHECK (duration_ms > 0),
    current_version_id    uuid, -- FK to content.template_versions added below
    thumbnail_file_id     uuid,
    preview_video_file_id uuid,
    created_by_user_id    uuid,
    render_count          bigint NOT NULL DEFAULT 0 CHECK (render_count >= 0),
    sort_order            integer NOT NULL DEFAULT 0,
    published_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    CHECK (status <> 'published' OR (published_at IS NOT NULL AND current_version_id IS NOT NULL)),
    UNIQUE (tenant_id, slug)
);
COMMENT ON COLUMN content.templates.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.templates.thumbnail_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN content.templates.preview_video_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN content.templates.created_by_user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
CREATE INDEX templates_catalog_idx ON content.templates (tenant_id, status, category_id, sort_order)
    WHERE deleted_at IS NULL;
CREATE INDEX templates_published_idx ON content.templates (tenant_id, published_at DESC)
    WHERE status = 'published' AND deleted_at IS NULL;

CREATE TABLE content.template_versions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    template_id        uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    version            integer NOT NULL CHECK (version > 0),
    -- The After Effects project.
    aep_file_id        uuid NOT NULL,
    aep_storage_key    text NOT NULL CHECK (aep_storage_key <> ''),
    aep_content_hash   bytea NOT NULL CHECK (octet_length(aep_content_hash) = 32),
    aep_size_bytes     bigint NOT NULL CHECK (aep_size_bytes > 0),
    ae_min_version     text,
    render_comp_name   text NOT NULL DEFAULT 'Render' CHECK (btrim(render_comp_name) <> ''),
    width              integer NOT NULL CHECK (width BETWEEN 1 AND 16384),
    height             integer NOT NULL CHECK (height BETWEEN 1 AND 16384),
    fps                numeric(6, 3) NOT NULL CHECK (fps > 0 AND fps <= 240),
    start_frame        integer NOT NULL DEFAULT 0 CHECK (start_frame >= 0),
    end_frame          integer NOT NULL,
    required_fonts     text[] NOT NULL DEFAULT '{}',
    required_plugins   text[] NOT NULL DEFAULT '{}',
    changelog          text,
    created_by_user_id uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (end_frame >= start_frame),
    UNIQUE (template_id, version)
);
COMMENT ON COLUMN content.template_versions.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.template_versions.aep_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema): the uploaded .aep bundle.';
COMMENT ON COLUMN content.template_versions.aep_content_hash IS
    'BLAKE3 of the .aep bundle (32 bytes); render nodes key their local AEP cache on it.';
COMMENT ON COLUMN content.template_versions.created_by_user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
COMMENT ON COLUMN content.template_versions.end_frame IS 'Inclusive last frame of render_comp_name; >= start_frame.';
CREATE INDEX template_versions_hash_idx ON content.template_versions (aep_content_hash);

ALTER TABLE content.templates
    ADD CONSTRAINT templates_current_version_id_fkey
    FOREIGN KEY (current_version_id) REFERENCES content.template_versions (id) ON DELETE SET NULL;

CREATE TABLE content.template_categories (
    template_id uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    category_id uuid NOT NULL REFERENCES content.categories (id) ON DELETE CASCADE,
    PRIMARY KEY (template_id, category_id)
);
CREATE INDEX template_categories_category_idx ON content.template_categories (category_id);

CREATE TABLE content.template_tags (
    template_id uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    tag_id      uuid NOT NULL REFERENCES content.tags (id) ON DELETE CASCADE,
    PRIMARY KEY (template_id, tag_id)
);
CREATE INDEX template_tags_tag_idx ON content.template_tags (tag_id);

-- Drop an image -> traced SVG with recolourable regions, shown as a colour preview.
CREATE TABLE content.template_svg_previews (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    template_id         uuid NOT NULL REFERENCES content.templates (id) ON DELETE CASCADE,
    template_version_id uuid REFERENCES content.template_versions (id) ON DELETE CASCADE,
    source_file_id      uuid,
    svg_file_id         uuid,
    svg_inline          text,
    status              text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'tracing', 'ready', 'failed')),
    -- Recolourable regions: [{"id": "...", "default": "#aabbcc"}, ...]
    color_slots         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(color_slots) = 'array'),
    width               integer CHECK (width > 0),
    height              integer CHECK (height > 0),
    error_message       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'ready' OR svg_file_id IS NOT NULL OR svg_inline IS NOT NULL),
    CHECK (status <> 'failed' OR error_message IS NOT NULL)
);
COMMENT ON COLUMN content.template_svg_previews.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.template_svg_previews.source_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema): the dropped raster image.';
COMMENT ON COLUMN content.template_svg_previews.svg_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema): the traced SVG, when stored as a file.';
CREATE INDEX template_svg_previews_template_idx ON content.template_svg_previews (template_id);
