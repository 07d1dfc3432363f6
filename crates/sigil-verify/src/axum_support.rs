//! axum integration: RFC 6750 and RFC 9470 error responses, an extractor for the verified
//! claims, a tower layer that protects a whole router (or, with `route_layer`, one route)
//! and can require scopes and a step-up authentication, and RFC 9728: the route that serves
//! [`crate::ProtectedResourceMetadata`] and its URL in every challenge.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sigil_verify::axum_support::{Authenticated, VerifyLayer};
//! use sigil_verify::{Verifier, VerifierConfig};
//!
//! async fn list(Authenticated(claims): Authenticated) -> String {
//!     format!("todos of {}", claims.sub)
//! }
//!
//! # async fn run() -> Result<(), sigil_verify::VerifyError> {
//! let verifier = Verifier::discover(VerifierConfig::new(
//!     "https://sigil.example.com",
//!     "https://api.example.com",
//! ))
//! .await?;
//! let app: Router = Router::new()
//!     .route("/api/todos", get(list))
//!     .route_layer(VerifyLayer::new(verifier.clone()).require_scopes(["todos:read"]))
//!     .with_state(verifier);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod challenge;
mod resource_metadata;

pub(crate) use challenge::status_and_codes;
pub use challenge::{www_authenticate, DPOP_NONCE};
pub use resource_metadata::{ResourceMetadataLayer, ResourceMetadataService};

use crate::dpop::{request_url, Authorized, PresentedRequest, ProofHeader, Scheme};
use crate::{AuthenticationRequirement, Claims, ErrorKind, Verifier, VerifyError};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The request header that carries a DPoP proof (RFC 9449 §4.1).
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The bearer token of a request (RFC 6750 §2.1: the Authorization header only).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    match presented_token(headers)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(VerifyError::new(
            ErrorKind::BadRequest,
            "the Authorization header must be Bearer",
        )),
    }
}

/// The access token of a request and its scheme: `Bearer` (RFC 6750 §2.1) or `DPoP` (RFC
/// 9449 §7.1), from the one `Authorization` header (scheme names are case-insensitive).
pub fn presented_token(headers: &HeaderMap) -> Result<(Scheme, &str), VerifyError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::new(ErrorKind::MissingToken, "no bearer token"));
    };
    if values.next().is_some() {
        return Err(VerifyError::new(
            ErrorKind::BadRequest,
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| VerifyError::new(ErrorKind::BadRequest, "malformed Authorization header"))?;
    let scheme_and_token = value
        .split_once(' ')
        .map(|(scheme, token)| (scheme, token.trim()))
        .filter(|(_, token)| !token.is_empty());
    match scheme_and_token {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok((Scheme::Bearer, token))
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => Ok((Scheme::Dpop, token)),
        _ => Err(VerifyError::new(
            ErrorKind::BadRequest,
            "the Authorization header must be Bearer or DPoP",
        )),
    }
}

/// The request's `DPoP` header: missing, exactly one (visible ASCII), or not usable (RFC
/// 9449 §4.3 point 1).
pub fn proof_header(headers: &HeaderMap) -> ProofHeader<'_> {
    let mut values = headers.get_all(DPOP).iter();
    match (values.next(), values.next()) {
        (None, _) => ProofHeader::Missing,
        (Some(one), None) => one.to_str().map_or(ProofHeader::Invalid, ProofHeader::One),
        (Some(_), Some(_)) => ProofHeader::Invalid,
    }
}

/// Verifies the request in `parts` with `verifier` ([`Verifier::verify_request`]): the
/// scheme and token of its `Authorization` header, its `DPoP` proof, method and URL (the
/// verifier's [`crate::PublicOrigin`] and the request's path). Returns the scheme used.
/// Errors carry the verifier's DPoP challenge.
pub async fn authorize(
    verifier: &Verifier,
    parts: &Parts,
    require_dpop: bool,
) -> Result<(Authorized, Scheme), VerifyError> {
    let (scheme, token) = presented_token(&parts.headers)
        .map_err(|error| verifier.dpop_context(error, None, require_dpop))?;
    // The URL is made for DPoP requests only: a bearer request allocates nothing for it.
    let url = match (scheme, verifier.dpop_public_origin()) {
        (Scheme::Dpop, Some(origin)) => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()));
            Some(request_url(origin, host, parts.uri.path()).ok_or_else(|| {
                verifier.dpop_context(
                    VerifyError::new(ErrorKind::BadRequest, "the request has no usable Host"),
                    Some(scheme),
                    require_dpop,
                )
            })?)
        }
        _ => None,
    };
    let request = PresentedRequest {
        scheme,
        token,
        proof: proof_header(&parts.headers),
        method: parts.method.as_str(),
        url: url.as_deref().unwrap_or_default(),
        require_dpop,
    };
    let authorized = verifier.verify_request(&request).await?;
    Ok((authorized, scheme))
}

/// What a layer adds to the refusals beneath it that `sigil-verify` answered (an
/// [`Authenticated`] rejection, a `VerifyError` a handler returned): the
/// `resource_metadata` of the challenge, unless the refusal names one already.
pub(crate) fn add_resource_metadata(response: &mut Response, url: &str) {
    let Some(error) = response.extensions().get::<VerifyError>() else {
        return;
    };
    if error.resource_metadata().is_some() {
        return;
    }
    let error = error.clone().with_resource_metadata(url);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, www_authenticate(&error));
    response.extensions_mut().insert(error);
}

/// The verified claims of the request's access token. Taken from the request extensions
/// when a [`VerifyLayer`] ran first, else verified here with the state's [`Verifier`]: a
/// bearer token, or a DPoP-bound token with its proof ([`authorize`]). Without a layer, a
/// `DPoP-Nonce` for a client whose nonce is about to go stale is not sent (a layer sends it).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(Self(claims.clone()));
        }
        let verifier = Verifier::from_ref(state);
        let (authorized, scheme) = authorize(&verifier, parts, false).await?;
        parts.extensions.insert(authorized.claims.clone());
        parts.extensions.insert(scheme);
        Ok(Self(authorized.claims))
    }
}

/// A tower layer that verifies every request's bearer token, optionally requires scopes
/// and a step-up authentication, and puts the [`Claims`] in the request extensions. With
/// [`Self::resource_metadata`], its challenges (and those of the refusals beneath it) name
/// the resource's RFC 9728 metadata.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
    scopes: Arc<Vec<String>>,
    authentication: Option<Arc<AuthenticationRequirement>>,
    resource_metadata: Option<Arc<str>>,
    require_dpop: bool,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::new(Vec::new()),
            authentication: None,
            resource_metadata: None,
            require_dpop: false,
        }
    }

    /// Every request must present a DPoP-bound token with `Authorization: DPoP` and its proof
    /// (RFC 9449 §7.1); bearer tokens are refused (401 `invalid_token`) and the challenges
    /// offer `DPoP` alone. Needs a verifier with [`crate::VerifierConfig::dpop`]; without it,
    /// every request is refused.
    pub fn require_dpop(mut self) -> Self {
        self.require_dpop = true;
        self
    }

    /// Every request must carry all these scopes (else 403 `insufficient_scope`).
    pub fn require_scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Arc::new(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Every request's token must also meet `requirement` (RFC 9470 step-up: an accepted
    /// `acr`, a recent `auth_time`), checked after the scopes with the verifier's clock and
    /// leeway; else 401 `insufficient_user_authentication` with the `acr_values` and
    /// `max_age` the client must ask Sigil's `/authorize` for.
    ///
    /// ```no_run
    /// use axum::{routing::delete, Router};
    /// use sigil_verify::axum_support::VerifyLayer;
    /// use sigil_verify::step_up::{ACR_2FA, ACR_PHR};
    /// use sigil_verify::{AuthenticationRequirement, Verifier};
    /// use std::time::Duration;
    ///
    /// # fn run(verifier: Verifier) {
    /// let second_factor = AuthenticationRequirement::new()
    ///     .with_acr_values([ACR_2FA, ACR_PHR])
    ///     .with_max_age(Duration::from_secs(300));
    /// let app: Router = Router::new()
    ///     .route("/api/account", delete(|| async { "gone" }))
    ///     .route_layer(VerifyLayer::new(verifier).require_authentication(second_factor));
    /// # let _ = app;
    /// # }
    /// ```
    pub fn require_authentication(mut self, requirement: AuthenticationRequirement) -> Self {
        self.authentication = Some(Arc::new(requirement));
        self
    }

    /// Names `url`, the resource's RFC 9728 metadata (usually
    /// [`crate::ProtectedResourceMetadata::metadata_url`]), in every challenge: this layer's
    /// refusals, and the `sigil-verify` refusals of the handlers and extractors beneath it
    /// (RFC 9728 §5.1). A 401 of a route with [`Self::require_scopes`] then also names its
    /// scopes (RFC 6750 §3), so that a client without a token knows what to ask for:
    ///
    /// ```text
    /// WWW-Authenticate: Bearer scope="todos:read", resource_metadata="https://api.example/.well-known/oauth-protected-resource"
    /// ```
    ///
    /// Without it, the challenges are as before: no `resource_metadata`, and `scope` only on
    /// a 403 `insufficient_scope`.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(Arc::from(url.into()));
        self
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            scopes: self.scopes.clone(),
            authentication: self.authentication.clone(),
            resource_metadata: self.resource_metadata.clone(),
            require_dpop: self.require_dpop,
        }
    }
}

/// The service [`VerifyLayer`] wraps around a handler or router.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    scopes: Arc<Vec<String>>,
    authentication: Option<Arc<AuthenticationRequirement>>,
    resource_metadata: Option<Arc<str>>,
    require_dpop: bool,
}

impl<S> tower::Service<Request<Body>> for VerifyService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is ready only after poll_ready on the original: swap them.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = self.scopes.clone();
        let authentication = self.authentication.clone();
        let resource_metadata = self.resource_metadata.clone();
        let require_dpop = self.require_dpop;
        Box::pin(async move {
            // Parts and body apart: the parts are borrowed across the verification's awaits,
            // and the body is not `Sync`.
            let (mut parts, body) = request.into_parts();
            let existing = parts.extensions.get::<Claims>().cloned();
            let used = parts.extensions.get::<Scheme>().copied();
            let verified = async {
                let (claims, next_nonce, used) = match existing {
                    Some(_) if require_dpop && used != Some(Scheme::Dpop) => {
                        return Err(VerifyError::new(
                            ErrorKind::DpopRequired,
                            "this resource accepts DPoP-bound tokens only (Authorization: DPoP and a DPoP proof)",
                        ));
                    }
                    Some(claims) => (claims, None, used),
                    None => {
                        let (authorized, used) =
                            authorize(&verifier, &parts, require_dpop).await?;
                        (authorized.claims, authorized.next_nonce, Some(used))
                    }
                };
                if !scopes.is_empty() {
                    let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    claims.require_scopes(&required)?;
                }
                if let Some(requirement) = &authentication {
                    verifier.require_authentication(&claims, requirement)?;
                }
                Ok::<_, VerifyError>((claims, next_nonce, used))
            }
            .await;
            let used = match &verified {
                Ok((_, _, used)) => *used,
                Err(_) => presented_token(&parts.headers)
                    .ok()
                    .map(|(scheme, _)| scheme),
            };
            match verified {
                Ok((claims, next_nonce, used)) => {
                    parts.extensions.insert(claims);
                    if let Some(scheme) = used {
                        parts.extensions.insert(scheme);
                    }
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    if let Some(nonce) = next_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                        response.headers_mut().insert(DPOP_NONCE, nonce);
                    }
                    add_dpop_challenge(&mut response, &verifier, used, require_dpop);
                    if let Some(url) = &resource_metadata {
                        add_resource_metadata(&mut response, url);
                    }
                    Ok(response)
                }
                Err(mut error) => {
                    if let Some(url) = resource_metadata {
                        let is_unauthorized =
                            status_and_codes(error.kind()).0 == StatusCode::UNAUTHORIZED;
                        if is_unauthorized && error.required_scope().is_none() && !scopes.is_empty()
                        {
                            error = error.with_scope(scopes.join(" "));
                        }
                        error = error.with_resource_metadata(&*url);
                    }
                    Ok(verifier
                        .dpop_context(error, used, require_dpop)
                        .into_response())
                }
            }
        })
    }
}

/// What a layer adds to the `sigil-verify` refusals of the handlers beneath it: its
/// verifier's DPoP challenge, unless the refusal has one.
fn add_dpop_challenge(
    response: &mut Response,
    verifier: &Verifier,
    used: Option<Scheme>,
    require_dpop: bool,
) {
    let Some(error) = response.extensions().get::<VerifyError>() else {
        return;
    };
    if error.dpop_challenge().is_some() || verifier.dpop_public_origin().is_none() {
        return;
    }
    let error = verifier.dpop_context(error.clone(), used, require_dpop);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, www_authenticate(&error));
    response.extensions_mut().insert(error);
}
