//! RFC 6749 §6 refresh token grant with rotation and reuse detection (RFC 9700 §4.14.2).

use super::{refresh_seal, Issuance, NewRefreshToken, Subject};
use crate::audit::Caller;
use crate::authority::Authority;
use crate::client::Client;
use crate::dpop::ProvenKey;
use crate::error::{ErrorCode, OAuthError};
use crate::factors::Authentication;
use crate::grant::TokenResponse;
use crate::scope::ScopeSet;
use crate::secret::{random_token, Secret};
use crate::store::RefreshTokenRecord;

impl Authority {
    pub(crate) async fn refresh_token_grant(
        &self,
        client: &Client,
        presented: Secret,
        scope: Option<ScopeSet>,
        resources: &[String],
        dpop: Option<&ProvenKey>,
        caller: &Caller,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid =
            || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
        let presented_hash = presented.storage_hash();
        let grace = self.config.refresh_reuse_grace;
        // At most two passes: with a grace window, a lost race is judged again on what the
        // winner wrote, and then answered with the winner's (sealed) response.
        for _ in 0..2 {
            let now = self.now();
            let Some((token, family, user)) = self
                .store
                .find_refresh_token_and_user(&presented_hash)
                .await?
            else {
                return Err(invalid());
            };
            if family.client_id != client.id || family.revoked_at.is_some() {
                return Err(invalid());
            }
            if let Some(used_at) = token.used_at {
                if let Some(response) = self.replay_within_grace(&presented, &token, used_at, now) {
                    return Ok(response);
                }
                // A rotated token came back: whoever holds the family is not to be trusted.
                tracing::warn!(family = %family.id, client = %client.id, "refresh token reuse detected; family revoked");
                self.store.revoke_refresh_family(&family.id, now).await?;
                self.audit_reuse(&family, client, caller).await;
                return Err(invalid());
            }
            if token.expires_at <= now || family.expires_at <= now {
                return Err(invalid());
            }
            // RFC 9449 §5.2: a bound family is refreshed only with a proof of its key, and
            // every access token it issues is bound to that key.
            if let Some(bound) = &family.dpop_jkt {
                match dpop {
                    Some(key) if key.jkt == *bound => {}
                    Some(_) => {
                        return Err(OAuthError::invalid_grant(
                            "the refresh token is bound to another DPoP key",
                        ))
                    }
                    None => {
                        return Err(OAuthError::new(
                            ErrorCode::InvalidDpopProof,
                            "the refresh token is bound to a DPoP key: send a DPoP proof of it",
                        ))
                    }
                }
            }
            let granted = ScopeSet::parse(&family.scope)?;
            // RFC 6749 §6: a refresh may narrow the scope, never widen it.
            let scope = Self::resolve_scope(scope.clone(), &granted)?;
            // RFC 8707 §2.2: and the resources too.
            let named = self
                .narrow_resources(client, &family.resources, resources, &scope)
                .await?;
            let scope = if resources.is_empty() {
                scope
            } else {
                self.scope_for_resources(&scope, &named).await?
            };
            let audience = self.audience_for(client, &named);
            let user = match user {
                Some(user) if !user.is_disabled => user,
                _ => {
                    self.store.revoke_refresh_family(&family.id, now).await?;
                    return Err(invalid());
                }
            };
            let successor_token = Secret::generate();
            let successor = RefreshTokenRecord {
                id: random_token(16),
                family_id: family.id.clone(),
                token_hash: successor_token.storage_hash(),
                parent_id: Some(token.id.clone()),
                created_at: now,
                expires_at: (now + self.refresh_token_ttl(client)).min(family.expires_at),
                used_at: None,
                sealed_successor: None,
            };
            // Sign before writing: if issuing fails (an overloaded signing pool, say),
            // nothing has changed and the presented token still works.
            let response = self
                .issue(
                    client,
                    Issuance {
                        subject: Subject::User {
                            user: &user,
                            auth: &Authentication::from_stored(
                                family.auth_time,
                                &family.acr,
                                &family.amr,
                            )
                            .in_session(family.sid.clone()),
                        },
                        scope: &scope,
                        audience,
                        refresh: Some(NewRefreshToken {
                            family_id: family.id.clone(),
                            token: successor_token,
                        }),
                        nonce: None,
                        ids: None,
                        dpop,
                    },
                )
                .await?;
            let sealed = if grace > 0 {
                let sealed = refresh_seal::seal(&presented, &token.id, &response, now);
                if sealed.is_none() {
                    return Err(OAuthError::server_error(
                        &"cannot seal the refresh response",
                    ));
                }
                sealed
            } else {
                None
            };
            if self
                .store
                .rotate_refresh_token(&token.id, &successor, now, sealed.as_deref())
                .await?
            {
                return Ok(response);
            }
            if grace == 0 {
                // Lost a race with another use of the same token: under the strict
                // default that is reuse.
                tracing::warn!(family = %family.id, client = %client.id, "concurrent refresh token reuse; family revoked");
                self.store.revoke_refresh_family(&family.id, now).await?;
                self.audit_reuse(&family, client, caller).await;
                return Err(invalid());
            }
        }
        Err(invalid())
    }

    /// With a grace window: a replay of a token rotated at most `refresh_reuse_grace`
    /// seconds ago gets the response of that rotation again (same successor), opened
    /// with the presented token itself.
    fn replay_within_grace(
        &self,
        presented: &Secret,
        token: &RefreshTokenRecord,
        used_at: i64,
        now: i64,
    ) -> Option<TokenResponse> {
        let grace = self.config.refresh_reuse_grace;
        if grace <= 0 || now - used_at > grace {
            return None;
        }
        let sealed = token.sealed_successor.as_deref()?;
        refresh_seal::open(presented, &token.id, sealed, now)
    }

    async fn audit_reuse(
        &self,
        family: &crate::store::RefreshFamily,
        client: &Client,
        caller: &Caller,
    ) {
        self.events
            .refresh_reuse_detected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.audit_log.count(crate::activity::Event::RefreshReuse {
            client_id: &client.id,
        });
        let user = self.store.find_user(&family.user_id).await.ok().flatten();
        self.audit(
            caller,
            "refresh_token.reuse_detected",
            user.as_ref().map(|u| u.username.as_str()),
            format!(
                "an already used refresh token of client {} came back; family {} revoked",
                client.id,
                crate::audit::reference(&family.id)
            ),
        )
        .await;
    }
}
