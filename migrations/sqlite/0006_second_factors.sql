-- 0006: second factors (authenticator apps, passkeys), recovery codes, and what a sign-in
-- proved (acr, amr) kept with codes and refresh families so every token of it says the same.

-- An admin may require a second factor of one user, whatever --mfa says.
ALTER TABLE users ADD COLUMN requires_second_factor BOOLEAN NOT NULL DEFAULT FALSE;

-- acr and the space-separated amr values; empty in rows from before (read as a password).
ALTER TABLE authorization_codes ADD COLUMN acr TEXT NOT NULL DEFAULT '';
ALTER TABLE authorization_codes ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN acr TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN amr TEXT NOT NULL DEFAULT '';

-- A TOTP factor's data is its secret sealed under the factor key (factors.key beside the
-- signing keys, never here); a passkey's is its public credential. Unconfirmed rows are
-- enrolments in progress, deleted after an hour.
CREATE TABLE second_factors (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                     -- totp, passkey
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    credential_id TEXT UNIQUE,              -- passkeys: the WebAuthn credential id
    last_step BIGINT,                       -- TOTP: the last time step accepted (each once)
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX second_factors_user ON second_factors (user_id);

-- Only keyed hashes (HMAC under the factor key) of recovery codes are stored.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
