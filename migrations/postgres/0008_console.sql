-- The billing-admin console: people at a tenant (not its backend) with a password, a
-- role, a one-time set-up token, lockout after failed logins, and sessions.
CREATE TABLE console_accounts (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email            TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL,
    password_hash    TEXT,
    setup_token_hash BYTEA,
    setup_expires_at BIGINT,
    failed_logins    BIGINT NOT NULL DEFAULT 0,
    locked_until     BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX console_accounts_by_tenant ON console_accounts (tenant_id);
CREATE UNIQUE INDEX console_accounts_by_setup_token ON console_accounts (setup_token_hash);

CREATE TABLE console_sessions (
    token_hash BYTEA PRIMARY KEY,
    account_id UUID NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL,
    csrf_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
