-- Invites: tenant-scoped capabilities to become a user's contact.
CREATE TABLE invites (
    code            TEXT PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inviter_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    max_uses        BIGINT NOT NULL,
    uses            BIGINT NOT NULL DEFAULT 0,
    note            TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX invites_by_inviter ON invites (tenant_id, inviter_user_id, created_at);

CREATE TABLE invite_redemptions (
    code        TEXT NOT NULL REFERENCES invites (code) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redeemed_at BIGINT NOT NULL,
    PRIMARY KEY (code, user_id)
);
