-- Encrypted attachments: the server holds ciphertext blobs it cannot read. An upload is
-- declared with its total size (which fixes its tier and price), receives its bytes in
-- parts (one stored object per accepted PATCH), and is charged once, in the transaction
-- that records the last part. Recipients are the conversation's other devices at
-- completion; the attachment and its blob go once every one has downloaded it, when the
-- tenant's retention passes, or after 24 h when the upload never completed.
CREATE TABLE attachments (
    id                 BLOB PRIMARY KEY NOT NULL,
    tenant_id          BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conversation_id    BLOB NOT NULL,
    uploader_user_id   BLOB NOT NULL,
    uploader_device_id BLOB NOT NULL,
    size               INTEGER NOT NULL,
    received           INTEGER NOT NULL DEFAULT 0,
    tier               TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    expires_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_by_tenant ON attachments (tenant_id);
CREATE INDEX attachments_by_expiry ON attachments (expires_at);

CREATE TABLE attachment_parts (
    attachment_id BLOB NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    "offset"      INTEGER NOT NULL,
    len           INTEGER NOT NULL,
    -- Each PATCH stores its bytes under a fresh key, so a racing retry never overwrites
    -- the part that was recorded.
    blob_key      TEXT NOT NULL,
    PRIMARY KEY (attachment_id, "offset")
) STRICT;

CREATE TABLE attachment_recipients (
    attachment_id BLOB NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    device_id     BLOB NOT NULL,
    downloaded_at INTEGER,
    PRIMARY KEY (attachment_id, device_id)
) STRICT;
