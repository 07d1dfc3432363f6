//! axum integration: RFC 6750 error responses, an extractor for the verified claims, and a
//! tower layer that protects a whole router (or, with `route_layer`, one route) and can
//! require scopes.
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

use crate::{Claims, ErrorKind, Verifier, VerifyError};
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
/// `invalid_request`, and 503 when the issuer's keys cannot be had.
impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let description: String = self
            .to_string()
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        let (status, challenge, code) = match self.kind() {
            ErrorKind::MissingToken => (StatusCode::UNAUTHORIZED, "Bearer".to_string(), None),
            ErrorKind::BadRequest => (
                StatusCode::BAD_REQUEST,
                format!("Bearer error=\"invalid_request\", error_description=\"{description}\""),
                Some("invalid_request"),
            ),
            ErrorKind::InsufficientScope => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"{description}\", scope=\"{}\"",
                    self.required_scope().unwrap_or("")
                ),
                Some("insufficient_scope"),
            ),
            ErrorKind::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
                Some("temporarily_unavailable"),
            ),
            _ => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
                Some("invalid_token"),
            ),
        };
        let mut response = match code {
            Some(code) => (
                status,
                axum::Json(serde_json::json!({ "error": code, "error_description": description })),
            )
                .into_response(),
            None => status.into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
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

/// A tower layer that verifies every request's bearer token, optionally requires scopes,
/// and puts the [`Claims`] in the request extensions.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    verifier: Verifier,
    scopes: Arc<Vec<String>>,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::new(Vec::new()),
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
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service [`VerifyLayer`] wraps around a handler or router.
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
    scopes: Arc<Vec<String>>,
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
                Ok::<Claims, VerifyError>(claims)
            }
            .await;
            match verified {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(error) => Ok(error.into_response()),
            }
        })
    }
}
