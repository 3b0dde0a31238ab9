-- Viewing is priced: a message_view price, charged to the recipient's payer when a
-- message is first delivered to any device of the recipient (once per message and user).
ALTER TABLE prices ADD COLUMN message_view INTEGER NOT NULL DEFAULT 0;
-- Whether viewing the entry costs the message_view price (application messages other
-- than receipts and typing; never commits, Welcomes or proposals).
ALTER TABLE mailbox ADD COLUMN viewable INTEGER NOT NULL DEFAULT 0;
-- The messages each user was charged for viewing: a digest of conversation, sender
-- device and ciphertext (the same for every device of the recipient).
CREATE TABLE message_views (
    tenant_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL,
    message_key BLOB NOT NULL,
    viewed_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id, message_key)
) STRICT;
CREATE INDEX message_views_by_time ON message_views (viewed_at);
