//! RFC 6749 §4.1.3 authorization code grant with PKCE (RFC 7636 §4.6). A code is single
//! use: a replay fails and revokes what the first exchange issued (RFC 6749 §4.1.2).

use super::{Issuance, Subject};
use crate::authority::Authority;
use crate::client::Client;
use crate::dpop::ProvenKey;
use crate::error::{ErrorCode, OAuthError};
use crate::factors::Authentication;
use crate::grant::TokenResponse;
use crate::pkce::verify_s256;
use crate::scope::ScopeSet;
use crate::secret::{random_token, Secret};
use crate::store::AuthorizationCode;

impl Authority {
    pub(crate) async fn authorization_code_grant(
        &self,
        client: &Client,
        code: Secret,
        redirect_uri: Option<String>,
        code_verifier: Option<Secret>,
        resources: &[String],
        dpop: Option<&ProvenKey>,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid =
            || OAuthError::invalid_grant("the authorization code is invalid, expired or used");
        let now = self.now();
        let code_hash = code.storage_hash();
        let Some(record) = self.store.find_authorization_code(&code_hash).await? else {
            return Err(invalid());
        };
        if record.client_id != client.id {
            return Err(invalid());
        }
        if record.used_at.is_some() {
            self.revoke_code_tokens(&record, now).await?;
            return Err(invalid());
        }
        if record.expires_at <= now {
            return Err(invalid());
        }
        match redirect_uri.as_deref() {
            Some(uri) if uri != record.redirect_uri => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri does not match the authorization request",
                ))
            }
            None if record.redirect_uri_given => {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri is required: the authorization request had one",
                ))
            }
            _ => {}
        }
        let verifier = code_verifier
            .ok_or_else(|| OAuthError::invalid_grant("code_verifier is required (PKCE)"))?;
        if !verify_s256(verifier.expose(), &record.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "the code_verifier does not match the code_challenge",
            ));
        }
        // RFC 9449 §10: a code bound to a key (`dpop_jkt`) is exchanged only with a proof
        // of that key.
        if let Some(bound) = &record.dpop_jkt {
            match dpop {
                Some(key) if key.jkt == *bound => {}
                Some(_) => {
                    return Err(OAuthError::invalid_grant(
                        "the authorization code is bound to another DPoP key (dpop_jkt)",
                    ))
                }
                None => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidDpopProof,
                        "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof of it",
                    ))
                }
            }
        }
        let user = match self.store.find_user(&record.user_id).await? {
            Some(user) if !user.is_disabled => user,
            _ => return Err(invalid()),
        };
        let granted_scope = ScopeSet::parse(&record.scope)?;
        // RFC 8707 §2.2: the token may be for some of the resources the request named.
        let named = self
            .narrow_resources(client, &record.resources, resources, &granted_scope)
            .await?;
        let scope = if resources.is_empty() {
            granted_scope.clone()
        } else {
            self.scope_for_resources(&granted_scope, &named).await?
        };
        let audience = self.audience_for(client, &named);
        let family_resources = if record.resources.is_empty() {
            named.clone()
        } else {
            record.resources.clone()
        };
        // The family is created first and recorded with the code in one conditional update,
        // so that a replay racing this exchange always finds something to revoke.
        let auth = Authentication::from_stored(record.auth_time, &record.acr, &record.amr)
            .in_session(record.sid.clone());
        let refresh = if Self::wants_refresh_token(client, &granted_scope) {
            Some(
                self.start_refresh_family(
                    client,
                    &user,
                    &granted_scope,
                    &auth,
                    &family_resources,
                    dpop,
                )
                .await?,
            )
        } else {
            None
        };
        let jti = random_token(16);
        let exp = now + self.access_token_ttl(client);
        let family_id = refresh.as_ref().map(|r| r.family_id.as_str());
        if !self
            .store
            .consume_authorization_code(&code_hash, now, family_id, &jti, exp)
            .await?
        {
            if let Some(id) = family_id {
                self.store.revoke_refresh_family(id, now).await?;
            }
            if let Some(record) = self.store.find_authorization_code(&code_hash).await? {
                self.revoke_code_tokens(&record, now).await?;
            }
            return Err(invalid());
        }
        self.issue(
            client,
            Issuance {
                subject: Subject::User {
                    user: &user,
                    auth: &auth,
                },
                scope: &scope,
                audience,
                refresh,
                nonce: record.nonce.clone(),
                ids: Some((jti, now)),
                dpop,
            },
        )
        .await
    }

    /// A used code came back: revoke the refresh family and access token it produced.
    async fn revoke_code_tokens(
        &self,
        record: &AuthorizationCode,
        now: i64,
    ) -> Result<(), OAuthError> {
        tracing::warn!(client = %record.client_id, "authorization code replayed; revoking the tokens it issued");
        if let Some(family_id) = &record.family_id {
            self.store.revoke_refresh_family(family_id, now).await?;
        }
        if let (Some(jti), Some(exp)) = (&record.access_token_jti, record.access_token_exp) {
            self.store.revoke_access_token(jti, exp).await?;
        }
        Ok(())
    }
}
