-- Directory visibility asks whether two users share a conversation.
CREATE INDEX conversation_members_by_user ON conversation_members (tenant_id, user_id, conversation_id);
