-- The server as an MLS external sender: it proposes the removal of revoked and
-- long-inactive devices, which members commit.
-- The MLS leaf each member device holds, as its committer reported it (NULL: unknown, for
-- members added before this migration; those are never proposed for removal).
ALTER TABLE conversation_members ADD COLUMN leaf_index INTEGER;
-- When a device last logged in (a device token lasts an hour, so an active device logs in
-- far more often than any tenant's retention).
ALTER TABLE devices ADD COLUMN last_login_at INTEGER;
UPDATE devices SET last_login_at = created_at;
-- Removals the server proposes until a commit carries them out; proposed_epoch is the
-- epoch its latest proposal was made in (each commit outdates the proposals before it).
CREATE TABLE member_removals (
    tenant_id       BLOB NOT NULL,
    conversation_id BLOB NOT NULL,
    device_id       BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    leaf_index      INTEGER NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('revoked', 'inactive')),
    proposed_epoch  INTEGER,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, device_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX member_removals_by_device ON member_removals (tenant_id, device_id);
-- The mailbox takes a fourth kind of entry; SQLite cannot change a CHECK, so the table
-- is rebuilt.
CREATE TABLE mailbox_v2 (
    device_id        BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    tenant_id        BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    sender_device_id BLOB NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('application', 'commit', 'welcome', 'proposal')),
    epoch            INTEGER NOT NULL,
    body             BLOB NOT NULL,  -- ciphertext only
    sent_at          INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    franking_tag     BLOB,
    franking_stamp   BLOB,
    PRIMARY KEY (device_id, seq)
) STRICT;
INSERT INTO mailbox_v2 (device_id, seq, tenant_id, conversation_id, sender_device_id, kind, epoch, body, sent_at, expires_at, franking_tag, franking_stamp)
    SELECT device_id, seq, tenant_id, conversation_id, sender_device_id, kind, epoch, body, sent_at, expires_at, franking_tag, franking_stamp FROM mailbox;
DROP TABLE mailbox;
ALTER TABLE mailbox_v2 RENAME TO mailbox;
CREATE INDEX mailbox_by_expiry ON mailbox (expires_at);
-- Commits (membership changes) may be priced too (0: free, the default).
ALTER TABLE prices ADD COLUMN group_commit INTEGER NOT NULL DEFAULT 0;
