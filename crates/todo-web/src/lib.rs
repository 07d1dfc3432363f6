//! `todo-web`: the TODO app's web front end, a backend-for-frontend (the pattern of the
//! IETF draft "OAuth 2.0 for Browser-Based Applications"). It signs people in with Sigil
//! (authorization code flow with PKCE, as a confidential client), keeps their tokens on the
//! server, and calls todo-api for them. The browser holds only an opaque session cookie, and
//! the pages need no JavaScript.
//!
//! Where things are: `sign_in` (login and callback), `pages` (the todo list and its forms),
//! `logout` (RP-initiated and back-channel logout endpoints), `backchannel` (logout-token
//! validation), `oidc` (the `openidconnect` crate), `session` (the server-side store),
//! `todo_api` (the API client), `web` (cookies, CSRF, errors, headers, templates).

pub mod backchannel;
pub mod config;
pub mod logout;
pub mod oidc;
pub mod pages;
pub mod secret;
pub mod session;
pub mod sign_in;
pub mod todo_api;
pub mod web;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use backchannel::LogoutTokenVerifier;
use oidc::Provider;
use session::SessionStore;
use todo_api::TodoApi;
use tower_http::set_header::SetResponseHeaderLayer;
use web::CookieSettings;

/// Everything the handlers share, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub provider: Provider,
    pub todo_api: TodoApi,
    pub sessions: SessionStore,
    pub logout_tokens: LogoutTokenVerifier,
    pub cookie: CookieSettings,
    /// The Content-Security-Policy of every page (it names the issuer, see `web::csp`).
    csp: HeaderValue,
}

impl AppState {
    /// Builds the state from a discovered provider. `public_url` has no trailing slash.
    pub fn new(
        provider: Provider,
        todo_api: TodoApi,
        sessions: SessionStore,
        public_url: &str,
    ) -> Result<Self, String> {
        let logout_tokens = LogoutTokenVerifier::new(
            provider.issuer(),
            provider.client_id(),
            provider.jwks_uri().clone(),
            provider.http().clone(),
        );
        let csp = web::csp(provider.issuer())?;
        Ok(Self {
            provider,
            todo_api,
            sessions,
            logout_tokens,
            cookie: CookieSettings::for_public_url(public_url),
            csp,
        })
    }
}

/// The router: the pages (never cached, under a strict CSP), the stylesheet, and the
/// back-channel logout endpoint Sigil calls.
pub fn app(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::home))
        .route("/todos", post(pages::add))
        .route("/todos/{id}/complete", post(pages::complete))
        .route("/todos/{id}/delete", post(pages::delete))
        .route("/login", get(sign_in::login))
        .route("/callback", get(sign_in::callback))
        .route("/logout", post(logout::sign_out))
        .fallback(pages::not_found)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            state.csp.clone(),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(pages)
        .route("/backchannel-logout", post(logout::backchannel_logout))
        .route("/static/style.css", get(web::stylesheet))
        .route("/static/favicon.svg", get(web::favicon))
        .route("/healthz", get(|| async { "ok" }))
        // Headers for every answer: no sniffing, no framing, and no Referer (the callback's
        // address holds the authorization code).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}
