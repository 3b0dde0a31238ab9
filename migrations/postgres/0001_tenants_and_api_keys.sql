-- Tenants (host platforms) and their API keys. Times are Unix milliseconds.
CREATE TABLE tenants (
    id              UUID PRIMARY KEY,
    name            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    keys_changed_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     BYTEA NOT NULL UNIQUE,  -- SHA-256 of the secret; the secret is never stored
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at DESC);
