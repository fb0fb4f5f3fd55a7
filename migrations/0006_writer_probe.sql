-- One row the delivery writer rewrites to learn whether writing works again after its
-- commits have failed (a full disk), when there is no delivery to try it with.
CREATE TABLE writer_probe (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    at     INTEGER NOT NULL,
    filler BLOB NOT NULL
);
