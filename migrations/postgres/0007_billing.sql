-- Credits: wallets (the tenant's, and each user's when users pay), an append-only ledger,
-- the price table, credit packs, Stripe Checkout sessions and events, the meter-event
-- outbox of postpaid tenants, and tenant webhooks with their delivery log.
ALTER TABLE tenants ADD COLUMN users_pay BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tenants ADD COLUMN postpaid BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tenants ADD COLUMN low_balance_threshold BIGINT;
ALTER TABLE tenants ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE tenants ADD COLUMN meter_event_name TEXT;

-- A tenant's wallet has the tenant's id; a user's wallet has the user's id.
CREATE TABLE wallets (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    created_at BIGINT NOT NULL
);
CREATE INDEX wallets_by_tenant ON wallets (tenant_id);

CREATE TABLE ledger_entries (
    id              BIGSERIAL PRIMARY KEY,
    tenant_id       UUID NOT NULL,
    wallet_id       UUID NOT NULL,
    delta           BIGINT NOT NULL,
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    kind            TEXT NOT NULL,
    reason          TEXT,
    actor           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    reference       TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX ledger_by_wallet ON ledger_entries (tenant_id, wallet_id, id);
-- Append-only: rows are never changed or removed.
CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END $$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();

CREATE TABLE prices (
    tenant_id         UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    text_message      BIGINT NOT NULL,
    attachment_small  BIGINT NOT NULL,
    attachment_medium BIGINT NOT NULL,
    attachment_large  BIGINT NOT NULL,
    edit_message      BIGINT NOT NULL,
    delete_message    BIGINT NOT NULL,
    call_minute       BIGINT NOT NULL,
    invite_redemption BIGINT NOT NULL
);

CREATE TABLE credit_packs (
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    credits   BIGINT NOT NULL,
    amount    BIGINT NOT NULL,
    currency  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE checkout_sessions (
    id               TEXT PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    wallet_id        UUID NOT NULL,
    pack_id          TEXT NOT NULL,
    credits          BIGINT NOT NULL,
    amount           BIGINT NOT NULL,
    payment_intent   TEXT,
    completed_at     BIGINT,
    refunded_credits BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL
);
CREATE INDEX checkout_sessions_by_payment_intent ON checkout_sessions (payment_intent);

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    signed_at   BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);

CREATE TABLE meter_outbox (
    id              BIGSERIAL PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    customer_id     TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    value           BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    batch_id        TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    failed          TEXT
);
CREATE INDEX meter_outbox_due ON meter_outbox (sent_at, next_attempt_at);

CREATE TABLE tenant_webhooks (
    tenant_id  UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivered_at, next_attempt_at);
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, created_at);
