//! Signing in with Sigil through the `openidconnect` crate: discovery, the authorization
//! code flow with PKCE S256, `state` and `nonce`, ID-token validation, refresh, and the
//! RP-initiated logout URL. The crate does the protocol; this module only picks the types
//! and maps the errors.

use crate::secret::Secret;
use crate::session::{PendingLogin, Tokens, User};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The scopes todo-web asks for: who the user is, a refresh token, and the todo API.
pub const SCOPES: [&str; 5] = [
    "profile",
    "email",
    "offline_access",
    "todos:read",
    "todos:write",
];
/// Access tokens without `expires_in` are treated as living this long.
const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// Connecting to and answering from Sigil may take at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The one claim todo-web reads beyond the standard ones: `sid`, which back-channel logout
/// tokens name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionIdClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AdditionalClaims for SessionIdClaim {}

type TokenResponseWithSid = StandardTokenResponse<
    IdTokenFields<
        SessionIdClaim,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// `CoreClient`, but with `sid` in the ID token's claims; the authorization endpoint is
/// always set, the token endpoint is checked at start.
type OidcClient = openidconnect::Client<
    SessionIdClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponseWithSid,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What can go wrong talking to Sigil.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Sigil cannot be reached or answered nonsense: try again later.
    #[error("Sigil cannot be reached: {0}")]
    Unreachable(String),
    /// Sigil refused the code or the refresh token (`invalid_grant`): sign in again.
    #[error("Sigil refused the grant: {0}")]
    Refused(String),
    /// The answer is not trustworthy (a bad ID token, a wrong nonce).
    #[error("the sign-in answer is invalid: {0}")]
    Invalid(String),
}

/// The issuer, discovered once at start, and this app's registration at it.
#[derive(Clone)]
pub struct Provider {
    client: OidcClient,
    http: reqwest::Client,
    issuer: String,
    end_session_endpoint: Option<EndSessionUrl>,
    jwks_uri: url::Url,
    post_logout_redirect_uri: String,
}

impl Provider {
    /// Fetches the discovery document and the JWKS of `issuer`.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        public_url: &str,
    ) -> Result<Self, OidcError> {
        let http = http_client()?;
        let issuer_url =
            IssuerUrl::new(issuer.to_string()).map_err(|e| OidcError::Invalid(e.to_string()))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer_url, &http)
            .await
            .map_err(|e| OidcError::Unreachable(error_chain(&e)))?;
        let end_session_endpoint = metadata.additional_metadata().end_session_endpoint.clone();
        let jwks_uri = metadata.jwks_uri().url().clone();
        let redirect_uri = RedirectUrl::new(format!("{public_url}/callback"))
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.to_string()),
            Some(ClientSecret::new(client_secret.to_string())),
        )
        .set_redirect_uri(redirect_uri);
        Ok(Self {
            client,
            http,
            issuer: issuer.to_string(),
            end_session_endpoint,
            jwks_uri,
            post_logout_redirect_uri: format!("{public_url}/"),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &str {
        self.client.client_id().as_str()
    }

    pub fn jwks_uri(&self) -> &url::Url {
        &self.jwks_uri
    }

    /// The HTTP client used for Sigil (no redirects followed, timeouts set).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts a sign-in: the authorization URL, with what the callback must check.
    pub fn start_login(&self) -> (url::Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(SCOPES.iter().map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin::new(
            Secret::new(state.secret().clone()),
            Secret::new(nonce.secret().clone()),
            Secret::new(verifier.secret().clone()),
        );
        (url, pending)
    }

    /// Finishes a sign-in whose `state` the caller has checked: exchanges the code (with
    /// the PKCE verifier) and validates the ID token (signature, `iss`, `aud`, `exp`,
    /// `nonce`, and `at_hash` when present).
    pub async fn finish_login(
        &self,
        pending: &PendingLogin,
        code: &str,
    ) -> Result<(User, Tokens), OidcError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Invalid(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(
                pending.pkce_verifier.expose().to_string(),
            ))
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Invalid("the token response has no ID token".into()))?;
        let verifier = self.client.id_token_verifier();
        let nonce = Nonce::new(pending.nonce.expose().to_string());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| OidcError::Invalid(format!("ID token: {e}")))?;
        if let Some(expected) = claims.access_token_hash() {
            let signing_alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::Invalid(e.to_string()))?;
            let signing_key = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::Invalid(e.to_string()))?;
            let actual = openidconnect::AccessTokenHash::from_token(
                response.access_token(),
                signing_alg,
                signing_key,
            )
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
            if actual != *expected {
                return Err(OidcError::Invalid("the at_hash does not match".into()));
            }
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()))
            .unwrap_or_else(|| claims.subject().as_str().to_string());
        let user = User {
            subject: claims.subject().as_str().to_string(),
            name,
            session_id: claims.additional_claims().sid.clone(),
        };
        let lifetime = response
            .expires_in()
            .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME);
        let tokens = Tokens {
            access_token: Secret::new(response.access_token().secret().clone()),
            access_token_expires_at: Instant::now() + lifetime,
            access_token_lifetime: lifetime,
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            id_token: Secret::new(id_token.to_string()),
        };
        Ok((user, tokens))
    }

    /// Spends the refresh token for a new access token, keeping the newest refresh token
    /// Sigil returns (it rotates them). The caller holds the session's token lock.
    pub async fn refresh(&self, tokens: &mut Tokens) -> Result<(), OidcError> {
        let Some(refresh_token) = tokens.refresh_token.as_ref() else {
            return Err(OidcError::Refused("no refresh token was issued".into()));
        };
        let refresh_token = RefreshToken::new(refresh_token.expose().to_string());
        let response = self
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| OidcError::Invalid(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let lifetime = response
            .expires_in()
            .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME);
        tokens.access_token = Secret::new(response.access_token().secret().clone());
        tokens.access_token_expires_at = Instant::now() + lifetime;
        tokens.access_token_lifetime = lifetime;
        if let Some(rotated) = response.refresh_token() {
            tokens.refresh_token = Some(Secret::new(rotated.secret().clone()));
        }
        Ok(())
    }

    /// The RP-initiated logout URL (RP-Initiated Logout 1.0 §2) with `id_token_hint`,
    /// `post_logout_redirect_uri` and `state`; `None` when Sigil has no end-session
    /// endpoint.
    pub fn logout_url(&self, id_token: &str, state: &str) -> Option<url::Url> {
        let endpoint = self.end_session_endpoint.clone()?;
        let mut url = LogoutRequest::from(endpoint)
            .set_post_logout_redirect_uri(
                PostLogoutRedirectUrl::new(self.post_logout_redirect_uri.clone()).ok()?,
            )
            .set_state(CsrfToken::new(state.to_string()))
            .http_get_url();
        // The crate takes the hint only as a typed ID token; the raw one we kept is the same.
        url.query_pairs_mut().append_pair("id_token_hint", id_token);
        Some(url)
    }
}

/// reqwest without redirects (an OAuth client must not follow them) and with timeouts.
fn http_client() -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("todo-web/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| OidcError::Unreachable(e.to_string()))
}

fn token_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let text = match response.error_description() {
                Some(description) => format!("{}: {description}", response.error()),
                None => response.error().to_string(),
            };
            match response.error() {
                CoreErrorResponseType::InvalidGrant => OidcError::Refused(text),
                _ => OidcError::Invalid(text),
            }
        }
        RequestTokenError::Request(e) => OidcError::Unreachable(error_chain(&e)),
        other => OidcError::Unreachable(error_chain(&other)),
    }
}

/// An error with its causes, for logs and error pages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
