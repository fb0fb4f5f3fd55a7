-- Dashboard sign-ins. The session id travels only in an HttpOnly cookie and is stored as
-- its SHA-256, like every token; the CSRF token is not a credential on its own (it is
-- useless without the cookie), and the page must be able to read it back, so it is kept
-- as is.

CREATE TABLE dashboard_sessions (
    id_hash     BLOB PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions(expires_at);
