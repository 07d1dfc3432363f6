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
    /// How the user signed in (`acr` and the space-separated `amr` values,
    /// [`crate::factors::Authentication`]); empty in families from before they were kept.
    pub acr: String,
    pub amr: String,
    /// The browser session's `sid` the family's sign-in came from (for the ID tokens
    /// refreshes issue, and back-channel logout).
    pub sid: Option<String>,
    /// RFC 8707: the resources the grant was for (each refresh may name some of them);
    /// empty when it named none.
    pub resources: Vec<String>,
    /// RFC 9449 §5.2: the thumbprint of the DPoP key a public client's family is bound to;
    /// every refresh must come with a proof of that key.
    pub dpop_jkt: Option<String>,
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
    /// How the user signed in (see [`RefreshFamily::acr`]).
    pub acr: String,
    pub amr: String,
    /// The browser session's `sid` (see [`RefreshFamily::sid`]).
    pub sid: Option<String>,
    /// RFC 8707: the resources the authorization request named (empty: none).
    pub resources: Vec<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to (`dpop_jkt`).
    pub dpop_jkt: Option<String>,
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

/// What an account link (a single-use token sent by mail) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// Proves a new account's e-mail address.
    VerifyEmail,
    /// Sets a forgotten password.
    ResetPassword,
    /// Lets someone sign up while sign-up is by invitation.
    Invitation,
    /// Proves a new address before it replaces the account's current one.
    ChangeEmail,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::Invitation => "invitation",
            Self::ChangeEmail => "change_email",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "verify_email" => Self::VerifyEmail,
            "reset_password" => Self::ResetPassword,
            "invitation" => Self::Invitation,
            "change_email" => Self::ChangeEmail,
            _ => return None,
        })
    }
}

/// A link token sent by mail. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLink {
    pub token_hash: String,
    pub purpose: LinkPurpose,
    /// The account it acts on; `None` for an invitation.
    pub user_id: Option<String>,
    /// The address it was sent to (the new one for [`LinkPurpose::ChangeEmail`]).
    pub email: Option<String>,
    /// The account's `session_epoch` when the link was made: a password change since (or
    /// any other end of all sessions) voids a reset link.
    pub session_epoch: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// A message waiting in the durable outbox, or sent from it. Its content (subject and
/// bodies, which hold link tokens) is sealed: stored encrypted, cleared once sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: String,
    pub recipient: String,
    /// What it is (`verify_email`, `password_reset`, …), for metrics and logs.
    pub kind: String,
    /// The encrypted message; empty once sent or given up.
    pub sealed: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub given_up_at: Option<i64>,
}

/// How the outbox stands, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Neither sent nor given up.
    pub pending: i64,
    /// Pending and tried at least once without success.
    pub retrying: i64,
    pub sent: i64,
    pub given_up: i64,
    /// When the oldest pending message was queued.
    pub oldest_pending_at: Option<i64>,
}

/// A logout token to deliver (OpenID Connect Back-Channel Logout 1.0), or delivered. The
/// token is signed at each attempt from these fields; nothing here is a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutDelivery {
    pub id: String,
    pub client_id: String,
    /// The user (`sub`).
    pub subject: String,
    /// The session that ended (`sid`); `None` means every session of the user.
    pub sid: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub given_up_at: Option<i64>,
}

/// How the logout outbox stands, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogoutDeliveryCounts {
    /// Neither delivered nor given up.
    pub pending: i64,
    /// Pending and tried at least once without success.
    pub retrying: i64,
    pub delivered: i64,
    pub given_up: i64,
    /// When the oldest pending delivery was queued.
    pub oldest_pending_at: Option<i64>,
}

/// What queueing the logouts of ended sessions did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueuedLogouts {
    /// Deliveries queued.
    pub queued: u64,
    /// Logouts not queued because their client already had
    /// [`crate::backchannel::MAX_PENDING_PER_CLIENT`] waiting.
    pub dropped: u64,
}

/// A signed-in browser session as the account page lists it. Its id is a random handle
/// kept in the session (not the cookie's value, which is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub ended_at: Option<i64>,
}

/// What kind of second factor a [`Factor`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// An authenticator app (RFC 6238).
    Totp,
    /// A WebAuthn credential.
    Passkey,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Passkey => "passkey",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "totp" => Some(Self::Totp),
            "passkey" => Some(Self::Passkey),
            _ => None,
        }
    }
}

/// A second factor of a user's. A TOTP factor counts once confirmed by a valid code; until
/// then (`confirmed_at` empty) it is an enrolment in progress, deleted after an hour.
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    /// The user's name for it ("Phone", "YubiKey").
    pub name: String,
    /// TOTP: the secret, sealed under the factor key. Passkey: the credential as the
    /// WebAuthn library keeps it (public key and counter; nothing secret).
    pub data: String,
    /// Passkey: the credential id (base64url), unique across users.
    pub credential_id: Option<String>,
    /// TOTP: the last time step a code was accepted for (a code is good once).
    pub last_step: Option<i64>,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl Factor {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

/// An initial access token for dynamic registration (`--registration token`, RFC 7591 §3):
/// only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub id: String,
    pub token_hash: String,
    /// Registrations it may still make.
    pub uses_left: i64,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A protected resource (RFC 8707 `resource`), registered with the scopes it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource identifier: an absolute URI without a fragment.
    pub uri: String,
    pub name: String,
    /// The scopes a token for this resource may carry (beside OpenID Connect's own).
    pub scopes: Vec<String>,
    /// Whether clients that registered themselves (dynamic registration, metadata
    /// documents) may ask for it.
    pub self_registered_clients: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pushed authorization request (RFC 9126): kept under the SHA-256 of its `request_uri`.
#[derive(Clone, PartialEq, Eq)]
pub struct PushedRequest {
    pub request_hash: String,
    pub client_id: String,
    /// The request's parameters, a JSON object of strings.
    pub parameters: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for PushedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushedRequest")
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
