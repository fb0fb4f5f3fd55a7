-- Provider delivery ids move out of an index of `deliveries` into a table of their own
-- (see src/store/dedupe.rs): `key` is the first 8 bytes of SHA-256(webhook id, 0,
-- provider delivery id) as a signed integer, the table's own rowid; `seq` the delivery
-- that first carried it. Retention deletes by `seq`, which only ever grows, so its index
-- is written at its end.
CREATE TABLE delivery_dedupe (
    key INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE INDEX delivery_dedupe_by_seq ON delivery_dedupe(seq);

-- Numbers the store keeps about itself. SQL cannot compute the keys of the deliveries
-- already here: the hub does, at its next start, for the rows up to
-- `dedupe_backfill_upto`, and moves `dedupe_backfilled` along as it goes.
CREATE TABLE store_meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (name, value)
    SELECT 'dedupe_backfill_upto', COALESCE(MAX(seq), 0) FROM deliveries;
INSERT INTO store_meta (name, value) VALUES ('dedupe_backfilled', 0);

DROP INDEX deliveries_dedupe;
