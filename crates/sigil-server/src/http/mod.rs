//! The HTTP surface: one module per endpoint group, each exposing `router()`, assembled
//! here with the cross-cutting layers (request id, access log, limits, timeouts).

pub mod account;
pub mod account_pages;
pub mod account_security;
pub mod admin;
pub mod authorize;
pub mod browser;
pub mod caller;
pub mod client_auth;
pub mod consent;
pub mod cors;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod federation;
pub mod form;
pub mod health;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod openapi;
pub mod pages;
pub mod par;
pub mod passkeys;
pub mod register;
pub mod respond;
pub mod revoke;
pub mod second_factor;
pub mod self_service;
pub mod token;
pub mod userinfo;

use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::RequestError;
use std::time::Instant;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

/// The request-id header, taken from the client when well-formed, else generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the whole router.
pub fn app(state: AppState) -> Router {
    let is_https = state.authority.config().issuer.starts_with("https://");
    let browser = Router::new()
        .merge(authorize::router())
        .merge(login::router())
        .merge(federation::router())
        .merge(second_factor::router())
        .merge(passkeys::router())
        .merge(account::router())
        .merge(account_pages::router())
        .merge(account_security::router())
        .merge(self_service::router())
        .merge(consent::router())
        .merge(logout::router())
        .merge(admin::router())
        .layer(crate::sessions::layer(
            state.sessions.clone(),
            &state.session_cookie,
            is_https,
            state.session_ttl,
        ));
    // The endpoints a single-page app calls from the browser, with their CORS.
    let browser_apps = Router::new()
        .merge(token::router())
        .merge(par::router())
        .merge(revoke::router())
        .merge(userinfo::router())
        .layer(middleware::from_fn_with_state(state.clone(), cors::layer));
    Router::new()
        .merge(browser)
        .merge(pages::router())
        .merge(discovery::router())
        .merge(browser_apps)
        .merge(introspect::router())
        .merge(register::router())
        .merge(health::router())
        .merge(openapi::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(form::MAX_FORM_BYTES))
        .layer(middleware::from_fn(limit_request_head))
        .layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            state.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Builds the router of the metrics listener (`--metrics-bind`): `GET /metrics` and
/// nothing else. The public router does not serve it.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .merge(health::metrics_router())
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            state.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// `Strict-Transport-Security` under an https issuer (RFC 6797): one year, this host only
/// (`includeSubDomains` would bind every other site under the domain, which Sigil does not
/// know about).
pub static HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// The most bytes of header names and values a request may carry (RFC 6585 §5).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The longest request target (path and query) accepted (RFC 9110 §15.5.15).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Refuses requests whose headers or target are larger than any real client sends, before
/// any handler sees them. (hyper already bounds what it buffers while parsing.)
async fn limit_request_head(request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return RequestError::HeadersTooLarge.into_response();
    }
    let uri = request.uri();
    if uri.path().len() + uri.query().map_or(0, str::len) > MAX_URI_BYTES {
        return RequestError::TargetTooLong.into_response();
    }
    next.run(request).await
}

async fn not_found() -> RequestError {
    RequestError::NotFound
}

/// Gives every request an id (in the log span and the response header) and logs one line
/// per request: method, path without the query (queries can carry codes), status, time.
/// Adds the headers every response carries (`nosniff`; HSTS under an https issuer).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let is_https = state.authority.config().issuer.starts_with("https://");
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| sigil_core::secret::random_token(12));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let throttled = error::is_throttled(&response);
    if throttled {
        state
            .authority
            .activity()
            .record(sigil_core::activity::Event::Throttled);
    } else if status >= 500 {
        state
            .authority
            .activity()
            .record(sigil_core::activity::Event::ServerError);
    }
    state.metrics.observe_request(
        &route,
        &method,
        status,
        started.elapsed().as_secs_f64(),
        throttled,
    );
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS.clone());
    }
    response
}
