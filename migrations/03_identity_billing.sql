-- 03_identity_billing.sql: plans, subscriptions and payments.
--
-- Money is integer minor units (cents) with an ISO 4217 currency code. Plans belong to a tenant:
-- FlatRender's own plans to the default tenant, resellers may define theirs.

CREATE TABLE identity.plans (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    code                   text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{1,62}$'),
    name                   text NOT NULL CHECK (btrim(name) <> ''),
    description            text,
    price_cents            bigint NOT NULL CHECK (price_cents >= 0),
    currency               text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    billing_interval       text NOT NULL CHECK (billing_interval IN ('month', 'year', 'one_time')),
    trial_days             integer NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    -- Limits; NULL means unlimited.
    monthly_render_minutes integer CHECK (monthly_render_minutes >= 0),
    max_video_seconds      integer CHECK (max_video_seconds > 0),
    max_resolution         text NOT NULL DEFAULT '1080p' CHECK (max_resolution IN ('480p', '720p', '1080p', '4k')),
    storage_quota_bytes    bigint CHECK (storage_quota_bytes >= 0),
    concurrent_renders     integer NOT NULL DEFAULT 1 CHECK (concurrent_renders > 0),
    render_priority        smallint NOT NULL DEFAULT 0 CHECK (render_priority BETWEEN 0 AND 100),
    watermark              boolean NOT NULL DEFAULT true,
    features               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(features) = 'object'),
    is_active              boolean NOT NULL DEFAULT true,
    sort_order             integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, code)
);

CREATE TABLE identity.subscriptions (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id                  uuid NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    plan_id                  uuid NOT NULL REFERENCES identity.plans (id) ON DELETE RESTRICT,
    status                   text NOT NULL DEFAULT 'active'
                                 CHECK (status IN ('trialing', 'active', 'past_due', 'canceled', 'expired')),
    current_period_start     timestamptz NOT NULL,
    current_period_end       timestamptz NOT NULL,
    trial_ends_at            timestamptz,
    cancel_at_period_end     boolean NOT NULL DEFAULT false,
    canceled_at              timestamptz,
    provider                 text NOT NULL CHECK (provider IN ('stripe', 'paypal', 'zarinpal', 'manual')),
    provider_subscription_id text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CHECK (current_period_end > current_period_start),
    CHECK (status <> 'canceled' OR canceled_at IS NOT NULL),
    UNIQUE (provider, provider_subscription_id)
);
-- At most one live subscription per user.
CREATE UNIQUE INDEX subscriptions_user_live_key ON identity.subscriptions (user_id)
    WHERE status IN ('trialing', 'active', 'past_due');
CREATE INDEX subscriptions_period_end_idx ON identity.subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due');

CREATE TABLE identity.payments (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES identity.tenants (id) ON DELETE CASCADE,
    user_id             uuid NOT NULL REFERENCES identity.users (id) ON DELETE RESTRICT,
    subscription_id     uuid REFERENCES identity.subscriptions (id) ON DELETE SET NULL,
    plan_id             uuid REFERENCES identity.plans (id) ON DELETE SET NULL,
    amount_cents        bigint NOT NULL CHECK (amount_cents > 0),
    refunded_cents      bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    currency            text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status              text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded',
                                              'partially_refunded', 'canceled')),
    provider            text NOT NULL CHECK (provider IN ('stripe', 'paypal', 'zarinpal', 'manual')),
    provider_payment_id text,
    description         text,
    failure_reason      text,
    paid_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (refunded_cents <= amount_cents),
    CHECK (status NOT IN ('succeeded', 'refunded', 'partially_refunded') OR paid_at IS NOT NULL),
    UNIQUE (provider, provider_payment_id)
);
CREATE INDEX payments_user_created_idx ON identity.payments (user_id, created_at DESC);
CREATE INDEX payments_tenant_created_idx ON identity.payments (tenant_id, created_at DESC);
