//! The records a store keeps beside users and clients: refresh-token families and tokens,
//! authorization codes, consents and sign-in failure counts.

/// A chain of refresh tokens that descend from one grant (RFC 9700 §4.14.2). Revoking the
/// family ends every token in it, and every access token issued with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    /// The scope granted; every refresh token of the family carries exactly this scope.
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    /// Absolute end of the family, whatever the rotations.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// One refresh token. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: String,
    pub family_id: String,
    pub token_hash: String,
    pub parent_id: Option<String>,
    pub created_at: i64,
    /// Idle expiry.
    pub expires_at: i64,
    /// Set when the token was exchanged; a second use is theft.
    pub used_at: Option<i64>,
    /// With a refresh reuse grace window: the response that rotated this token, sealed
    /// under a key only this token's holder can derive (see `grant::refresh_seal`).
    pub sealed_successor: Option<String>,
}

/// Failed sign-ins counted for one subject (`account:<name>` or `address:<ip>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailures {
    pub subject: String,
    pub failures: i64,
    pub first_failure_at: i64,
    pub last_failure_at: i64,
}

/// An authorization code (RFC 6749 §4.1.2). Only the SHA-256 of the code is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then the token request
    /// must repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub scope: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// What the exchange issued, so that a replay can revoke it (RFC 6749 §4.1.2).
    pub family_id: Option<String>,
    pub access_token_jti: Option<String>,
    pub access_token_exp: Option<i64>,
}

/// A user's remembered consent for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
}
