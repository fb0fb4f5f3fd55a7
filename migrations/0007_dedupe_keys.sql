-- Provider delivery ids move out of an index of `deliveries` into a table of their own
-- (see src/store/dedupe.rs): `day` is the day its delivery was received (milliseconds /
-- 86400000), `key` the first 8 bytes of SHA-256(webhook id, 0, provider delivery id) as a
-- signed integer, `seq` the delivery that first carried it.
CREATE TABLE delivery_dedupe (
    day INTEGER NOT NULL,
    key INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (day, key)
) WITHOUT ROWID;

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
