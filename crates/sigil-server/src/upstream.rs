//! The relying-party side of "sign in with …": Sigil as a client of an upstream provider,
//! through the `openidconnect` crate (discovery, the code exchange with PKCE, ID-token
//! validation: signature against the provider's JWKS, `iss`, `aud`, `azp`, `exp`, `nonce`)
//! and, for plain OAuth 2.0 providers, the `oauth2` crate and a userinfo call.
//!
//! Every upstream request goes through [`UpstreamHttp`]: https only (http on a loopback
//! address for a provider with `--allow-http`), no redirects followed, time-limited, and
//! answers cut off at [`MAX_BODY`]. Each provider's discovery document and keys are kept
//! for [`METADATA_TTL`]; an ID token signed with a key not in them fetches the keys again
//! (at most every [`JWKS_REFETCH_GAP`]), so a provider's key rotation needs no restart.

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
    CoreUserInfoClaims,
};
use openidconnect::{
    AdditionalProviderMetadata, AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode,
    ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse,
    IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    ProviderMetadata, RedirectUrl, Scope, SignatureVerificationError, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sigil_core::federation::{check_upstream_url, Provider, ProviderKind, UpstreamIdentity};
use sigil_core::secret::Secret;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest upstream answer read (discovery, keys, tokens, userinfo).
pub const MAX_BODY: usize = 512 * 1024;
/// How long a provider's discovery document and keys are used before they are fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of a provider's keys for an unknown `kid`.
pub const JWKS_REFETCH_GAP: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upstream sign-in failed. The messages go to the log, not to the page (which
/// says only what kind of failure it was).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider did not answer, or not within the limits.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The provider answered something Sigil does not accept (an ID token that fails its
    /// checks, a mix-up `iss`, a userinfo answer without the subject).
    #[error("the provider's answer was refused: {0}")]
    Invalid(String),
    /// The provider refused the code exchange.
    #[error("the provider refused the code: {0}")]
    Refused(String),
}

/// Why an upstream HTTP request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Transport(String),
    #[error("the answer is larger than {MAX_BODY} bytes")]
    TooLarge,
}

/// The HTTP client of one provider's requests (see the module's note).
#[derive(Clone)]
pub struct UpstreamHttp {
    client: reqwest::Client,
    allow_http: bool,
}

impl UpstreamHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = request.uri().to_string();
        check_upstream_url(&url, self.allow_http, "an upstream URL").map_err(HttpError::Url)?;
        let (parts, body) = request.into_parts();
        let mut response = self
            .client
            .request(parts.method, &url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError::Transport(e.without_url().to_string()))?;
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::Transport(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

impl<'c> AsyncHttpClient<'c> for UpstreamHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The discovery member RFC 9207 adds, beside the standard ones.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IssParameter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for IssParameter {}

type Metadata = ProviderMetadata<
    IssParameter,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A provider's discovery document and keys, as fetched.
struct Cached {
    /// The provider's settings it was fetched for (a changed provider fetches again).
    issuer: String,
    updated_at: i64,
    metadata: Metadata,
    fetched_at: Instant,
    keys_fetched_at: Instant,
}

/// An upstream sign-in started: where to send the browser, and what the callback needs.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The upstream providers' client side, shared by every request. Cheap to share behind
/// an `Arc`.
pub struct Upstreams {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Arc<Cached>>>,
    /// [`JWKS_REFETCH_GAP`], shorter in tests.
    refetch_gap: Duration,
}

/// An error with its causes, for the log (the crates' own messages stop at "Request
/// failed").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unreachable(error: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unreachable(error.to_string())
}

impl Upstreams {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("Sigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the upstream HTTP client: {e}"))?;
        Ok(Self {
            client,
            cache: Mutex::new(HashMap::new()),
            refetch_gap: JWKS_REFETCH_GAP,
        })
    }

    /// With another least time between key fetches (tests).
    pub fn with_refetch_gap(mut self, gap: Duration) -> Self {
        self.refetch_gap = gap;
        self
    }

    fn http(&self, provider: &Provider) -> UpstreamHttp {
        UpstreamHttp {
            client: self.client.clone(),
            allow_http: provider.allow_http,
        }
    }

    fn cached(&self, provider: &Provider) -> Option<Arc<Cached>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(&provider.id)
            .filter(|c| {
                c.issuer == provider.issuer
                    && c.updated_at == provider.updated_at
                    && c.fetched_at.elapsed() < METADATA_TTL
            })
            .cloned()
    }

    fn keep(&self, provider: &Provider, cached: Cached) -> Arc<Cached> {
        let cached = Arc::new(cached);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Providers removed meanwhile do not stay in memory for ever.
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(provider.id.clone(), cached.clone());
        cached
    }

    /// The provider's discovery document and keys: kept ones, or fetched now.
    async fn metadata(&self, provider: &Provider) -> Result<Arc<Cached>, UpstreamError> {
        if let Some(cached) = self.cached(provider) {
            return Ok(cached);
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(unreachable)?;
        // The crate checks that the document's issuer is exactly this one.
        let metadata = Metadata::discover_async(issuer, &self.http(provider))
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("discovery: {}", chain(&e))))?;
        let now = Instant::now();
        Ok(self.keep(
            provider,
            Cached {
                issuer: provider.issuer.clone(),
                updated_at: provider.updated_at,
                metadata,
                fetched_at: now,
                keys_fetched_at: now,
            },
        ))
    }

    /// The provider's keys fetched again (an ID token named a key not among them), unless
    /// they were fetched within [`JWKS_REFETCH_GAP`]. `None` when they were not.
    async fn refetch_keys(
        &self,
        provider: &Provider,
        cached: &Cached,
    ) -> Result<Option<Arc<Cached>>, UpstreamError> {
        if cached.keys_fetched_at.elapsed() < self.refetch_gap {
            return Ok(None);
        }
        let keys = JsonWebKeySet::fetch_async(cached.metadata.jwks_uri(), &self.http(provider))
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("keys: {}", chain(&e))))?;
        tracing::info!(provider = %provider.id, "fetched the provider's keys again for an unknown key id");
        Ok(Some(self.keep(
            provider,
            Cached {
                issuer: cached.issuer.clone(),
                updated_at: cached.updated_at,
                metadata: cached.metadata.clone().set_jwks(keys),
                fetched_at: cached.fetched_at,
                keys_fetched_at: Instant::now(),
            },
        )))
    }

    fn oidc_client(
        cached: &Cached,
        provider: &Provider,
        secret: Option<&Secret>,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        UpstreamError,
    > {
        let metadata = &cached.metadata;
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.client_id.clone()),
            secret.map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).map_err(unreachable)?);
        // client_secret_basic unless the provider only takes client_secret_post.
        let methods = metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            m.contains(&CoreClientAuthMethod::ClientSecretPost)
                && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }

    fn oauth2_client(
        provider: &Provider,
        secret: Option<&Secret>,
        redirect_uri: &str,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        UpstreamError,
    > {
        let (Some(authorize), Some(token)) = (&provider.authorize_url, &provider.token_url) else {
            return Err(UpstreamError::Invalid(
                "the provider has no authorization or token URL".into(),
            ));
        };
        let mut client = oauth2::basic::BasicClient::new(ClientId::new(provider.client_id.clone()))
            .set_auth_uri(AuthUrl::new(authorize.clone()).map_err(unreachable)?)
            .set_token_uri(TokenUrl::new(token.clone()).map_err(unreachable)?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).map_err(unreachable)?);
        if let Some(secret) = secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok(client)
    }

    /// Starts a sign-in: the provider's authorization URL with a fresh `state`, `nonce`
    /// (OpenID Connect) and PKCE S256 challenge.
    pub async fn start(
        &self,
        provider: &Provider,
        redirect_uri: &str,
    ) -> Result<Started, UpstreamError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        // The OpenID Connect client adds `openid` itself; a plain OAuth 2.0 provider gets
        // the list as it is.
        let is_oidc = provider.kind == ProviderKind::Oidc;
        let scopes = provider
            .scope_list()
            .filter(move |s| !(is_oidc && *s == "openid"))
            .map(|s| Scope::new(s.to_string()));
        let (url, state, nonce) = match provider.kind {
            ProviderKind::Oidc => {
                let cached = self.metadata(provider).await?;
                let client = Self::oidc_client(&cached, provider, None, redirect_uri)?;
                let (url, state, nonce) = client
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        CsrfToken::new_random,
                        Nonce::new_random,
                    )
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge)
                    .url();
                (url, state, nonce)
            }
            ProviderKind::OAuth2 => {
                let client = Self::oauth2_client(provider, None, redirect_uri)?;
                let (url, state) = client
                    .authorize_url(CsrfToken::new_random)
                    .add_scopes(scopes)
                    .set_pkce_challenge(challenge)
                    .url();
                (url, state, Nonce::new_random())
            }
        };
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// RFC 9207: an authorization response's `iss` must be the provider's issuer, and a
    /// provider that says it sends one must send it (the mix-up defence of RFC 9700 §4.4).
    pub async fn check_response_issuer(
        &self,
        provider: &Provider,
        iss: Option<&str>,
    ) -> Result<(), UpstreamError> {
        let promised = match provider.kind {
            ProviderKind::Oidc => self
                .metadata(provider)
                .await?
                .metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
            ProviderKind::OAuth2 => false,
        };
        match iss {
            Some(iss) if iss == provider.issuer => Ok(()),
            Some(iss) => Err(UpstreamError::Invalid(format!(
                "the authorization response came from issuer {iss:?}, not {:?} (RFC 9207)",
                provider.issuer
            ))),
            None if promised => Err(UpstreamError::Invalid(
                "the provider promises an iss in its authorization responses and sent none (RFC 9207)".into(),
            )),
            None => Ok(()),
        }
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier), checks what comes
    /// back, and says who signed in. Upstream tokens are dropped here: nothing keeps them.
    pub async fn finish(
        &self,
        provider: &Provider,
        secret: &Secret,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let http = self.http(provider);
        match provider.kind {
            ProviderKind::Oidc => {
                let cached = self.metadata(provider).await?;
                let client = Self::oidc_client(&cached, provider, Some(secret), redirect_uri)?;
                let tokens = client
                    .exchange_code(AuthorizationCode::new(code.to_string()))
                    .map_err(|e| UpstreamError::Invalid(e.to_string()))?
                    .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
                    .request_async(&http)
                    .await
                    .map_err(token_error)?;
                let id_token = tokens.id_token().ok_or_else(|| {
                    UpstreamError::Invalid("the token response has no ID token".into())
                })?;
                let nonce = Nonce::new(nonce.to_string());
                let verified = {
                    let verifier = client.id_token_verifier();
                    id_token.claims(&verifier, &nonce).cloned()
                };
                let claims = match verified {
                    Err(ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::NoMatchingKey,
                    )) => {
                        let Some(fresh) = self.refetch_keys(provider, &cached).await? else {
                            return Err(UpstreamError::Invalid(
                                "the ID token is signed with a key the provider does not publish"
                                    .into(),
                            ));
                        };
                        let client =
                            Self::oidc_client(&fresh, provider, Some(secret), redirect_uri)?;
                        let verifier = client.id_token_verifier();
                        id_token
                            .claims(&verifier, &nonce)
                            .cloned()
                            .map_err(|e| UpstreamError::Invalid(format!("ID token: {e}")))?
                    }
                    other => other.map_err(|e| UpstreamError::Invalid(format!("ID token: {e}")))?,
                };
                let mut identity = UpstreamIdentity {
                    issuer: provider.issuer.clone(),
                    subject: claims.subject().as_str().to_string(),
                    email: claims.email().map(|e| e.as_str().to_string()),
                    email_verified: claims.email_verified().unwrap_or(false),
                    name: claims
                        .name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.as_str().to_string()),
                    preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
                };
                // The ID token may leave the profile to userinfo (OIDC Core §5.4).
                if identity.email.is_none() || identity.name.is_none() {
                    if let Ok(request) = client.user_info(
                        tokens.access_token().clone(),
                        Some(claims.subject().clone()),
                    ) {
                        // Best effort: the ID token already said who signed in.
                        let info: CoreUserInfoClaims = match request.request_async(&http).await {
                            Ok(info) => info,
                            Err(error) => {
                                tracing::info!(provider = %provider.id, error = %chain(&error), "userinfo failed; going on with the ID token's claims");
                                return Ok(identity);
                            }
                        };
                        if identity.email.is_none() {
                            identity.email = info.email().map(|e| e.as_str().to_string());
                            identity.email_verified = info.email_verified().unwrap_or(false);
                        }
                        if identity.name.is_none() {
                            identity.name = info
                                .name()
                                .and_then(|n| n.get(None))
                                .map(|n| n.as_str().to_string());
                        }
                        if identity.preferred_username.is_none() {
                            identity.preferred_username =
                                info.preferred_username().map(|u| u.as_str().to_string());
                        }
                    }
                }
                Ok(identity)
            }
            ProviderKind::OAuth2 => {
                let client = Self::oauth2_client(provider, Some(secret), redirect_uri)?;
                let tokens = client
                    .exchange_code(AuthorizationCode::new(code.to_string()))
                    .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
                    .request_async(&http)
                    .await
                    .map_err(token_error)?;
                let userinfo = provider.userinfo_url.as_deref().ok_or_else(|| {
                    UpstreamError::Invalid("the provider has no userinfo URL".into())
                })?;
                let info = self
                    .userinfo(&http, userinfo, tokens.access_token().secret())
                    .await?;
                identity_from_userinfo(provider, &info)
            }
        }
    }

    /// A plain OAuth 2.0 provider's userinfo: a JSON object, fetched with the access token.
    async fn userinfo(
        &self,
        http: &UpstreamHttp,
        url: &str,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, UpstreamError> {
        let request = openidconnect::http::Request::builder()
            .method(openidconnect::http::Method::GET)
            .uri(url)
            .header(
                openidconnect::http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(openidconnect::http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(unreachable)?;
        let response = http
            .send(request)
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("userinfo: {e}")))?;
        if !response.status().is_success() {
            return Err(UpstreamError::Refused(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        serde_json::from_slice(response.body())
            .map_err(|_| UpstreamError::Invalid("userinfo is not a JSON object".into()))
    }
}

/// A failed code exchange: the provider's refusal, or no answer.
fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    error: openidconnect::RequestTokenError<RE, T>,
) -> UpstreamError {
    match error {
        openidconnect::RequestTokenError::ServerResponse(response) => {
            UpstreamError::Refused(response.to_string())
        }
        openidconnect::RequestTokenError::Request(e) => UpstreamError::Unreachable(chain(&e)),
        other => UpstreamError::Invalid(chain(&other)),
    }
}

/// Who a plain OAuth 2.0 provider's userinfo says signed in: the subject claim (a string,
/// or a number as GitHub's `id` is), and the usual profile members (GitHub's `login` as
/// the user name).
pub fn identity_from_userinfo(
    provider: &Provider,
    info: &serde_json::Map<String, serde_json::Value>,
) -> Result<UpstreamIdentity, UpstreamError> {
    let subject = match info.get(&provider.subject_claim) {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => {
            return Err(UpstreamError::Invalid(format!(
                "userinfo has no usable {:?} member",
                provider.subject_claim
            )))
        }
    };
    let text = |name: &str| {
        info.get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    Ok(UpstreamIdentity {
        issuer: provider.issuer.clone(),
        subject,
        email: text("email"),
        email_verified: info
            .get("email_verified")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        name: text("name"),
        preferred_username: text("preferred_username").or_else(|| text("login")),
    })
}

#[cfg(test)]
mod tests {
    //! The client side against a small provider served here: keys fetched again for an
    //! unknown `kid` (and only then), answers over the size cap refused, and http refused
    //! without `--allow-http`.
    use super::*;
    use axum::extract::State;
    use axum::routing::{get, post};
    use axum::Json;
    use serde_json::{json, Value};
    use sigil_core::federation::{NewProvider, ProviderKind};

    struct Key {
        kid: String,
        pem: Vec<u8>,
        jwk: Value,
    }

    fn key(kid: &str) -> Key {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
        Key {
            kid: kid.into(),
            pem: rsa.private_key_to_pem().expect("pem"),
            jwk: json!({"kty": "RSA", "alg": "RS256", "kid": kid,
                "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())}),
        }
    }

    struct Idp {
        issuer: String,
        /// The key the provider signs with now and publishes (with `huge`, padded).
        current: Mutex<Arc<Key>>,
        huge: Mutex<bool>,
        key_fetches: Mutex<u32>,
    }

    async fn serve() -> Arc<Idp> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let issuer = format!(
            "http://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let idp = Arc::new(Idp {
            issuer,
            current: Mutex::new(Arc::new(key("one"))),
            huge: Mutex::new(false),
            key_fetches: Mutex::new(0),
        });
        type S = State<Arc<Idp>>;
        async fn discovery(State(idp): S) -> Json<Value> {
            Json(json!({
                "issuer": idp.issuer,
                "authorization_endpoint": format!("{}/authorize", idp.issuer),
                "token_endpoint": format!("{}/token", idp.issuer),
                "jwks_uri": format!("{}/jwks", idp.issuer),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }))
        }
        async fn jwks(State(idp): S) -> Json<Value> {
            *idp.key_fetches.lock().expect("lock") += 1;
            let key = idp.current.lock().expect("lock").clone();
            let mut set = json!({"keys": [key.jwk]});
            if *idp.huge.lock().expect("lock") {
                set["padding"] = json!("x".repeat(MAX_BODY + 1));
            }
            Json(set)
        }
        async fn token(State(idp): S, body: String) -> Json<Value> {
            let key = idp.current.lock().expect("lock").clone();
            let nonce = body
                .split('&')
                .find_map(|p| p.strip_prefix("code="))
                .unwrap_or_default()
                .to_string();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            let claims = json!({"iss": idp.issuer, "sub": "u1", "aud": "rp", "iat": now,
                "exp": now + 300, "nonce": nonce, "email": "u1@example.com"});
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            let signing = jsonwebtoken::EncodingKey::from_rsa_pem(&key.pem).expect("key");
            let id_token = jsonwebtoken::encode(&header, &claims, &signing).expect("sign");
            Json(
                json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token,
                "expires_in": 60}),
            )
        }
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        idp
    }

    fn provider(issuer: &str, allow_http: bool) -> Provider {
        NewProvider {
            id: "idp".into(),
            name: "IdP".into(),
            kind: ProviderKind::Oidc,
            issuer: issuer.into(),
            client_id: "rp".into(),
            scopes: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            subject_claim: None,
            create_users: false,
            trust_email: false,
            allow_http: true,
        }
        .into_provider("sealed".into(), 0)
        .map(|mut p| {
            p.allow_http = allow_http;
            p
        })
        .expect("provider")
    }

    /// A code exchange whose ID token carries `nonce` (the test provider echoes the code
    /// as the nonce).
    async fn finish(
        upstreams: &Upstreams,
        provider: &Provider,
        nonce: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        upstreams
            .finish(
                provider,
                &Secret::new("secret"),
                "http://127.0.0.1:9/cb",
                nonce,
                "verifier-verifier-verifier-verifier-verifier-01",
                nonce,
            )
            .await
    }

    #[tokio::test]
    async fn keys_are_fetched_again_for_an_unknown_kid_and_only_then() {
        let idp = serve().await;
        let upstreams = Upstreams::new()
            .expect("client")
            .with_refetch_gap(Duration::ZERO);
        let provider = provider(&idp.issuer, true);
        let first = finish(&upstreams, &provider, "n1")
            .await
            .expect("signed in");
        assert_eq!(first.subject, "u1");
        assert_eq!(first.issuer, idp.issuer);
        // Kept: a second sign-in fetches nothing.
        finish(&upstreams, &provider, "n2")
            .await
            .expect("signed in");
        assert_eq!(*idp.key_fetches.lock().expect("lock"), 1);
        // The provider rotates its key: the unknown kid fetches the keys once more.
        *idp.current.lock().expect("lock") = Arc::new(key("two"));
        finish(&upstreams, &provider, "n3")
            .await
            .expect("signed in after the rotation");
        assert_eq!(*idp.key_fetches.lock().expect("lock"), 2);
        // Within the gap, an unknown kid is refused without another fetch.
        let patient = Upstreams::new().expect("client");
        finish(&patient, &provider, "n4").await.expect("signed in");
        *idp.current.lock().expect("lock") = Arc::new(key("three"));
        let refused = finish(&patient, &provider, "n5").await;
        assert!(
            matches!(&refused, Err(UpstreamError::Invalid(m)) if m.contains("does not publish")),
            "{refused:?}"
        );
        assert_eq!(*idp.key_fetches.lock().expect("lock"), 3);
    }

    #[tokio::test]
    async fn oversized_answers_and_plain_http_are_refused() {
        let idp = serve().await;
        *idp.huge.lock().expect("lock") = true;
        let upstreams = Upstreams::new().expect("client");
        let result = finish(&upstreams, &provider(&idp.issuer, true), "n1").await;
        assert!(
            matches!(&result, Err(UpstreamError::Unreachable(m)) if m.contains("larger than")),
            "{result:?}"
        );
        // Without --allow-http, not even discovery is asked for.
        *idp.huge.lock().expect("lock") = false;
        let fetches = *idp.key_fetches.lock().expect("lock");
        let result = finish(&upstreams, &provider(&idp.issuer, false), "n1").await;
        assert!(
            matches!(&result, Err(UpstreamError::Unreachable(m)) if m.contains("https")),
            "{result:?}"
        );
        assert_eq!(*idp.key_fetches.lock().expect("lock"), fetches);
    }
}
