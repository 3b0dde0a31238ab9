-- Viewing is priced: a message_view price, charged to the recipient's payer when a
-- message is first delivered to any device of the recipient (once per message and user).
ALTER TABLE prices ADD COLUMN message_view BIGINT NOT NULL DEFAULT 0;
-- Whether viewing the entry costs the message_view price (application messages other
-- than receipts and typing; never commits, Welcomes or proposals).
ALTER TABLE mailbox ADD COLUMN viewable BOOLEAN NOT NULL DEFAULT FALSE;
-- The messages each user was charged for viewing: a digest of conversation, sender
-- device and ciphertext (the same for every device of the recipient).
CREATE TABLE message_views (
    tenant_id   UUID NOT NULL,
    user_id     UUID NOT NULL,
    message_key BYTEA NOT NULL,
    viewed_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, message_key)
);
CREATE INDEX message_views_by_time ON message_views (viewed_at);
