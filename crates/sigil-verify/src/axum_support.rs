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

mod resource_metadata;

pub use resource_metadata::{ResourceMetadataLayer, ResourceMetadataService};

use crate::{AuthenticationRequirement, Claims, ErrorKind, Verifier, VerifyError};
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The bearer token of a request (RFC 6750 §2.1: the Authorization header only).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
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
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(VerifyError::new(
            ErrorKind::BadRequest,
            "the Authorization header must be Bearer",
        )),
    }
}

/// RFC 6750 §3: 401 with a Bearer challenge, 403 `insufficient_scope` with the scope, 400
/// `invalid_request`, 503 when the issuer's keys cannot be had, and RFC 9470 §3: 401
/// `insufficient_user_authentication` with the `acr_values` and `max_age` to ask Sigil for.
/// The body (except for a missing token) is `{"error": …, "error_description": …}`.
impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, codes) = status_and_codes(self.kind());
        let mut response = match codes {
            Some((_, body_code)) => (
                status,
                axum::Json(serde_json::json!({
                    "error": body_code,
                    "error_description": quoted_string_safe(&self.to_string()),
                })),
            )
                .into_response(),
            None => status.into_response(),
        };
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, www_authenticate(&self));
        // For the layers above: they may add `resource_metadata` to the challenge.
        response.extensions_mut().insert(self);
        response
    }
}

/// The `WWW-Authenticate` challenge for `error`, as [`VerifyError`]'s response carries it:
/// `Bearer` alone for a missing token (RFC 6750 §3.1), else `Bearer error="…",
/// error_description="…"`; then `scope="…"` when the error names scopes (always for
/// `insufficient_scope`, see [`VerifyError::with_scope`]), for
/// `insufficient_user_authentication` (RFC 9470 §3) `acr_values="…"` (space-separated) and
/// `max_age="N"` (seconds, quoted as in RFC 9470 §3), each only when the requirement has it,
/// and last `resource_metadata="…"` (RFC 9728 §5.1) when set with
/// [`VerifyError::with_resource_metadata`]. For resource servers that build their own
/// responses.
pub fn www_authenticate(error: &VerifyError) -> HeaderValue {
    HeaderValue::from_str(&challenge(error)).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// The status, and the error codes of the challenge and of the body (`None`: no error
/// code, for a request that carried no token).
fn status_and_codes(kind: ErrorKind) -> (StatusCode, Option<(&'static str, &'static str)>) {
    match kind {
        ErrorKind::MissingToken => (StatusCode::UNAUTHORIZED, None),
        ErrorKind::BadRequest => (
            StatusCode::BAD_REQUEST,
            Some(("invalid_request", "invalid_request")),
        ),
        ErrorKind::InsufficientScope => (
            StatusCode::FORBIDDEN,
            Some(("insufficient_scope", "insufficient_scope")),
        ),
        ErrorKind::InsufficientUserAuthentication => (
            StatusCode::UNAUTHORIZED,
            Some((
                "insufficient_user_authentication",
                "insufficient_user_authentication",
            )),
        ),
        ErrorKind::KeysUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(("invalid_token", "temporarily_unavailable")),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "invalid_token")),
        ),
    }
}

fn challenge(error: &VerifyError) -> String {
    let mut attributes = Vec::new();
    if let Some((code, _)) = status_and_codes(error.kind()).1 {
        attributes.push(format!("error=\"{code}\""));
        attributes.push(format!(
            "error_description=\"{}\"",
            quoted_string_safe(&error.to_string())
        ));
    }
    if let Some(scope) = error.required_scope() {
        attributes.push(format!("scope=\"{}\"", quoted_string_safe(scope)));
    }
    if let Some(requirement) = error.required_authentication() {
        if !requirement.acr_values().is_empty() {
            let values = requirement.acr_values().join(" ");
            attributes.push(format!("acr_values=\"{}\"", quoted_string_safe(&values)));
        }
        if let Some(max_age) = requirement.max_age() {
            attributes.push(format!("max_age=\"{}\"", max_age.as_secs()));
        }
    }
    if let Some(url) = error.resource_metadata() {
        attributes.push(format!("resource_metadata=\"{}\"", quoted_string_safe(url)));
    }
    if attributes.is_empty() {
        "Bearer".to_string()
    } else {
        format!("Bearer {}", attributes.join(", "))
    }
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

/// `text` with quotes, backslashes and anything but printable ASCII replaced by `'`, so
/// that it can sit in a quoted-string of a header.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                '\''
            } else {
                c
            }
        })
        .collect()
}

/// The verified claims of the request's bearer token. Taken from the request extensions
/// when a [`VerifyLayer`] ran first, else verified here with the state's [`Verifier`].
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
        let token = bearer_token(&parts.headers)?;
        let claims = verifier.verify(token).await?;
        parts.extensions.insert(claims.clone());
        Ok(Self(claims))
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
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::new(Vec::new()),
            authentication: None,
            resource_metadata: None,
        }
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

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The clone is ready only after poll_ready on the original: swap them.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = self.scopes.clone();
        let authentication = self.authentication.clone();
        let resource_metadata = self.resource_metadata.clone();
        let existing = request.extensions().get::<Claims>().cloned();
        let token = bearer_token(request.headers()).map(str::to_string);
        Box::pin(async move {
            let verified = async {
                let claims = match existing {
                    Some(claims) => claims,
                    None => verifier.verify(&token?).await?,
                };
                if !scopes.is_empty() {
                    let required: Vec<&str> = scopes.iter().map(String::as_str).collect();
                    claims.require_scopes(&required)?;
                }
                if let Some(requirement) = &authentication {
                    verifier.require_authentication(&claims, requirement)?;
                }
                Ok::<Claims, VerifyError>(claims)
            }
            .await;
            let Some(url) = resource_metadata else {
                return match verified {
                    Ok(claims) => {
                        request.extensions_mut().insert(claims);
                        inner.call(request).await
                    }
                    Err(error) => Ok(error.into_response()),
                };
            };
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    let mut response = inner.call(request).await?;
                    add_resource_metadata(&mut response, &url);
                    Ok(response)
                }
                Err(mut error) => {
                    let is_unauthorized =
                        status_and_codes(error.kind()).0 == StatusCode::UNAUTHORIZED;
                    if is_unauthorized && error.required_scope().is_none() && !scopes.is_empty() {
                        error = error.with_scope(scopes.join(" "));
                    }
                    Ok(error.with_resource_metadata(&*url).into_response())
                }
            }
        })
    }
}
