-- The server as an MLS external sender: it proposes the removal of revoked and
-- long-inactive devices, which members commit.
-- The MLS leaf each member device holds, as its committer reported it (NULL: unknown, for
-- members added before this migration; those are never proposed for removal).
ALTER TABLE conversation_members ADD COLUMN leaf_index BIGINT;
-- When a device last logged in (a device token lasts an hour, so an active device logs in
-- far more often than any tenant's retention).
ALTER TABLE devices ADD COLUMN last_login_at BIGINT;
UPDATE devices SET last_login_at = created_at;
-- Removals the server proposes until a commit carries them out; proposed_epoch is the
-- epoch its latest proposal was made in (each commit outdates the proposals before it).
CREATE TABLE member_removals (
    tenant_id       UUID NOT NULL,
    conversation_id UUID NOT NULL,
    device_id       UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    leaf_index      BIGINT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('revoked', 'inactive')),
    proposed_epoch  BIGINT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, device_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX member_removals_by_device ON member_removals (tenant_id, device_id);
ALTER TABLE mailbox DROP CONSTRAINT mailbox_kind_check;
ALTER TABLE mailbox ADD CONSTRAINT mailbox_kind_check
    CHECK (kind IN ('application', 'commit', 'welcome', 'proposal'));
-- Commits (membership changes) may be priced too (0: free, the default).
ALTER TABLE prices ADD COLUMN group_commit BIGINT NOT NULL DEFAULT 0;
