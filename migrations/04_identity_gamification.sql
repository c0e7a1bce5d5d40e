-- 04_identity_gamification.sql: achievements, points, gifts.
--
-- identity.earned_gifts.notification_id points at the notification that announced the gift.
-- Its foreign key to notification.notifications.id is the one intentional cross-schema FK; it
-- is added in 14_notification.sql, once that table exists.

CREATE TABLE identity.achievements (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_]{1,62}$'),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    description text,
    icon_url    text,
    points      integer NOT NULL DEFAULT 0 CHECK (points >= 0),
    criteria    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(criteria) = 'object'),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identity.user_achievements (
    user_id        uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    achievement_id uuid NOT NULL REFERENCES identity.achievements (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    earned_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, achievement_id)
);

-- Running totals per user (kept by the identity service from point_transactions).
CREATE TABLE identity.user_gamification (
    user_id            uuid PRIMARY KEY REFERENCES identity.users (id) ON DELETE CASCADE,
    tenant_id          uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    points_balance     bigint NOT NULL DEFAULT 0 CHECK (points_balance >= 0),
    lifetime_points    bigint NOT NULL DEFAULT 0 CHECK (lifetime_points >= 0),
    level              integer NOT NULL DEFAULT 1 CHECK (level >= 1),
    streak_days        integer NOT NULL DEFAULT 0 CHECK (streak_days >= 0),
    last_activity_date date,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (points_balance <= lifetime_points)
);

CREATE TABLE identity.point_transactions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    delta        integer NOT NULL CHECK (delta <> 0),
    reason       text NOT NULL CHECK (reason IN ('render_completed', 'achievement', 'streak', 'referral',
                                                 'gift', 'redemption', 'admin_adjustment')),
    reference_id uuid,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN identity.point_transactions.reference_id IS
    'Soft reference whose target depends on reason: render.render_jobs.id (render_completed), '
    'identity.achievements.id (achievement), identity.earned_gifts.id (gift); no FK.';
CREATE INDEX point_transactions_user_created_idx ON identity.point_transactions (user_id, created_at DESC);

-- Gift catalog.
CREATE TABLE identity.gifts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_]{1,62}$'),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    description text,
    kind        text NOT NULL CHECK (kind IN ('render_minutes', 'premium_days', 'template_unlock',
                                             'storage_bytes', 'points', 'badge')),
    amount      bigint NOT NULL DEFAULT 1 CHECK (amount > 0),
    valid_days  integer CHECK (valid_days > 0),
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identity.earned_gifts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    gift_id         uuid NOT NULL REFERENCES identity.gifts (id) ON DELETE RESTRICT,
    source          text NOT NULL CHECK (source IN ('achievement', 'streak', 'referral', 'promotion', 'admin')),
    achievement_id  uuid REFERENCES identity.achievements (id) ON DELETE SET NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'claimed', 'expired', 'revoked')),
    -- FK to notification.notifications(id) ON DELETE SET NULL: added in 14_notification.sql.
    notification_id uuid,
    earned_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    expires_at      timestamptz,
    CHECK ((status = 'claimed') = (claimed_at IS NOT NULL)),
    CHECK (expires_at IS NULL OR expires_at > earned_at)
);
COMMENT ON COLUMN identity.earned_gifts.notification_id IS
    'Hard reference (the one intentional cross-schema FK) to notification.notifications.id: '
    'the notification announcing the gift; NULL until sent or after the notification is deleted.';
CREATE INDEX earned_gifts_user_idx ON identity.earned_gifts (user_id, earned_at DESC);
CREATE INDEX earned_gifts_notification_idx ON identity.earned_gifts (notification_id) WHERE notification_id IS NOT NULL;
