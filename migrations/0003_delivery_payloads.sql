-- A delivery's headers and body live in a table of their own, written once. Marking a
-- delivery sent and then acked rewrites its whole row, and SQLite writes whole pages:
-- with the body in the row that was about 4 KiB of WAL per delivery for two status
-- changes; without it, a row is about a hundred bytes and dozens share a page.
CREATE TABLE delivery_payloads (
    seq     INTEGER PRIMARY KEY REFERENCES deliveries(seq) ON DELETE CASCADE,
    headers TEXT NOT NULL,
    body    BLOB NOT NULL
);
INSERT INTO delivery_payloads (seq, headers, body) SELECT seq, headers, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN headers;
ALTER TABLE deliveries DROP COLUMN body;
