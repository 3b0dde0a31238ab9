-- End users, their devices, login challenges, MLS KeyPackages, contacts, token signing keys.
-- UUIDs are 16-byte BLOBs, times Unix milliseconds, booleans 0/1.
CREATE TABLE users (
    id                 BLOB PRIMARY KEY NOT NULL,
    tenant_id          BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id        TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    trust_level        TEXT NOT NULL DEFAULT 'new',
    suspended          INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    devices_changed_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, external_id)
) STRICT;

CREATE TABLE devices (
    id                 BLOB PRIMARY KEY NOT NULL,
    tenant_id          BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id            BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name               TEXT,
    identity_key       BLOB NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'revoked')),
    created_at         INTEGER NOT NULL,
    approved_by        BLOB,
    approved_at_ms     INTEGER,
    approval_signature BLOB,
    revoked_at         INTEGER,
    UNIQUE (tenant_id, identity_key)
) STRICT;
CREATE INDEX devices_by_user ON devices (tenant_id, user_id, created_at);

CREATE TABLE login_challenges (
    nonce_hash BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL,
    device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX login_challenges_by_expiry ON login_challenges (expires_at);

CREATE TABLE key_packages (
    device_id   BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    hash_ref    BLOB NOT NULL,
    tenant_id   BLOB NOT NULL,
    data        BLOB NOT NULL,
    last_resort INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, hash_ref)
) STRICT;
CREATE INDEX key_packages_claim ON key_packages (device_id, last_resort, created_at);
CREATE INDEX key_packages_by_expiry ON key_packages (expires_at);

-- Stored in both directions: (a, b) and (b, a).
CREATE TABLE contacts (
    tenant_id       BLOB NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (user_id, contact_user_id)
) STRICT;

CREATE TABLE token_keys (
    id         INTEGER PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
