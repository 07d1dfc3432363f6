-- 0007: upstream identity providers ("sign in with …") and the identities linked to users.

-- A provider's client secret is sealed under the factor key (factors.key beside the
-- signing keys, never here), with the provider id as associated data.
CREATE TABLE identity_providers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                     -- oidc, oauth2
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    sealed_client_secret TEXT NOT NULL,
    scopes TEXT NOT NULL,                   -- space-separated
    authorize_url TEXT,                     -- oauth2 only
    token_url TEXT,
    userinfo_url TEXT,
    subject_claim TEXT NOT NULL,
    create_users BOOLEAN NOT NULL,
    trust_email BOOLEAN NOT NULL,
    allow_http BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- An upstream account is its issuer and subject: linked to one user. Identities stay when
-- their provider is removed (added again with the same issuer, it finds them).
CREATE TABLE federated_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX federated_identities_user ON federated_identities (user_id);
