-- 0010: sender-constrained tokens, DPoP (RFC 9449).

-- RFC 9449 §5.2 `dpop_bound_access_tokens`: the client's token requests must carry a proof.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;

-- The thumbprint (RFC 7638) of the key a code (§10 `dpop_jkt`) or a public client's refresh
-- family (§5.2) is bound to; NULL when unbound.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;

-- DPoP proofs seen (§11.1), by the SHA-256 of their key and `jti`, until they would no
-- longer be accepted: a replay is refused on every replica.
CREATE TABLE dpop_proofs (
    replay_key TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dpop_proofs_expiry ON dpop_proofs (expires_at);
