-- Events that fail. `deliveries.status` gains `failed` (nacked without requeue, out of
-- attempts, or discarded; `reason` says which), which SQLite can only add to a CHECK by
-- rebuilding the table: it is copied whole (about a hundred bytes a row; headers and
-- bodies live in delivery_payloads and are not copied) in the migration's transaction.
-- Migrations run on a connection with foreign keys off (`Store::open`), so that dropping
-- the old table does not cascade to its payloads.
--
-- New on each row, for the attempt history: how the last attempt was handed out
-- (`sent_via`: socket or mcp), where its attempt limit counts from (`attempt_base`), and
-- what the agent's own handler answered with its ack
-- (`result_status`, `result_ms`). A delivery acked on its first attempt, the common case,
-- writes nothing more than before: its one attempt is read off the row.
CREATE TABLE deliveries_next (
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    webhook_id           TEXT NOT NULL REFERENCES webhooks(id),
    agent_id             TEXT NOT NULL REFERENCES agents(id),
    status               TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'acked', 'rejected', 'duplicate', 'expired', 'failed')),
    queue_seq            INTEGER,
    event                TEXT,
    provider_delivery_id TEXT,
    verified             INTEGER NOT NULL,
    reason               TEXT,
    received_at          INTEGER NOT NULL,
    sent_at              INTEGER,
    acked_at             INTEGER,
    attempts             INTEGER NOT NULL DEFAULT 0,
    size_bytes           INTEGER NOT NULL,
    body_sha256          TEXT,
    sent_via             TEXT CHECK (sent_via IN ('socket', 'mcp')),
    -- `attempts` when it was last queued again by hand: the attempt limit counts from it.
    attempt_base         INTEGER NOT NULL DEFAULT 0,
    result_status        INTEGER,
    result_ms            INTEGER
);
INSERT INTO deliveries_next (seq, id, webhook_id, agent_id, status, queue_seq, event,
        provider_delivery_id, verified, reason, received_at, sent_at, acked_at, attempts,
        size_bytes, body_sha256)
    SELECT seq, id, webhook_id, agent_id, status, queue_seq, event, provider_delivery_id,
        verified, reason, received_at, sent_at, acked_at, attempts, size_bytes, body_sha256
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_next RENAME TO deliveries;
CREATE INDEX deliveries_pending ON deliveries(agent_id, queue_seq) WHERE status IN ('queued', 'sent');
CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, seq);
CREATE INDEX deliveries_by_received ON deliveries(received_at);

-- Attempts that ended without an ack, and the acked attempts that a redeliver closed: one
-- row each, written only on those paths. The attempt still open, or acked last, is the
-- delivery's own row.
CREATE TABLE delivery_attempts (
    id            INTEGER PRIMARY KEY,
    seq           INTEGER NOT NULL REFERENCES deliveries(seq) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    sent_at       INTEGER,
    via           TEXT CHECK (via IN ('socket', 'mcp')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('acked', 'nacked', 'timeout', 'disconnected', 'redelivered', 'discarded')),
    at            INTEGER NOT NULL,
    reason        TEXT,
    result_status INTEGER,
    result_ms     INTEGER
);
CREATE INDEX delivery_attempts_by_seq ON delivery_attempts(seq);
