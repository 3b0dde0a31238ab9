-- Trust levels (per tenant, as one ordered JSON list), blocks, verifiable reports (message
-- franking: the sender's commitment and the server's stamp travel with each message), and
-- moderation settings.
CREATE TABLE trust_levels (
    tenant_id  BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    levels     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

ALTER TABLE users ADD COLUMN upheld_reports INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN suspend_after_upheld INTEGER;

CREATE TABLE blocks (
    tenant_id       BLOB NOT NULL,
    blocker_user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (blocker_user_id, blocked_user_id)
) STRICT;
CREATE INDEX blocks_by_blocked ON blocks (blocked_user_id);

ALTER TABLE mailbox ADD COLUMN franking_tag BLOB;
ALTER TABLE mailbox ADD COLUMN franking_stamp BLOB;

CREATE TABLE reports (
    id                BLOB PRIMARY KEY NOT NULL,
    tenant_id         BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    reporter_user_id  BLOB NOT NULL,
    reported_user_id  BLOB NOT NULL,
    reported_device_id BLOB NOT NULL,
    conversation_id   BLOB NOT NULL,
    message_id        BLOB NOT NULL,
    sent_at           INTEGER NOT NULL,
    text              TEXT NOT NULL,
    reason            TEXT,
    status            TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER,
    UNIQUE (tenant_id, reporter_user_id, message_id)
) STRICT;
CREATE INDEX reports_by_status ON reports (tenant_id, status, created_at);
