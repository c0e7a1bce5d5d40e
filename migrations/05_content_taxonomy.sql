-- 05_content_taxonomy.sql: categories (a tree) and tags for templates and blog posts.
--
-- Catalog rows belong to a tenant: FlatRender's public catalog to the default tenant, a
-- reseller's private catalog to the reseller.

CREATE TABLE content.categories (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL,
    parent_id   uuid REFERENCES content.categories (id) ON DELETE CASCADE,
    slug        text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    description text,
    icon_url    text,
    sort_order  integer NOT NULL DEFAULT 0,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS DISTINCT FROM id),
    UNIQUE (tenant_id, slug)
);
COMMENT ON COLUMN content.categories.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
CREATE INDEX categories_parent_idx ON content.categories (parent_id, sort_order);

CREATE TABLE content.tags (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    slug       text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    name       text NOT NULL CHECK (btrim(name) <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, slug)
);
COMMENT ON COLUMN content.tags.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
