-- Acknowledged entries are counted per device apart from the device row, so that
-- acknowledgements never lock the row that sends to the device lock (delivery batches on
-- several shards or nodes would otherwise queue behind each other). A device's queue depth
-- is devices.mailbox_depth - mailbox_acks.deleted.
CREATE TABLE mailbox_acks (
    device_id UUID PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    deleted   BIGINT NOT NULL
);
