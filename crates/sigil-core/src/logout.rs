//! OpenID Connect RP-Initiated Logout 1.0: validating `id_token_hint`, `client_id` and
//! `post_logout_redirect_uri`.

use crate::authority::Authority;
use crate::error::OAuthError;
use crate::token::{verify_jwt, IdTokenClaims, ID_TOKEN_TYP};

/// The parameters of a logout request.
#[derive(Debug, Default, Clone)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// A validated logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The `sub` of a valid `id_token_hint`: ties the request to a signed-in user.
    pub hint_subject: Option<String>,
    /// A registered post-logout redirect URI, to send the browser to afterwards.
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    /// The client, from `client_id` or the hint's audience.
    pub client_id: Option<String>,
    pub client_name: Option<String>,
}

impl Authority {
    /// Validates a logout request. An invalid hint, a client mismatch or an unregistered
    /// redirect URI is `invalid_request`; a client look-up that fails passes its error on.
    /// Either is shown as a page, never redirected.
    pub async fn validate_logout(&self, params: LogoutParams) -> Result<LogoutPlan, OAuthError> {
        let invalid = OAuthError::invalid_request;
        let mut hint_subject = None;
        let mut hint_client = None;
        if let Some(hint) = params.id_token_hint.as_deref() {
            // An expired ID token is still a fine hint (the spec expects that); signature
            // and issuer must hold.
            let claims: IdTokenClaims = verify_jwt(&self.keys.current(), hint, ID_TOKEN_TYP)
                .map_err(|_| {
                    invalid("the id_token_hint is not a valid ID token from this server")
                })?;
            if claims.iss != self.config.issuer {
                return Err(invalid("the id_token_hint was issued by another server"));
            }
            hint_subject = Some(claims.sub);
            hint_client = Some(claims.aud);
        }
        let client_id = match (params.client_id, hint_client) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid("client_id does not match the id_token_hint"))
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let client = match &client_id {
            Some(id) => Some(
                self.find_client(id)
                    .await?
                    .ok_or_else(|| invalid("unknown client"))?,
            ),
            None => None,
        };
        let redirect_uri = match params.post_logout_redirect_uri {
            None => None,
            Some(uri) => {
                let client = client.as_ref().ok_or_else(|| {
                    invalid("post_logout_redirect_uri needs client_id or id_token_hint")
                })?;
                if !client.post_logout_redirect_uris.contains(&uri) {
                    return Err(invalid(
                        "the post_logout_redirect_uri is not registered for this client",
                    ));
                }
                Some(uri)
            }
        };
        Ok(LogoutPlan {
            hint_subject,
            redirect_uri,
            state: params.state,
            client_id: client.as_ref().map(|c| c.id.clone()),
            client_name: client.map(|c| c.name.clone()),
        })
    }
}
