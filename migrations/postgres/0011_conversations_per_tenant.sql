-- Conversation ids are scoped per tenant: two tenants may use the same id, and no answer
-- reveals whether another tenant has one (the key was the id alone, so creating an id
-- another tenant used answered `conversation_exists`).
ALTER TABLE conversation_members DROP CONSTRAINT conversation_members_conversation_id_fkey;
ALTER TABLE conversation_members DROP CONSTRAINT conversation_members_pkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
ALTER TABLE conversations ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE conversation_members ADD PRIMARY KEY (tenant_id, conversation_id, device_id);
ALTER TABLE conversation_members ADD CONSTRAINT conversation_members_conversation_fkey
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE;
-- Batches look conversations up by id across tenants.
CREATE INDEX conversations_by_id ON conversations (id);
-- Batches read the members of many conversations by id at once.
CREATE INDEX conversation_members_by_conversation ON conversation_members (conversation_id, device_id);
