//! OpenID Connect Core §5.3 UserInfo endpoint: claims about the user, by scope.

use crate::authority::Authority;
use crate::dpop::DpopProof;
use crate::error::{ErrorCode, OAuthError};
use serde::Serialize;

/// OIDC Core §5.1 standard claims that Sigil knows.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// How the access token was presented (RFC 6750 §2, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    /// `Authorization: Bearer`, or the form body.
    Bearer,
    /// `Authorization: DPoP`, with the request's proof if it had one.
    Dpop(Option<DpopProof<'a>>),
}

impl Authority {
    /// Returns the claims the access token's scope allows. Errors are RFC 6750 codes.
    pub async fn userinfo(&self, access_token: &str) -> Result<UserInfo, OAuthError> {
        self.userinfo_presented(access_token, Presented::Bearer)
            .await
    }

    /// [`Authority::userinfo`] for a token presented as `presented` (RFC 9449 §7.1): a
    /// DPoP-bound token only with the DPoP scheme and a proof of its key (`ath` its hash);
    /// a bearer token only as Bearer.
    pub async fn userinfo_presented(
        &self,
        access_token: &str,
        presented: Presented<'_>,
    ) -> Result<UserInfo, OAuthError> {
        let claims = self
            .verify_access_token(access_token)
            .map_err(|e| OAuthError::invalid_token(e.to_string()))?;
        match (&claims.cnf, presented) {
            (None, Presented::Bearer) => {}
            (Some(_), Presented::Bearer) => {
                return Err(OAuthError::invalid_token(
                    "the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof",
                ))
            }
            (_, Presented::Dpop(None)) => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "the DPoP scheme needs a DPoP proof header",
                ))
            }
            (None, Presented::Dpop(Some(_))) => {
                // RFC 9449 §7.1: the DPoP scheme is for DPoP-bound tokens; its key check
                // cannot pass for a token bound to nothing (sigil-verify refuses it too).
                return Err(OAuthError::invalid_token(
                    "the token is not DPoP-bound: send it as Authorization: Bearer",
                ));
            }
            (Some(cnf), Presented::Dpop(Some(proof))) => {
                let jkt = self
                    .check_dpop_proof(proof, "/userinfo", Some(access_token))
                    .await?;
                if cnf.jkt != jkt {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidDpopProof,
                        "the DPoP proof is not signed with the key the token is bound to",
                    ));
                }
            }
        }
        if !self.is_access_token_live(&claims).await? {
            return Err(OAuthError::invalid_token("the token has been revoked"));
        }
        if !claims.has_scope("openid") {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "the userinfo endpoint requires the openid scope",
            ));
        }
        if !claims.is_for_user() {
            return Err(OAuthError::invalid_token(
                "the token was not issued to a user",
            ));
        }
        let user = self
            .store
            .find_user(&claims.sub)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the token has been revoked"))?;
        let profile = claims.has_scope("profile");
        let email = claims.has_scope("email");
        Ok(UserInfo {
            sub: user.id,
            name: user.name.filter(|_| profile),
            preferred_username: profile.then_some(user.username),
            updated_at: profile.then_some(user.updated_at),
            email_verified: (email && user.email.is_some()).then_some(user.email_verified),
            email: user.email.filter(|_| email),
        })
    }
}
