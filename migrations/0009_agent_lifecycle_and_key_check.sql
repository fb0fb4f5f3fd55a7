-- An agent is deactivated, never deleted: its token stops working and its webhooks stop
-- accepting, while its deliveries and their history stay readable by its owner.
ALTER TABLE agents ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
ALTER TABLE agents ADD COLUMN updated_at INTEGER;

-- A known text sealed with the master key at the first start (see src/startup.rs): a
-- start with another key cannot open it and refuses, rather than serving and failing on
-- every sealed secret it meets.
CREATE TABLE master_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BLOB NOT NULL
);
