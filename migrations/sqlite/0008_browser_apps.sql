-- 0008: browser apps. Per-client CORS origins and OpenID Connect Back-Channel Logout 1.0:
-- the `sid` of the browser session a code or refresh family came from, which clients each
-- session signed in to, and the durable outbox of logout tokens to deliver.

-- Browser origins (scheme://host[:port]) allowed to call /token, /revoke and /userinfo.
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';  -- JSON array
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- The session id (`sid`) that ID tokens from this code or family carry. It is derived
-- from the browser session's record id by hashing, never the session cookie.
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
ALTER TABLE refresh_families ADD COLUMN sid TEXT;

-- Which clients a browser session (by `sid`) signed in to: the clients a logout of that
-- session must tell. A row goes when its logout is queued, or 90 days after it was made.
CREATE TABLE session_clients (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX session_clients_user ON session_clients (user_id);

-- Logout tokens to deliver, one per client and session. The token itself is signed at
-- each attempt (fresh iat, exp and jti), so nothing here is a credential. Workers on every
-- replica claim due rows with one conditional statement each (`claimed_until`).
CREATE TABLE logout_deliveries (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    sid TEXT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at BIGINT,
    given_up_at BIGINT
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;
CREATE INDEX logout_deliveries_client ON logout_deliveries (client_id) WHERE delivered_at IS NULL AND given_up_at IS NULL;
