-- Where a tenant's offline mailbox entries wait: 'durable' (the mailbox table) or 'memory'
-- (Redis only, never this database).
ALTER TABLE tenants ADD COLUMN mailbox_storage TEXT NOT NULL DEFAULT 'durable'
    CHECK (mailbox_storage IN ('durable', 'memory'));
