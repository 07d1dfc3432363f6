//! Signing in through other identity providers ("sign in with …"): the providers an admin
//! configures, the upstream identities linked to local users, and the decision of what an
//! upstream sign-in comes to. An identity is its issuer and subject, never an e-mail
//! address: an address only ever leads to "prove that account first".
//!
//! The protocol side (discovery, the code exchange, ID-token checks) lives in the server,
//! over the `openidconnect` crate; this module decides and records.

mod provider;
mod service;
#[cfg(test)]
mod tests;

pub use provider::{
    check_upstream_url, validate_provider_id, NewProvider, Provider, ProviderKind,
    DEFAULT_OIDC_SCOPES,
};
pub use service::{Federation, FederationError, Resolution, UpstreamIdentity};

/// An upstream identity linked to a local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    /// The provider's issuer: with `subject`, what identifies the upstream account.
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
    /// The provider it was linked through (for the account page; a provider re-added
    /// with the same issuer finds its identities again).
    pub provider_id: String,
    /// The address the provider reported when it was linked, for the account page.
    pub email: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}
