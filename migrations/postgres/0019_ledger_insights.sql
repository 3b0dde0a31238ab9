-- The console's dashboard: spend per user whoever pays (the user an entry is for; NULL for
-- the tenant's own entries), and tenant-wide totals over a date range.
ALTER TABLE ledger_entries ADD COLUMN user_id UUID;
UPDATE ledger_entries SET user_id = wallet_id WHERE wallet_id <> tenant_id;
CREATE INDEX ledger_by_tenant_time ON ledger_entries (tenant_id, created_at);
