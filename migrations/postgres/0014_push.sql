-- Content-free push: a device's push token and provider (as the app registered them), and
-- the state of its coalescing window. push_armed_seq is the newest entry when the window
-- opened; when it closes (push_due_at) and that entry or an older one is still waiting,
-- the tenant gets one device.pending webhook. push_notified_seq: entries up to it were
-- announced (or taken) already.
ALTER TABLE devices ADD COLUMN push_token TEXT;
ALTER TABLE devices ADD COLUMN push_provider TEXT;
ALTER TABLE devices ADD COLUMN push_due_at BIGINT;
ALTER TABLE devices ADD COLUMN push_armed_seq BIGINT;
ALTER TABLE devices ADD COLUMN push_notified_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX devices_with_push ON devices (id) WHERE push_token IS NOT NULL;
