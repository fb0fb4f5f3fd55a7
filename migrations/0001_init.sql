-- Times are milliseconds since the Unix epoch. Secrets are sealed (nonce || ciphertext),
-- tokens are SHA-256 hashes: nothing in this file's tables is a usable credential.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE agents (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER
);
CREATE INDEX agents_by_account ON agents(account_id, created_at);

CREATE TABLE webhooks (
    id                    TEXT PRIMARY KEY,
    agent_id              TEXT NOT NULL REFERENCES agents(id),
    name                  TEXT NOT NULL,
    provider              TEXT NOT NULL CHECK (provider IN ('generic', 'github', 'stripe', 'slack')),
    active                INTEGER NOT NULL DEFAULT 1,
    created_by            TEXT NOT NULL CHECK (created_by IN ('user', 'agent')),
    signing_secret        BLOB NOT NULL,
    -- The rotated-out secret keeps verifying until previous_secret_until.
    previous_secret       BLOB,
    previous_secret_until INTEGER,
    -- The secret a provider issued (stripe, slack), when the owner has set it.
    provider_secret       BLOB,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX webhooks_by_agent ON webhooks(agent_id, created_at);

CREATE TABLE deliveries (
    -- Receipt order; the activity list pages on it.
    seq                  INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    webhook_id           TEXT NOT NULL REFERENCES webhooks(id),
    agent_id             TEXT NOT NULL REFERENCES agents(id),
    status               TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'acked', 'rejected', 'duplicate', 'expired')),
    -- Position in the agent's queue, assigned by the single writer when (re)queued;
    -- NULL for what is never handed to the agent (rejected, duplicate).
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
    headers              TEXT NOT NULL,
    body                 BLOB NOT NULL
);
-- An agent's pending queue, in order: the backlog flush reads only this.
CREATE INDEX deliveries_pending ON deliveries(agent_id, queue_seq) WHERE status IN ('queued', 'sent');
CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, seq);
CREATE INDEX deliveries_dedupe ON deliveries(webhook_id, provider_delivery_id) WHERE provider_delivery_id IS NOT NULL;
CREATE INDEX deliveries_by_received ON deliveries(received_at);
