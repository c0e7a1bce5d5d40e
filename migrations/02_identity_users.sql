-- 02_identity_users.sql: users, authentication (sessions, rotating refresh tokens, external
-- logins, one-time tokens), MFA factors and PWA push subscriptions.
--
-- Secrets are never stored in plaintext: passwords as argon2id PHC strings, tokens as SHA-256
-- digests (32 bytes), TOTP secrets encrypted by the identity service.

CREATE TABLE identity.users (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE RESTRICT,
    email             text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    email_verified_at timestamptz,
    password_hash     text CHECK (password_hash ~ '^\$argon2id\$'),
    display_name      text CHECK (btrim(display_name) <> ''),
    avatar_file_id    uuid,
    phone_e164        text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    phone_verified_at timestamptz,
    telegram_chat_id  bigint,
    locale            text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    time_zone         text NOT NULL DEFAULT 'UTC',
    role              text NOT NULL DEFAULT 'user'
                          CHECK (role IN ('user', 'tenant_admin', 'support', 'admin')),
    status            text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('pending', 'active', 'suspended', 'deleted')),
    mfa_enabled       boolean NOT NULL DEFAULT false,
    last_login_at     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
COMMENT ON COLUMN identity.users.avatar_file_id IS
    'Soft reference to file_mgr.files.id (no FK: cross-schema; the file service owns the file).';
COMMENT ON COLUMN identity.users.password_hash IS 'argon2id PHC string; NULL for accounts that only sign in externally.';
-- One account per e-mail address within a tenant (resellers' users are separate accounts).
CREATE UNIQUE INDEX users_tenant_email_key ON identity.users (tenant_id, lower(email));
CREATE INDEX users_tenant_created_idx ON identity.users (tenant_id, created_at DESC);
CREATE UNIQUE INDEX users_telegram_chat_key ON identity.users (telegram_chat_id) WHERE telegram_chat_id IS NOT NULL;

ALTER TABLE identity.tenant_api_keys
    ADD CONSTRAINT tenant_api_keys_created_by_user_id_fkey
    FOREIGN KEY (created_by_user_id) REFERENCES identity.users (id) ON DELETE SET NULL;

-- Sign-in through an external provider (Google, Apple, Telegram, ...).
CREATE TABLE identity.external_logins (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    provider         text NOT NULL CHECK (provider IN ('google', 'apple', 'github', 'telegram', 'microsoft')),
    provider_user_id text NOT NULL CHECK (provider_user_id <> ''),
    email            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    UNIQUE (provider, provider_user_id)
);
CREATE INDEX external_logins_user_idx ON identity.external_logins (user_id);

CREATE TABLE identity.auth_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    mfa_verified_at timestamptz,
    revoked_at      timestamptz,
    revoke_reason   text CHECK (revoke_reason IN ('logout', 'expired', 'password_changed', 'admin', 'suspicious')),
    client_ip       inet,
    user_agent      text,
    CHECK (expires_at > created_at),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE INDEX auth_sessions_user_active_idx ON identity.auth_sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX auth_sessions_expires_idx ON identity.auth_sessions (expires_at) WHERE revoked_at IS NULL;

-- Rotating refresh tokens: using one marks it used and issues its successor; reuse of a used
-- token revokes the whole session (replay detection).
CREATE TABLE identity.refresh_tokens (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id     uuid NOT NULL REFERENCES identity.auth_sessions (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    issued_at      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    revoked_at     timestamptz,
    replaced_by_id uuid REFERENCES identity.refresh_tokens (id) ON DELETE SET NULL,
    CHECK (expires_at > issued_at),
    CHECK (replaced_by_id IS NULL OR used_at IS NOT NULL)
);
COMMENT ON COLUMN identity.refresh_tokens.token_hash IS 'SHA-256 of the refresh token; the token itself is never stored.';
CREATE INDEX refresh_tokens_session_idx ON identity.refresh_tokens (session_id);

-- E-mail verification, password reset, magic-link and phone verification codes.
CREATE TABLE identity.one_time_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('email_verification', 'password_reset', 'magic_link', 'phone_verification')),
    token_hash  bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    attempts    smallint NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 10),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX one_time_tokens_user_idx ON identity.one_time_tokens (user_id, purpose) WHERE consumed_at IS NULL;

CREATE TABLE identity.mfa_factors (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    kind                   text NOT NULL CHECK (kind IN ('totp', 'webauthn', 'sms', 'recovery_codes')),
    label                  text,
    status                 text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'disabled')),
    -- totp: the shared secret, encrypted by the identity service.
    secret_ciphertext      bytea,
    -- webauthn: the credential registered by the authenticator.
    webauthn_credential_id bytea UNIQUE,
    webauthn_public_key    bytea,
    sign_count             bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    -- recovery_codes: SHA-256 of each unused code.
    recovery_code_hashes   bytea[],
    created_at             timestamptz NOT NULL DEFAULT now(),
    confirmed_at           timestamptz,
    last_used_at           timestamptz,
    CHECK (kind <> 'totp' OR secret_ciphertext IS NOT NULL),
    CHECK (kind <> 'webauthn' OR (webauthn_credential_id IS NOT NULL AND webauthn_public_key IS NOT NULL)),
    CHECK (kind <> 'recovery_codes' OR recovery_code_hashes IS NOT NULL),
    CHECK (status <> 'active' OR confirmed_at IS NOT NULL)
);
CREATE INDEX mfa_factors_user_idx ON identity.mfa_factors (user_id) WHERE status = 'active';

-- Web Push (PWA) subscriptions, one per browser/device.
CREATE TABLE identity.push_subscriptions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    endpoint        text NOT NULL UNIQUE CHECK (endpoint ~ '^https://'),
    p256dh_key      text NOT NULL CHECK (p256dh_key <> ''),
    auth_key        text NOT NULL CHECK (auth_key <> ''),
    user_agent      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    failure_count   integer NOT NULL DEFAULT 0 CHECK (failure_count >= 0),
    expires_at      timestamptz,
    revoked_at      timestamptz
);
COMMENT ON COLUMN identity.push_subscriptions.p256dh_key IS 'Browser public key (base64url) from PushSubscription.getKey(''p256dh'').';
CREATE INDEX push_subscriptions_user_idx ON identity.push_subscriptions (user_id) WHERE revoked_at IS NULL;
