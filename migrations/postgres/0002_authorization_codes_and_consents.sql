-- 0002 (PostgreSQL): authorization codes (hashed, single use, bound to client, redirect URI, PKCE
-- challenge, nonce) and remembered consents.

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,             -- SHA-256 of the code, base64url
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    redirect_uri_given BOOLEAN NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT NOT NULL,           -- S256 only
    nonce TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    family_id TEXT,                         -- what the exchange issued, revoked on replay
    access_token_jti TEXT,
    access_token_exp BIGINT
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,                    -- space-separated, sorted
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
