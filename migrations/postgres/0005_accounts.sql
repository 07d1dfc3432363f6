-- 0005: accounts people run themselves (sign-up, verification, reset, the account page).
--
-- User names and e-mail addresses are unique by their keys: the name or address trimmed,
-- NFC-normalised and lowercased (sigil-core's user::username_key and user::email_key),
-- written by the server with every insert and update. Rows from before keep their exact
-- name for sign-in; where two old rows share a key, only the oldest gets it (the other
-- keeps working by its exact name, and no new account can take the key).
ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
-- How the account was made: admin, bootstrap, sign_up, invitation.
ALTER TABLE users ADD COLUMN origin TEXT NOT NULL DEFAULT 'admin';
-- Counts the changes to a row: an update applies only to the version it read, so that two
-- changes at once (a profile edit and a disable, a password change and a reset) cannot
-- undo each other.
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
UPDATE users SET username_key = lower(trim(username))
    WHERE id IN (SELECT MIN(id) FROM users GROUP BY lower(trim(username)));
UPDATE users SET email_key = lower(trim(email))
    WHERE email IS NOT NULL
      AND id IN (SELECT MIN(id) FROM users WHERE email IS NOT NULL GROUP BY lower(trim(email)));
CREATE UNIQUE INDEX users_by_username_key ON users (username_key);
CREATE UNIQUE INDEX users_by_email_key ON users (email_key);

-- Single-use links sent by mail. Only the SHA-256 of the token is stored.
CREATE TABLE account_links (
    token_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,                  -- verify_email, reset_password, invitation, change_email
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    email TEXT,
    session_epoch BIGINT NOT NULL,          -- a later password change voids a reset link
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_links_user ON account_links (user_id);
CREATE INDEX account_links_expires ON account_links (expires_at);

-- The durable mail outbox. `sealed` is the message encrypted (AES-256-GCM) under the
-- mail key in the keys directory, cleared once the message is sent or given up.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at BIGINT,
    given_up_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);
CREATE INDEX mail_outbox_recipient ON mail_outbox (recipient);

-- Signed-in browser sessions, for the account page's list. `id` is a random handle kept
-- in the session's data, not the cookie's value.
CREATE TABLE browser_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    address TEXT,
    user_agent TEXT,
    ended_at BIGINT
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
