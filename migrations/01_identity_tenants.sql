-- 01_identity_tenants.sql: multi-tenancy root, white-label branding, reseller API keys,
-- webhooks, usage metering and the (monthly partitioned) API request log.
--
-- identity.tenants is the root of multi-tenancy: every user, project, render job, file and
-- notification row carries a NOT NULL tenant_id. The default FlatRender tenant has the fixed id
-- 00000000-0000-0000-0000-000000000001. Resellers (B2B API customers) are tenants too.

CREATE TABLE identity.tenants (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                   text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name                   text NOT NULL CHECK (btrim(name) <> ''),
    kind                   text NOT NULL DEFAULT 'reseller'
                               CHECK (kind IN ('platform', 'reseller', 'enterprise')),
    status                 text NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'suspended', 'closed')),
    contact_email          text CHECK (contact_email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    country_code           text CHECK (country_code ~ '^[A-Z]{2}$'),
    -- Render-farm limits (NULL = plan default / unlimited).
    max_concurrent_renders integer CHECK (max_concurrent_renders > 0),
    monthly_render_minutes integer CHECK (monthly_render_minutes >= 0),
    settings               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    suspended_at           timestamptz,
    closed_at              timestamptz,
    CHECK (status <> 'suspended' OR suspended_at IS NOT NULL),
    CHECK (status <> 'closed' OR closed_at IS NOT NULL)
);
COMMENT ON TABLE identity.tenants IS 'Root of multi-tenancy; the default FlatRender tenant is 00000000-0000-0000-0000-000000000001.';

INSERT INTO identity.tenants (id, slug, name, kind)
VALUES ('00000000-0000-0000-0000-000000000001', 'flatrender', 'FlatRender', 'platform')
ON CONFLICT DO NOTHING;

CREATE TABLE identity.tenant_branding (
    tenant_id                uuid PRIMARY KEY REFERENCES identity.tenants (id) ON DELETE CASCADE,
    display_name             text CHECK (btrim(display_name) <> ''),
    logo_file_id             uuid,
    logo_url                 text CHECK (logo_url ~ '^https://'),
    favicon_url              text CHECK (favicon_url ~ '^https://'),
    primary_color            text CHECK (primary_color ~ '^#[0-9a-fA-F]{6}$'),
    secondary_color          text CHECK (secondary_color ~ '^#[0-9a-fA-F]{6}$'),
    custom_domain            text UNIQUE CHECK (custom_domain ~ '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$'),
    email_from_name          text,
    email_from_address       text CHECK (email_from_address ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    support_url              text CHECK (support_url ~ '^https?://'),
    hide_flatrender_branding boolean NOT NULL DEFAULT false,
    custom_css               text,
    updated_at               timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN identity.tenant_branding.logo_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema; the file service owns the file).';

-- API keys are never stored in plaintext. The full key ("fr_live_<prefix><secret>") is shown
-- once at creation; we keep its SHA-256 (key_hash) for lookup and a short non-secret prefix so
-- users can tell keys apart in the dashboard.
CREATE TABLE identity.tenant_api_keys (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    name               text NOT NULL CHECK (btrim(name) <> ''),
    key_prefix         text NOT NULL UNIQUE CHECK (key_prefix ~ '^[A-Za-z0-9_]{6,24}$'),
    key_hash           bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    scopes             text[] NOT NULL DEFAULT '{}'
                           CHECK (scopes <@ ARRAY['render:read', 'render:write', 'templates:read',
                                                  'files:read', 'files:write', 'webhooks:manage',
                                                  'usage:read']::text[]),
    environment        text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    created_by_user_id uuid, -- FK to identity.users added in 02_identity_users.sql
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz,
    expires_at         timestamptz,
    revoked_at         timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
COMMENT ON COLUMN identity.tenant_api_keys.key_hash IS 'SHA-256 of the full API key (32 bytes); the plaintext key is never stored.';
COMMENT ON COLUMN identity.tenant_api_keys.key_prefix IS 'Non-secret leading characters of the key, shown in dashboards and logs.';
CREATE INDEX tenant_api_keys_tenant_idx ON identity.tenant_api_keys (tenant_id) WHERE revoked_at IS NULL;

CREATE TABLE identity.tenant_webhooks (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    url               text NOT NULL CHECK (url ~ '^https://'),
    description       text,
    events            text[] NOT NULL CHECK (cardinality(events) > 0),
    -- HMAC signing secret, encrypted by the identity service (it must be recoverable to sign).
    secret_ciphertext bytea NOT NULL CHECK (octet_length(secret_ciphertext) > 0),
    is_active         boolean NOT NULL DEFAULT true,
    failure_count     integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    last_delivery_at  timestamptz,
    last_status_code  smallint CHECK (last_status_code BETWEEN 100 AND 599),
    disabled_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, url)
);
COMMENT ON COLUMN identity.tenant_webhooks.events IS 'Event names, e.g. render.completed, render.failed, export.ready.';

CREATE TABLE identity.tenant_usage_daily (
    tenant_id       uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    usage_date      date NOT NULL,
    render_jobs     integer NOT NULL DEFAULT 0 CHECK (render_jobs >= 0),
    render_seconds  bigint NOT NULL DEFAULT 0 CHECK (render_seconds >= 0),
    frames_rendered bigint NOT NULL DEFAULT 0 CHECK (frames_rendered >= 0),
    output_bytes    bigint NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
    storage_bytes   bigint NOT NULL DEFAULT 0 CHECK (storage_bytes >= 0),
    api_requests    bigint NOT NULL DEFAULT 0 CHECK (api_requests >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, usage_date)
);

-- Monthly partitioned (see 00_setup.sql): one partition per UTC month plus a default one.
CREATE TABLE identity.tenant_api_request_logs (
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    api_key_id       uuid REFERENCES identity.tenant_api_keys (id) ON DELETE SET NULL,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    method           text NOT NULL CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS')),
    path             text NOT NULL CHECK (path ~ '^/'),
    status_code      smallint NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    duration_ms      integer NOT NULL CHECK (duration_ms >= 0),
    request_bytes    bigint NOT NULL DEFAULT 0 CHECK (request_bytes >= 0),
    response_bytes   bigint NOT NULL DEFAULT 0 CHECK (response_bytes >= 0),
    client_ip        inet,
    user_agent       text,
    request_id       text,
    error_code       text,
    PRIMARY KEY (id, requested_at)
) PARTITION BY RANGE (requested_at);
CREATE INDEX tenant_api_request_logs_tenant_time_idx ON identity.tenant_api_request_logs (tenant_id, requested_at DESC);
CREATE INDEX tenant_api_request_logs_key_time_idx ON identity.tenant_api_request_logs (api_key_id, requested_at DESC)
    WHERE api_key_id IS NOT NULL;

CREATE TABLE identity.tenant_api_request_logs_default PARTITION OF identity.tenant_api_request_logs DEFAULT;
SELECT public.ensure_monthly_partitions('identity.tenant_api_request_logs', DATE '2026-01-01', 1);
