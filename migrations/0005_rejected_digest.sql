-- A rejected request keeps only the first few KiB of its body (anyone who knows a webhook's
-- URL can send one), with the whole body's SHA-256 in hex and its full size in size_bytes,
-- so an owner can still tell requests apart and match them against the sender's logs.
ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT;
