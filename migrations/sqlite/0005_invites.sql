-- Invites: tenant-scoped capabilities to become a user's contact.
CREATE TABLE invites (
    code            TEXT PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inviter_user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    max_uses        INTEGER NOT NULL,
    uses            INTEGER NOT NULL DEFAULT 0,
    note            TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
) STRICT;
CREATE INDEX invites_by_inviter ON invites (tenant_id, inviter_user_id, created_at);

CREATE TABLE invite_redemptions (
    code        TEXT NOT NULL REFERENCES invites (code) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redeemed_at INTEGER NOT NULL,
    PRIMARY KEY (code, user_id)
) STRICT;
