-- Credits (SQLite: UUIDs are BLOBs, times Unix ms): wallets (the tenant's, and each user's when users pay), an append-only ledger,
-- the price table, credit packs, Stripe Checkout sessions and events, the meter-event
-- outbox of postpaid tenants, and tenant webhooks with their delivery log.
ALTER TABLE tenants ADD COLUMN users_pay INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN postpaid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN low_balance_threshold INTEGER;
ALTER TABLE tenants ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE tenants ADD COLUMN meter_event_name TEXT;

-- A tenant's wallet has the tenant's id; a user's wallet has the user's id.
CREATE TABLE wallets (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX wallets_by_tenant ON wallets (tenant_id);

CREATE TABLE ledger_entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       BLOB NOT NULL,
    wallet_id       BLOB NOT NULL,
    delta           INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL CHECK (balance_after >= 0),
    kind            TEXT NOT NULL,
    reason          TEXT,
    actor           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    reference       TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
) STRICT;
CREATE INDEX ledger_by_wallet ON ledger_entries (tenant_id, wallet_id, id);
-- Append-only: rows are never changed or removed.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;

CREATE TABLE prices (
    tenant_id         BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    text_message      INTEGER NOT NULL,
    attachment_small  INTEGER NOT NULL,
    attachment_medium INTEGER NOT NULL,
    attachment_large  INTEGER NOT NULL,
    edit_message      INTEGER NOT NULL,
    delete_message    INTEGER NOT NULL,
    call_minute       INTEGER NOT NULL,
    invite_redemption INTEGER NOT NULL
) STRICT;

CREATE TABLE credit_packs (
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id        TEXT NOT NULL,
    name      TEXT NOT NULL,
    credits   INTEGER NOT NULL,
    amount    INTEGER NOT NULL,
    currency  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;

CREATE TABLE checkout_sessions (
    id               TEXT PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    wallet_id        BLOB NOT NULL,
    pack_id          TEXT NOT NULL,
    credits          INTEGER NOT NULL,
    amount           INTEGER NOT NULL,
    payment_intent   TEXT,
    completed_at     INTEGER,
    refunded_credits INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX checkout_sessions_by_payment_intent ON checkout_sessions (payment_intent);

CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY NOT NULL,
    type        TEXT NOT NULL,
    signed_at   INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

CREATE TABLE meter_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    customer_id     TEXT NOT NULL,
    event_name      TEXT NOT NULL,
    value           INTEGER NOT NULL,
    occurred_at     INTEGER NOT NULL,
    batch_id        TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    failed          TEXT
) STRICT;
CREATE INDEX meter_outbox_due ON meter_outbox (sent_at, next_attempt_at);

CREATE TABLE tenant_webhooks (
    tenant_id  BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivered_at, next_attempt_at);
CREATE INDEX webhook_deliveries_by_tenant ON webhook_deliveries (tenant_id, created_at);
