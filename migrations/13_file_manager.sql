-- 13_file_manager.sql: files, folders, quotas, multipart upload sessions and cleanup schedules.
--
-- The bytes live in object storage; a row records where (storage_backend + storage_key) and
-- what (size, MIME type, BLAKE3 content hash). Deleting is soft first (deleted_at, the trash),
-- then the cleanup scheduler removes the object and the row.

CREATE TABLE file_mgr.folders (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    user_id    uuid NOT NULL,
    parent_id  uuid REFERENCES file_mgr.folders (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (btrim(name) <> '' AND name !~ '[/\\]' AND length(name) <= 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    CHECK (parent_id IS DISTINCT FROM id)
);
COMMENT ON COLUMN file_mgr.folders.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the file service).';
COMMENT ON COLUMN file_mgr.folders.user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
-- Sibling names are unique per user, the root level (parent_id NULL) included.
CREATE UNIQUE INDEX folders_sibling_name_key ON file_mgr.folders (user_id, parent_id, lower(name)) NULLS NOT DISTINCT
    WHERE deleted_at IS NULL;

CREATE TABLE file_mgr.files (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    user_id         uuid,
    folder_id       uuid REFERENCES file_mgr.folders (id) ON DELETE SET NULL,
    name            text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 255),
    mime_type       text NOT NULL CHECK (mime_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$'),
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    content_hash    bytea CHECK (octet_length(content_hash) = 32),
    storage_backend text NOT NULL DEFAULT 's3' CHECK (storage_backend IN ('s3', 'gcs', 'azure', 'local')),
    storage_bucket  text,
    storage_key     text NOT NULL CHECK (storage_key <> ''),
    purpose         text NOT NULL DEFAULT 'upload'
                        CHECK (purpose IN ('upload', 'aep', 'template_asset', 'thumbnail', 'preview',
                                           'audio', 'voiceover', 'render_output', 'export', 'avatar',
                                           'branding', 'temp')),
    status          text NOT NULL DEFAULT 'available'
                        CHECK (status IN ('pending', 'available', 'quarantined', 'deleted')),
    visibility      text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'tenant', 'public')),
    width           integer CHECK (width > 0),
    height          integer CHECK (height > 0),
    duration_ms     integer CHECK (duration_ms >= 0),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL)),
    UNIQUE (storage_backend, storage_bucket, storage_key)
);
COMMENT ON COLUMN file_mgr.files.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the file service).';
COMMENT ON COLUMN file_mgr.files.user_id IS
    'Soft reference to identity.users.id (no FK: cross-schema); NULL for tenant-owned files (template assets, branding).';
COMMENT ON COLUMN file_mgr.files.content_hash IS 'BLAKE3 of the bytes (32), when known.';
CREATE INDEX files_owner_folder_idx ON file_mgr.files (tenant_id, user_id, folder_id, created_at DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX files_expires_idx ON file_mgr.files (expires_at) WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX files_trash_idx ON file_mgr.files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_content_hash_idx ON file_mgr.files (content_hash) WHERE content_hash IS NOT NULL;

-- Storage quotas per tenant (user_id NULL) or per user within a tenant.
CREATE TABLE file_mgr.quotas (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL,
    user_id             uuid,
    limit_bytes         bigint NOT NULL CHECK (limit_bytes >= 0),
    used_bytes          bigint NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    file_count          bigint NOT NULL DEFAULT 0 CHECK (file_count >= 0),
    max_file_size_bytes bigint CHECK (max_file_size_bytes > 0),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, user_id)
);
COMMENT ON TABLE file_mgr.quotas IS
    'used_bytes may exceed limit_bytes after a downgrade: new uploads are refused, nothing is deleted.';
COMMENT ON COLUMN file_mgr.quotas.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the file service).';
COMMENT ON COLUMN file_mgr.quotas.user_id IS
    'Soft reference to identity.users.id (no FK: cross-schema); NULL = the tenant-wide quota.';

-- Multipart uploads (S3-style): a session, then parts 1..10000, then complete -> file_id.
CREATE TABLE file_mgr.upload_sessions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    user_id            uuid,
    folder_id          uuid REFERENCES file_mgr.folders (id) ON DELETE SET NULL,
    file_id            uuid REFERENCES file_mgr.files (id) ON DELETE SET NULL,
    file_name          text NOT NULL CHECK (btrim(file_name) <> '' AND length(file_name) <= 255),
    mime_type          text NOT NULL CHECK (mime_type ~ '^[a-z]+/[A-Za-z0-9.+_-]+$'),
    purpose            text NOT NULL DEFAULT 'upload',
    total_size_bytes   bigint NOT NULL CHECK (total_size_bytes > 0),
    part_size_bytes    bigint NOT NULL CHECK (part_size_bytes > 0),
    total_parts        integer NOT NULL CHECK (total_parts BETWEEN 1 AND 10000),
    expected_hash      bytea CHECK (octet_length(expected_hash) = 32),
    storage_backend    text NOT NULL DEFAULT 's3' CHECK (storage_backend IN ('s3', 'gcs', 'azure', 'local')),
    storage_bucket     text,
    storage_key        text NOT NULL CHECK (storage_key <> ''),
    provider_upload_id text,
    status             text NOT NULL DEFAULT 'initiated'
                           CHECK (status IN ('initiated', 'uploading', 'completing', 'completed', 'aborted', 'expired')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    completed_at       timestamptz,
    CHECK (total_parts = ((total_size_bytes + part_size_bytes - 1) / part_size_bytes)),
    CHECK (expires_at > created_at),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL AND file_id IS NOT NULL))
);
COMMENT ON COLUMN file_mgr.upload_sessions.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the file service).';
COMMENT ON COLUMN file_mgr.upload_sessions.user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
COMMENT ON COLUMN file_mgr.upload_sessions.provider_upload_id IS 'Object store multipart upload id (S3 UploadId).';
CREATE INDEX upload_sessions_open_expires_idx ON file_mgr.upload_sessions (expires_at)
    WHERE status IN ('initiated', 'uploading', 'completing');
CREATE INDEX upload_sessions_user_idx ON file_mgr.upload_sessions (tenant_id, user_id, created_at DESC);

CREATE TABLE file_mgr.upload_parts (
    upload_session_id uuid NOT NULL REFERENCES file_mgr.upload_sessions (id) ON DELETE CASCADE,
    part_number       integer NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0),
    etag              text NOT NULL CHECK (etag <> ''),
    checksum          bytea,
    uploaded_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_session_id, part_number)
);

-- What the cleanup scheduler deletes, how old, and when it next runs. A worker claims a due
-- schedule by setting locked_until (a lease), runs it, and sets next_run_at.
CREATE TABLE file_mgr.cleanup_schedules (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    name               text NOT NULL CHECK (btrim(name) <> ''),
    target             text NOT NULL CHECK (target IN ('render_outputs', 'exports', 'temp_files', 'trash',
                                                       'expired_files', 'stale_uploads')),
    retention          interval NOT NULL CHECK (retention > interval '0'),
    run_every          interval NOT NULL DEFAULT interval '1 day' CHECK (run_every >= interval '1 minute'),
    batch_size         integer NOT NULL DEFAULT 1000 CHECK (batch_size BETWEEN 1 AND 100000),
    enabled            boolean NOT NULL DEFAULT true,
    next_run_at        timestamptz NOT NULL DEFAULT now(),
    locked_until       timestamptz,
    last_run_at        timestamptz,
    last_status        text CHECK (last_status IN ('succeeded', 'failed')),
    last_deleted_count bigint CHECK (last_deleted_count >= 0),
    last_freed_bytes   bigint CHECK (last_freed_bytes >= 0),
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (last_status IS DISTINCT FROM 'failed' OR last_error IS NOT NULL),
    UNIQUE (tenant_id, name)
);
COMMENT ON COLUMN file_mgr.cleanup_schedules.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema); the default tenant''s schedules are platform-wide.';
CREATE INDEX cleanup_schedules_due_idx ON file_mgr.cleanup_schedules (next_run_at) WHERE enabled;
