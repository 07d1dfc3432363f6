//! RFC 6749 §4.4 client credentials grant. Stateless: nothing is written to the store.

use super::{Issuance, Subject};
use crate::authority::Authority;
use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::grant::TokenResponse;
use crate::scope::ScopeSet;

impl Authority {
    pub(crate) async fn client_credentials_grant(
        &self,
        client: &Client,
        scope: Option<ScopeSet>,
        resources: &[String],
    ) -> Result<TokenResponse, OAuthError> {
        if !client.is_confidential() {
            return Err(OAuthError::unauthorized_client(
                "public clients cannot use client_credentials",
            ));
        }
        if !client.allows_grant(GrantType::ClientCredentials) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use the client_credentials grant",
            ));
        }
        let scope = Self::resolve_scope(scope, &client.allowed_scopes())?;
        let audience = self.resolve_audience(client, resources)?;
        // RFC 6749 §4.4.3: no refresh token; no ID token, as there is no user.
        let response = self
            .issue(
                client,
                Issuance {
                    subject: Subject::Client,
                    scope: &scope,
                    audience,
                    family_id: None,
                    nonce: None,
                    ids: None,
                },
            )
            .await?;
        Ok(response)
    }
}
