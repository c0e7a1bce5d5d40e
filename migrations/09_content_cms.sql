-- 09_content_cms.sql: blog posts, CMS pages and FAQ entries, per tenant and locale.

CREATE TABLE content.blog_posts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    locale          text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,199}$'),
    title           text NOT NULL CHECK (btrim(title) <> ''),
    excerpt         text,
    body_markdown   text NOT NULL DEFAULT '',
    cover_file_id   uuid,
    author_user_id  uuid,
    category_id     uuid REFERENCES content.categories (id) ON DELETE SET NULL,
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'scheduled', 'published', 'archived')),
    scheduled_at    timestamptz,
    published_at    timestamptz,
    seo_title       text,
    seo_description text,
    view_count      bigint NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL),
    CHECK (status <> 'published' OR published_at IS NOT NULL),
    UNIQUE (tenant_id, locale, slug)
);
COMMENT ON COLUMN content.blog_posts.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.blog_posts.cover_file_id IS 'Soft reference to file_mgr.files.id (no FK: cross-schema).';
COMMENT ON COLUMN content.blog_posts.author_user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
CREATE INDEX blog_posts_published_idx ON content.blog_posts (tenant_id, locale, published_at DESC)
    WHERE status = 'published';
CREATE INDEX blog_posts_scheduled_idx ON content.blog_posts (scheduled_at) WHERE status = 'scheduled';

CREATE TABLE content.blog_post_tags (
    post_id uuid NOT NULL REFERENCES content.blog_posts (id) ON DELETE CASCADE,
    tag_id  uuid NOT NULL REFERENCES content.tags (id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, tag_id)
);
CREATE INDEX blog_post_tags_tag_idx ON content.blog_post_tags (tag_id);

-- Static pages (about, terms, landing pages) built from blocks.
CREATE TABLE content.cms_pages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    locale          text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9/-]{0,199}$'),
    title           text NOT NULL CHECK (btrim(title) <> ''),
    blocks          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(blocks) = 'array'),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    show_in_footer  boolean NOT NULL DEFAULT false,
    seo_title       text,
    seo_description text,
    updated_by_user_id uuid,
    published_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'published' OR published_at IS NOT NULL),
    UNIQUE (tenant_id, locale, slug)
);
COMMENT ON COLUMN content.cms_pages.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
COMMENT ON COLUMN content.cms_pages.updated_by_user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';

CREATE TABLE content.faq_items (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    locale     text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    section    text NOT NULL DEFAULT 'general' CHECK (btrim(section) <> ''),
    question   text NOT NULL CHECK (btrim(question) <> ''),
    answer     text NOT NULL CHECK (btrim(answer) <> ''),
    position   integer NOT NULL DEFAULT 0 CHECK (position >= 0),
    is_active  boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN content.faq_items.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the content service).';
CREATE INDEX faq_items_tenant_idx ON content.faq_items (tenant_id, locale, section, position) WHERE is_active;
