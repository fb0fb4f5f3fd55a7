-- Provider delivery ids move out of an index of `deliveries` into a table of their own,
-- written in bulk (see src/store/dedupe.rs): `day` is the day its delivery was received
-- (milliseconds / 86400000), `key` the first 8 bytes of SHA-256(webhook id, 0,
-- provider delivery id) as a signed integer, `seq` the delivery that first carried it.
CREATE TABLE delivery_dedupe (
    day INTEGER NOT NULL,
    key INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (day, key)
) WITHOUT ROWID;

-- Numbers the store keeps about itself. `dedupe_merged_seq`: every key of the deliveries
-- up to this row is in delivery_dedupe; the hub merges the rest when it starts (0: all of
-- them, for a database from before this table).
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (name, value) VALUES ('dedupe_merged_seq', 0);

DROP INDEX deliveries_dedupe;
