-- Delivery: conversations (MLS groups) and their member devices, per-device mailboxes with
-- sequence numbers, and the record of accepted sends (idempotency by client message id).
ALTER TABLE devices ADD COLUMN mailbox_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN mailbox_depth BIGINT NOT NULL DEFAULT 0;
-- How long unacknowledged mailbox entries are kept (default 30 days).
ALTER TABLE tenants ADD COLUMN retention_ms BIGINT NOT NULL DEFAULT 2592000000;

CREATE TABLE conversations (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    epoch      BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    device_id       UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id       UUID NOT NULL,
    user_id         UUID NOT NULL,
    joined_at       BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, device_id)
);
CREATE INDEX conversation_members_by_device ON conversation_members (device_id);

CREATE TABLE mailbox (
    device_id        UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq              BIGINT NOT NULL,
    tenant_id        UUID NOT NULL,
    conversation_id  UUID NOT NULL,
    sender_device_id UUID NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('application', 'commit', 'welcome')),
    epoch            BIGINT NOT NULL,
    body             BYTEA NOT NULL,  -- ciphertext only
    sent_at          BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX mailbox_by_expiry ON mailbox (expires_at);

CREATE TABLE sends (
    sender_device_id UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    client_msg_id    UUID NOT NULL,
    tenant_id        UUID NOT NULL,
    conversation_id  UUID NOT NULL,
    epoch            BIGINT NOT NULL,
    recipients       BIGINT NOT NULL,
    sent_at          BIGINT NOT NULL,
    PRIMARY KEY (sender_device_id, client_msg_id)
);
CREATE INDEX sends_by_time ON sends (sent_at);
