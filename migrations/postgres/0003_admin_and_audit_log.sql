-- 0003: what the admin console needs: a per-user session epoch (incremented to end all of
-- a user's browser sessions: disabled, password reset) and the tamper-evident audit log.

ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;

-- Each entry's hash covers its fields and the previous entry's hash (see sigil-core's
-- audit module), so an edit or a deletion breaks the chain at that entry. `seq` is the
-- primary key: two concurrent appends cannot take the same place in the chain.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,                    -- user name, 'cli', or '-' for nobody
    actor_id TEXT,
    action TEXT NOT NULL,                   -- e.g. sign_in.failure, client.created
    target TEXT,
    detail TEXT NOT NULL,                   -- plain words, never a secret
    address TEXT,                           -- client IP address
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action);
CREATE INDEX audit_log_actor ON audit_log (actor);
CREATE INDEX audit_log_target ON audit_log (target);
