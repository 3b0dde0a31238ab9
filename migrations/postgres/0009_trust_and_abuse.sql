-- Trust levels (per tenant, as one ordered JSON list), blocks, verifiable reports (message
-- franking: the sender's commitment and the server's stamp travel with each message), and
-- moderation settings.
CREATE TABLE trust_levels (
    tenant_id  UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    levels     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

ALTER TABLE users ADD COLUMN upheld_reports BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN suspend_after_upheld BIGINT;

CREATE TABLE blocks (
    tenant_id       UUID NOT NULL,
    blocker_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (blocker_user_id, blocked_user_id)
);
CREATE INDEX blocks_by_blocked ON blocks (blocked_user_id);

ALTER TABLE mailbox ADD COLUMN franking_tag BYTEA;
ALTER TABLE mailbox ADD COLUMN franking_stamp BYTEA;

CREATE TABLE reports (
    id                UUID PRIMARY KEY,
    tenant_id         UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    reporter_user_id  UUID NOT NULL,
    reported_user_id  UUID NOT NULL,
    reported_device_id UUID NOT NULL,
    conversation_id   UUID NOT NULL,
    message_id        UUID NOT NULL,
    sent_at           BIGINT NOT NULL,
    text              TEXT NOT NULL,
    reason            TEXT,
    status            TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    decided_at        BIGINT,
    UNIQUE (tenant_id, reporter_user_id, message_id)
);
CREATE INDEX reports_by_status ON reports (tenant_id, status, created_at);
