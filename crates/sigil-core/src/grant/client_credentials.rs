//! RFC 6749 §4.4 client credentials grant. Stateless: nothing is written to the store
//! (but the `jti` of a DPoP proof, when the request has one).

use super::{Issuance, Subject};
use crate::authority::Authority;
use crate::client::Client;
use crate::dpop::ProvenKey;
use crate::error::OAuthError;
use crate::grant::TokenResponse;
use crate::scope::ScopeSet;

impl Authority {
    pub(crate) async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<ScopeSet>,
        resources: &[String],
        dpop: Option<&ProvenKey>,
    ) -> Result<TokenResponse, OAuthError> {
        let given = scope.is_some();
        let scope = Self::client_credentials_scope(scope, client)?;
        let (scope, resources) = self
            .scope_and_resources(client, given.then_some(scope.clone()), &scope, resources)
            .await?;
        let audience = self.audience_for(client, &resources);
        // RFC 6749 §4.4.3: no refresh token; no ID token, as there is no user.
        self.issue(
            client,
            Issuance {
                subject: Subject::Client,
                scope: &scope,
                audience,
                refresh: None,
                nonce: None,
                ids: None,
                dpop,
            },
        )
        .await
    }

    /// RFC 6749 §3.3 for a token the client gets for itself: user scopes (`openid`,
    /// `offline_access`, `profile`, ...) are never granted, as there is no user. Asked for,
    /// they are `invalid_scope`; an omitted `scope` is the pre-defined default, the client's
    /// scopes without them, which may be empty (a token that names only client and audience).
    fn client_credentials_scope(
        requested: Option<ScopeSet>,
        client: &Client,
    ) -> Result<ScopeSet, OAuthError> {
        if let Some(requested) = &requested {
            let user_scopes = requested.user_scopes();
            if !user_scopes.is_empty() {
                return Err(OAuthError::invalid_scope(format!(
                    "scope not allowed for client_credentials (it speaks of a user, and this grant has none): {}",
                    user_scopes.join(" ")
                )));
            }
        }
        Self::resolve_scope(requested, &client.allowed_scopes().without_user_scopes())
    }
}
