//! Application state shared by every handler: one `Clone` struct.

use crate::store::Database;
use sigil_core::admin::Admin;
use sigil_core::Authority;
use std::sync::Arc;

/// A prebuilt JSON document with its ETag.
#[derive(Debug)]
pub struct CachedDocument {
    pub body: String,
    pub etag: String,
}

impl CachedDocument {
    pub fn new(value: &serde_json::Value) -> Self {
        let body = value.to_string();
        let hash = sigil_core::secret::hash_for_storage(&body);
        Self {
            etag: format!("\"{}\"", &hash[..22]),
            body,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    /// The protocol engine: grants, tokens, the browser flow's decisions.
    pub authority: Arc<Authority>,
    /// The administration service: what the admin console reads and changes.
    pub admin: Arc<Admin>,
    /// Accounts people run themselves: sign-up, verification, reset, the account page.
    pub accounts: Arc<sigil_core::accounts::Accounts>,
    /// Second factors: authenticator apps, passkeys, recovery codes.
    pub factors: Arc<sigil_core::factors::SecondFactors>,
    /// The WebAuthn relying party of the issuer (passkeys), built once.
    pub passkeys: Arc<crate::passkeys::Passkeys>,
    /// Upstream identity providers: their settings and the identities linked to users.
    pub federation: Arc<sigil_core::federation::Federation>,
    /// The client side of upstream sign-ins (discovery and keys kept per provider).
    pub upstreams: Arc<crate::upstream::Upstreams>,
    /// Sigil's mail: the outbox and its delivery worker.
    pub mailer: Arc<crate::mail::Mailer>,
    /// The browser session cookie's name.
    pub session_cookie: String,
    pub database: Database,
    pub discovery: Arc<CachedDocument>,
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    pub jwks_max_age: u64,
    /// Browser sessions, in the same database.
    pub sessions: crate::sessions::AnySessionStore,
    /// Idle lifetime of a browser session, in seconds.
    pub session_ttl: i64,
    /// The longest a request may take, from its first byte to the answer (503 after).
    pub request_timeout: std::time::Duration,
    /// The signing-key directory, for the admin console's rotate and prune.
    pub keys_dir: crate::keyfiles::KeyDir,
    /// Counters and histograms served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Signs and checks the trusted-device cookies of the sign-in page.
    pub devices: Arc<sigil_core::device::DeviceKey>,
    /// Every origin some client allows, for CORS preflights.
    pub cors: Arc<crate::http::cors::AllowedOrigins>,
    /// Dynamic client registration (RFC 7591, 7592) and its limits.
    pub registrations: Arc<sigil_core::registration::Registrations>,
    /// Back-channel logout: the delivery worker of logout tokens.
    pub logouts: Arc<crate::backchannel::LogoutDeliverer>,
    /// How the activity counters are written and how long they are kept.
    pub activity: crate::activity::Settings,
}
