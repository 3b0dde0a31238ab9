-- GET /v1/users pages through a tenant's users by (created_at, id).
CREATE INDEX users_by_tenant_created ON users (tenant_id, created_at, id);
