-- Conversation ids are scoped per tenant: two tenants may use the same id, and no answer
-- reveals whether another tenant has one (the key was the id alone, so creating an id
-- another tenant used answered `conversation_exists`). SQLite cannot change a primary
-- key, so both tables are rebuilt (the members first, so dropping the old conversations
-- cascades into nothing).
CREATE TABLE conversations_v2 (
    id         BLOB NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
INSERT INTO conversations_v2 (id, tenant_id, epoch, created_at)
    SELECT id, tenant_id, epoch, created_at FROM conversations;

CREATE TABLE conversation_members_v2 (
    conversation_id BLOB NOT NULL,
    device_id       BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id       BLOB NOT NULL,
    user_id         BLOB NOT NULL,
    joined_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, device_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations_v2 (tenant_id, id) ON DELETE CASCADE
) STRICT;
INSERT INTO conversation_members_v2 (conversation_id, device_id, tenant_id, user_id, joined_at)
    SELECT conversation_id, device_id, tenant_id, user_id, joined_at FROM conversation_members;

DROP TABLE conversation_members;
DROP TABLE conversations;
ALTER TABLE conversations_v2 RENAME TO conversations;
ALTER TABLE conversation_members_v2 RENAME TO conversation_members;
CREATE INDEX conversation_members_by_device ON conversation_members (device_id);
CREATE INDEX conversation_members_by_user ON conversation_members (tenant_id, user_id, conversation_id);
CREATE INDEX conversations_by_id ON conversations (id);
-- Batches read the members of many conversations by id at once.
CREATE INDEX conversation_members_by_conversation ON conversation_members (conversation_id, device_id);
