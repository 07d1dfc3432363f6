//! RFC 7662 token introspection: the authoritative answer on whether a token is live.

use crate::authority::{Authority, ClientCredentials};
use crate::client::Client;
use crate::error::OAuthError;
use crate::revocation::TokenTypeHint;
use crate::secret::Secret;
use crate::token::AccessTokenClaims;
use serde::Serialize;

/// RFC 7662 §2.2 response. Only `active` is present for an inactive token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A string or an array of strings.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub aud: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// How the user signed in (RFC 9470 §5 asks introspection to return these).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// RFC 9449 §6.2: the DPoP key a bound access token (or a public client's bound refresh
    /// token) is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub cnf: Option<crate::dpop::Confirmation>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self::default()
    }
}

impl Authority {
    /// Introspects a token for an authenticated confidential client (a resource server).
    /// RFC 7662 §2.2 and §4: an access token is reported only to its own client or to a
    /// client registered with one of the token's audiences (see [`may_introspect`]); a
    /// refresh token only to its own client. Anyone else gets `active: false`.
    pub async fn introspect(
        &self,
        credentials: &ClientCredentials,
        token: Secret,
        hint: Option<TokenTypeHint>,
    ) -> Result<Introspection, OAuthError> {
        let client = self.authenticate_client(credentials).await?;
        if !client.is_confidential() {
            return Err(OAuthError::invalid_client(
                "introspection requires an authenticated confidential client",
            ));
        }
        let looks_like_jwt = token.expose().matches('.').count() == 2;
        if looks_like_jwt || hint == Some(TokenTypeHint::AccessToken) {
            if let Ok(claims) = self.verify_access_token(token.expose()) {
                if !may_introspect(&client, &claims) || !self.is_access_token_live(&claims).await? {
                    return Ok(Introspection::inactive());
                }
                let username = if claims.is_for_user() {
                    self.store.find_user(&claims.sub).await?.map(|u| u.username)
                } else {
                    None
                };
                let aud = match claims.aud.as_slice() {
                    [one] => serde_json::Value::from(one.clone()),
                    many => serde_json::Value::from(many.to_vec()),
                };
                return Ok(Introspection {
                    active: true,
                    scope: Some(claims.scope),
                    client_id: Some(claims.client_id),
                    username,
                    token_type: Some(
                        if claims.cnf.is_some() {
                            "DPoP"
                        } else {
                            "Bearer"
                        }
                        .into(),
                    ),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    sub: Some(claims.sub),
                    aud: Some(aud),
                    iss: Some(claims.iss),
                    jti: Some(claims.jti),
                    auth_time: claims.auth_time,
                    acr: claims.acr,
                    amr: claims.amr,
                    cnf: claims.cnf,
                });
            }
            if looks_like_jwt {
                return Ok(Introspection::inactive());
            }
        }
        let Some((record, family)) = self.store.find_refresh_token(&token.storage_hash()).await?
        else {
            return Ok(Introspection::inactive());
        };
        let now = self.now();
        let live = family.client_id == client.id
            && family.revoked_at.is_none()
            && record.used_at.is_none()
            && record.expires_at > now
            && family.expires_at > now;
        if !live {
            return Ok(Introspection::inactive());
        }
        let user = match self.store.find_user(&family.user_id).await? {
            Some(user) if !user.is_disabled => user,
            _ => return Ok(Introspection::inactive()),
        };
        let auth =
            crate::factors::Authentication::from_stored(family.auth_time, &family.acr, &family.amr);
        Ok(Introspection {
            active: true,
            scope: Some(family.scope),
            client_id: Some(family.client_id),
            username: Some(user.username),
            token_type: Some("refresh_token".into()),
            exp: Some(record.expires_at),
            iat: Some(record.created_at),
            sub: Some(user.id),
            aud: None,
            iss: Some(self.config.issuer.clone()),
            jti: None,
            auth_time: Some(auth.auth_time),
            acr: Some(auth.acr),
            amr: Some(auth.amr),
            cnf: family.dpop_jkt.map(|jkt| crate::dpop::Confirmation { jkt }),
        })
    }
}

/// Whether `client` may learn about the access token with `claims`: it is the token's own
/// client, or a resource server the token is meant for, i.e. one of the client's registered
/// audiences is among the token's `aud`. Audiences, not client ids, are what a token's
/// `aud` holds (RFC 8707 resources or the client's first registered audience, never a
/// generated client id), so a resource server is recognised by its registered audiences.
pub fn may_introspect(client: &Client, claims: &AccessTokenClaims) -> bool {
    claims.client_id == client.id
        || claims
            .aud
            .iter()
            .any(|aud| client.audiences.iter().any(|own| own == aud))
}
