-- Delivery (SQLite: UUIDs are BLOBs, times Unix ms): conversations (MLS groups) and their member devices, per-device mailboxes with
-- sequence numbers, and the record of accepted sends (idempotency by client message id).
ALTER TABLE devices ADD COLUMN mailbox_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN mailbox_depth INTEGER NOT NULL DEFAULT 0;
-- How long unacknowledged mailbox entries are kept (default 30 days).
ALTER TABLE tenants ADD COLUMN retention_ms INTEGER NOT NULL DEFAULT 2592000000;

CREATE TABLE conversations (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE conversation_members (
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    device_id       BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id       BLOB NOT NULL,
    user_id         BLOB NOT NULL,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, device_id)
) STRICT;
CREATE INDEX conversation_members_by_device ON conversation_members (device_id);

CREATE TABLE mailbox (
    device_id        BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    tenant_id        BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    sender_device_id BLOB NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('application', 'commit', 'welcome')),
    epoch            INTEGER NOT NULL,
    body             BLOB NOT NULL,  -- ciphertext only
    sent_at          INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) STRICT;
CREATE INDEX mailbox_by_expiry ON mailbox (expires_at);

CREATE TABLE sends (
    sender_device_id BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    client_msg_id    BLOB NOT NULL,
    tenant_id        BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    epoch            INTEGER NOT NULL,
    recipients       INTEGER NOT NULL,
    sent_at          INTEGER NOT NULL,
    PRIMARY KEY (sender_device_id, client_msg_id)
) STRICT;
CREATE INDEX sends_by_time ON sends (sent_at);
