-- Acknowledged entries are counted per device apart from the device row, so that
-- acknowledgements never lock the row that sends to the device lock. A device's queue
-- depth is devices.mailbox_depth - mailbox_acks.deleted.
CREATE TABLE mailbox_acks (
    device_id BLOB PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    deleted   INTEGER NOT NULL
) STRICT;
