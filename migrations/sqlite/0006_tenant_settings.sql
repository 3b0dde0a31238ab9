-- Tenant settings: the "Open in app" link template of invite landing pages.
ALTER TABLE tenants ADD COLUMN open_in_app_template TEXT;
