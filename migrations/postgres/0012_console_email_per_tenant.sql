-- Console e-mail addresses are unique per tenant, not across tenants: creating an account
-- no longer reveals that an address has one at another tenant.
ALTER TABLE console_accounts DROP CONSTRAINT console_accounts_email_key;
CREATE UNIQUE INDEX console_accounts_by_email ON console_accounts (tenant_id, email);
CREATE INDEX console_accounts_email ON console_accounts (email);
