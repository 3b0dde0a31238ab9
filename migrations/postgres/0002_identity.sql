-- End users, their devices, login challenges, MLS KeyPackages, contacts, token signing keys.
CREATE TABLE users (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id        TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    trust_level        TEXT NOT NULL DEFAULT 'new',
    suspended          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    devices_changed_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE devices (
    id                 UUID PRIMARY KEY,
    tenant_id          UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id            UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT,
    identity_key       BYTEA NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'revoked')),
    created_at         BIGINT NOT NULL,
    approved_by        UUID,
    approved_at_ms     BIGINT,
    approval_signature BYTEA,
    revoked_at         BIGINT,
    UNIQUE (tenant_id, identity_key)
);
CREATE INDEX devices_by_user ON devices (tenant_id, user_id, created_at);

CREATE TABLE login_challenges (
    nonce_hash BYTEA PRIMARY KEY,
    tenant_id  UUID NOT NULL,
    device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX login_challenges_by_expiry ON login_challenges (expires_at);

CREATE TABLE key_packages (
    device_id   UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    hash_ref    BYTEA NOT NULL,
    tenant_id   UUID NOT NULL,
    data        BYTEA NOT NULL,
    last_resort BOOLEAN NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (device_id, hash_ref)
);
CREATE INDEX key_packages_claim ON key_packages (device_id, last_resort, created_at);
CREATE INDEX key_packages_by_expiry ON key_packages (expires_at);

-- Stored in both directions: (a, b) and (b, a).
CREATE TABLE contacts (
    tenant_id       UUID NOT NULL,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (user_id, contact_user_id)
);

CREATE TABLE token_keys (
    id         INTEGER PRIMARY KEY,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
