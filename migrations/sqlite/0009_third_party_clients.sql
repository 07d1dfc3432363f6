-- 0009: third-party and agent clients. How each client authenticates (RFC 7591
-- `token_endpoint_auth_method`, with its keys for `private_key_jwt`, RFC 7523), whether it
-- must push its authorization requests (RFC 9126), dynamic registration (RFC 7591, 7592)
-- with its initial access tokens, the resource registry (RFC 8707), pushed requests and
-- the client assertions already seen.

-- `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
UPDATE clients SET token_endpoint_auth_method = 'none' WHERE secret_hash IS NULL;
-- A JWK Set (JSON text) or the https URL of one, for `private_key_jwt`.
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
-- Set for a client that registered itself (RFC 7591): JSON with the registration access
-- token's SHA-256, the application type and the metadata kept only to be read back.
ALTER TABLE clients ADD COLUMN registration TEXT;
-- The address a self-registered client came from (for the per-address cap).
ALTER TABLE clients ADD COLUMN registered_from TEXT;
-- When the client first got a code or a token; a self-registered client never used is
-- removed after a while.
ALTER TABLE clients ADD COLUMN first_used_at BIGINT;
CREATE INDEX clients_registered_from ON clients (registered_from) WHERE registered_from IS NOT NULL;

-- RFC 8707: the resources a code or refresh family was granted for (JSON arrays); empty
-- for a grant that named none (its audience is the client's default).
ALTER TABLE authorization_codes ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE refresh_families ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';

-- Initial access tokens for `--registration token` (RFC 7591 §3): only the SHA-256 kept.
CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    uses_left BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Protected resources (RFC 8707 `resource` values) and the scopes each accepts.
CREATE TABLE resources (
    uri TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',  -- JSON array
    self_registered_clients BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Pushed authorization requests (RFC 9126): the request_uri's SHA-256, single use.
CREATE TABLE pushed_requests (
    request_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,  -- no foreign key: a metadata-document client has no row
    parameters TEXT NOT NULL,  -- JSON object of the validated request's parameters
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expiry ON pushed_requests (expires_at);

-- Client assertions (RFC 7523) seen, by client and `jti`, until they expire: a replay is
-- refused on every replica.
CREATE TABLE client_assertions (
    client_id TEXT NOT NULL,
    jti_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti_hash)
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
