-- 14_notification.sql: notifications, per-user/per-channel preferences, per-channel deliveries,
-- message templates, and the one intentional cross-schema foreign key.
--
-- Channels: in_app, push (Web Push to identity.push_subscriptions), email, sms, telegram.
-- Categories (for preferences): render, billing, account, gamification, marketing, system.

CREATE TABLE notification.notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    user_id    uuid NOT NULL,
    kind       text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    category   text NOT NULL CHECK (category IN ('render', 'billing', 'account', 'gamification', 'marketing', 'system')),
    priority   text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    title      text NOT NULL CHECK (btrim(title) <> ''),
    body       text NOT NULL DEFAULT '',
    action_url text,
    image_url  text,
    data       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    dedupe_key text,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at    timestamptz,
    archived_at timestamptz,
    expires_at timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
COMMENT ON COLUMN notification.notifications.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the notification service).';
COMMENT ON COLUMN notification.notifications.user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';
COMMENT ON COLUMN notification.notifications.kind IS 'Event name, e.g. render.completed, gift.earned, payment.failed.';
COMMENT ON COLUMN notification.notifications.dedupe_key IS 'Producer-chosen key; a second notification with the same key for the user is refused.';
CREATE INDEX notifications_user_unread_idx ON notification.notifications (user_id, created_at DESC)
    WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_user_created_idx ON notification.notifications (user_id, created_at DESC);
CREATE INDEX notifications_tenant_created_idx ON notification.notifications (tenant_id, created_at DESC);
CREATE INDEX notifications_expires_idx ON notification.notifications (expires_at) WHERE expires_at IS NOT NULL;
CREATE UNIQUE INDEX notifications_dedupe_key ON notification.notifications (user_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

-- One row per user and channel; no row means the channel's default (enabled, nothing muted).
CREATE TABLE notification.notification_preferences (
    tenant_id         uuid NOT NULL,
    user_id           uuid NOT NULL,
    channel           text NOT NULL CHECK (channel IN ('in_app', 'push', 'email', 'sms', 'telegram')),
    enabled           boolean NOT NULL DEFAULT true,
    muted_categories  text[] NOT NULL DEFAULT '{}'
                          CHECK (muted_categories <@ ARRAY['render', 'billing', 'account', 'gamification',
                                                           'marketing', 'system']::text[]),
    -- Channel address override (e-mail address, E.164 phone, telegram chat id); NULL = profile's.
    destination       text,
    quiet_hours_start time,
    quiet_hours_end   time,
    time_zone         text NOT NULL DEFAULT 'UTC',
    digest            text NOT NULL DEFAULT 'immediate' CHECK (digest IN ('immediate', 'hourly', 'daily')),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, channel),
    CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL))
);
COMMENT ON COLUMN notification.notification_preferences.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the notification service).';
COMMENT ON COLUMN notification.notification_preferences.user_id IS 'Soft reference to identity.users.id (no FK: cross-schema).';

-- One row per notification, channel and destination; retried with backoff until max_attempts.
CREATE TABLE notification.deliveries (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    notification_id      uuid NOT NULL REFERENCES notification.notifications (id) ON DELETE CASCADE,
    tenant_id            uuid NOT NULL,
    channel              text NOT NULL CHECK (channel IN ('in_app', 'push', 'email', 'sms', 'telegram')),
    destination          text,
    push_subscription_id uuid,
    status               text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed', 'skipped')),
    provider             text,
    provider_message_id  text,
    attempts             integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts         integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    next_attempt_at      timestamptz,
    last_error           text,
    sent_at              timestamptz,
    delivered_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (attempts <= max_attempts),
    CHECK (channel = 'in_app' OR destination IS NOT NULL OR push_subscription_id IS NOT NULL),
    CHECK (push_subscription_id IS NULL OR channel = 'push'),
    CHECK (status NOT IN ('sent', 'delivered') OR sent_at IS NOT NULL),
    CHECK (status <> 'delivered' OR delivered_at IS NOT NULL),
    UNIQUE NULLS NOT DISTINCT (notification_id, channel, destination, push_subscription_id)
);
COMMENT ON COLUMN notification.deliveries.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the notification service).';
COMMENT ON COLUMN notification.deliveries.push_subscription_id IS
    'Soft reference to identity.push_subscriptions.id (no FK: cross-schema), for channel push.';
CREATE INDEX deliveries_due_idx ON notification.deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_notification_idx ON notification.deliveries (notification_id);

-- Message templates per event kind, channel and locale; a tenant's row overrides the default
-- tenant's.
CREATE TABLE notification.message_templates (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    kind       text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    channel    text NOT NULL CHECK (channel IN ('in_app', 'push', 'email', 'sms', 'telegram')),
    locale     text NOT NULL DEFAULT 'en' CHECK (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
    subject    text,
    body       text NOT NULL CHECK (body <> ''),
    is_active  boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (channel <> 'email' OR subject IS NOT NULL),
    UNIQUE (tenant_id, kind, channel, locale)
);
COMMENT ON COLUMN notification.message_templates.tenant_id IS
    'Soft reference to identity.tenants.id (no FK: cross-schema; enforced by the notification service).';

-- The one intentional cross-schema FK (see the seed): the notification that announced a gift.
ALTER TABLE identity.earned_gifts
    ADD CONSTRAINT earned_gifts_notification_id_fkey
    FOREIGN KEY (notification_id) REFERENCES notification.notifications (id) ON DELETE SET NULL;
