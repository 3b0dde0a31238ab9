-- Console e-mail addresses are unique per tenant, not across tenants: creating an account
-- no longer reveals that an address has one at another tenant. SQLite cannot drop a
-- column's UNIQUE, so the accounts table is rebuilt, and the sessions with it (dropping
-- the old accounts would otherwise cascade into them).
CREATE TABLE console_accounts_v2 (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL,
    password_hash    TEXT,
    setup_token_hash BLOB,
    setup_expires_at INTEGER,
    failed_logins    INTEGER NOT NULL DEFAULT 0,
    locked_until     INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (tenant_id, email)
) STRICT;
INSERT INTO console_accounts_v2
    SELECT id, tenant_id, email, role, password_hash, setup_token_hash, setup_expires_at,
           failed_logins, locked_until, created_at FROM console_accounts;

CREATE TABLE console_sessions_v2 (
    token_hash BLOB PRIMARY KEY NOT NULL,
    account_id BLOB NOT NULL REFERENCES console_accounts_v2 (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL,
    csrf_token TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO console_sessions_v2
    SELECT token_hash, account_id, tenant_id, csrf_token, expires_at, created_at FROM console_sessions;

DROP TABLE console_sessions;
DROP TABLE console_accounts;
ALTER TABLE console_accounts_v2 RENAME TO console_accounts;
ALTER TABLE console_sessions_v2 RENAME TO console_sessions;
CREATE INDEX console_accounts_by_tenant ON console_accounts (tenant_id);
CREATE INDEX console_accounts_email ON console_accounts (email);
CREATE UNIQUE INDEX console_accounts_by_setup_token ON console_accounts (setup_token_hash);
