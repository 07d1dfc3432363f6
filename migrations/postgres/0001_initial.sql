-- 0001 (PostgreSQL): users, clients, refresh-token families and tokens, access-token deny list.
-- Times are Unix seconds. Secrets are never stored: refresh tokens and client secrets
-- appear only as SHA-256 hashes, passwords only as argon2id PHC strings.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name TEXT,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_disabled BOOLEAN NOT NULL DEFAULT FALSE,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT,                       -- NULL for a public client
    redirect_uris TEXT NOT NULL,            -- JSON array of strings
    post_logout_redirect_uris TEXT NOT NULL,-- JSON array of strings
    grant_types TEXT NOT NULL,              -- JSON array of strings
    scopes TEXT NOT NULL,                   -- JSON array of strings
    audiences TEXT NOT NULL,                -- JSON array of strings
    is_first_party BOOLEAN NOT NULL DEFAULT FALSE,
    always_issue_refresh_token BOOLEAN NOT NULL DEFAULT FALSE,
    access_token_ttl BIGINT,
    refresh_token_ttl BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_expires ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES refresh_families(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,        -- SHA-256, base64url
    parent_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);
