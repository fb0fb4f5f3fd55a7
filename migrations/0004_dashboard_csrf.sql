-- A session's CSRF token is no longer stored: it is derived from the session id, which
-- only the cookie carries and which is stored only hashed (see src/auth.rs). The sessions
-- made before kept theirs here in plaintext; they are ended rather than carried over, so
-- owners signed in to the dashboard sign in again.
DELETE FROM dashboard_sessions;
ALTER TABLE dashboard_sessions DROP COLUMN csrf_token;
