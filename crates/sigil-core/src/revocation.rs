//! RFC 7009 token revocation.

use crate::audit::Caller;
use crate::authority::{Authority, ClientCredentials};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::token::{verify_jwt, AccessTokenClaims, ACCESS_TOKEN_TYP};

/// RFC 7009 §2.1 `token_type_hint`. Unknown hints are ignored (§2.1: the server extends its
/// search to all token types it supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

impl TokenTypeHint {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
}

impl Authority {
    /// Revokes a refresh token (its whole family, and with it the access tokens issued
    /// from it) or an access token (deny-listed until it expires). An unknown or invalid
    /// token is not an error (§2.2). A token of another client is refused.
    pub async fn revoke(
        &self,
        credentials: &ClientCredentials,
        token: Secret,
        hint: Option<TokenTypeHint>,
        caller: &Caller,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        let looks_like_jwt = token.expose().matches('.').count() == 2;
        let try_access_first = hint == Some(TokenTypeHint::AccessToken) || looks_like_jwt;
        let now = self.now();

        if try_access_first {
            let keys = self.keys.current();
            if let Ok(claims) =
                verify_jwt::<AccessTokenClaims>(&keys, token.expose(), ACCESS_TOKEN_TYP)
            {
                if claims.iss != self.config.issuer {
                    return Ok(());
                }
                if claims.client_id != client.id {
                    return Err(not_yours());
                }
                if claims.exp > now {
                    self.store
                        .revoke_access_token(&claims.jti, claims.exp)
                        .await?;
                    tracing::info!(client = %client.id, jti = %claims.jti, "access token revoked");
                    self.audit(
                        caller,
                        "token.revoked",
                        Some(&client.id),
                        format!("access token {} revoked by its client", claims.jti),
                    )
                    .await;
                }
                return Ok(());
            }
        }
        if let Some((_, family)) = self.store.find_refresh_token(&token.storage_hash()).await? {
            if family.client_id != client.id {
                return Err(not_yours());
            }
            self.store.revoke_refresh_family(&family.id, now).await?;
            tracing::info!(client = %client.id, family = %family.id, "refresh token family revoked");
            self.audit(
                caller,
                "token.revoked",
                Some(&client.id),
                format!(
                    "refresh token family {} revoked by its client",
                    crate::audit::reference(&family.id)
                ),
            )
            .await;
        }
        Ok(())
    }
}

fn not_yours() -> OAuthError {
    OAuthError::unauthorized_client("the token was not issued to this client")
}
