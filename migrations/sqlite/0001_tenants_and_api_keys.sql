-- Tenants (host platforms) and their API keys. Times are Unix milliseconds; UUIDs are 16-byte BLOBs.
CREATE TABLE tenants (
    id              BLOB PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    keys_changed_at INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,  -- SHA-256 of the secret; the secret is never stored
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at DESC);
