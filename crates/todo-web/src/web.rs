//! What every page shares: the session cookie, the signed-in extractor, CSRF checks, form
//! parsing with readable errors, the error page, security headers and static files.

use crate::secret::Secret;
use crate::session::Session;
use crate::AppState;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use std::sync::Arc;

/// The session cookie's name and flags, fixed by the public URL's scheme.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub name: &'static str,
    pub secure: bool,
}

impl CookieSettings {
    /// Under https the cookie is `Secure` and `__Host-` prefixed (so no subdomain or
    /// plain-http page can set or shadow it); on a plain-http development URL it is neither.
    pub fn for_public_url(public_url: &str) -> Self {
        if public_url.starts_with("https://") {
            Self {
                name: "__Host-todo_web_session",
                secure: true,
            }
        } else {
            Self {
                name: "todo_web_session",
                secure: false,
            }
        }
    }

    /// `Set-Cookie` for a new value: HttpOnly (no script reads it), SameSite=Lax (sent on
    /// the top-level redirect back from Sigil, not on cross-site POSTs), the whole site,
    /// and no `Max-Age` (it goes with the browser; the server ends idle sessions).
    pub fn set(&self, value: &str) -> HeaderValue {
        self.header(value, "")
    }

    /// `Set-Cookie` that removes the cookie.
    pub fn clear(&self) -> HeaderValue {
        self.header("", "; Max-Age=0")
    }

    fn header(&self, value: &str, extra: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; HttpOnly; SameSite=Lax; Path=/{secure}{extra}",
            self.name
        );
        // Cookie values are base64url, so the header is always valid ASCII.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The cookie's value in a request, if it sent one.
    pub fn value(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.to_string())
            .filter(|value| !value.is_empty())
    }
}

/// A request from a signed-in browser: its session and the cookie value that found it.
/// Without a live session the request is sent to the home page (which says why).
pub struct SignedIn {
    pub session: Arc<Session>,
    pub cookie_value: Secret,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let cookie_value = state
            .cookie
            .value(&parts.headers)
            .ok_or_else(|| Redirect::to("/").into_response())?;
        let session = state
            .sessions
            .find(&cookie_value)
            .ok_or_else(|| Redirect::to("/").into_response())?;
        Ok(Self {
            session,
            cookie_value: Secret::new(cookie_value),
        })
    }
}

impl SignedIn {
    /// Refuses a form whose `csrf` field is not this session's token (compared in constant
    /// time). SameSite=Lax already keeps cross-site POSTs cookie-less; this is the second
    /// line, and the one that does not depend on the browser.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        if self.session.csrf.matches(submitted) {
            Ok(())
        } else {
            Err(WebError::Csrf)
        }
    }
}

/// A form that carries nothing but the CSRF token (complete, delete, sign out).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// A form body whose rejection is our error page, not axum's plain text.
pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(value)) => Ok(Self(value)),
            Err(FormRejection::FailedToDeserializeForm(e)) => Err(WebError::BadRequest(format!(
                "the form is incomplete or malformed ({})",
                e.body_text()
            ))),
            Err(e) => Err(WebError::BadRequest(e.body_text())),
        }
    }
}

/// Why a page could not be shown. Each variant is a readable page with the right status;
/// internal causes go to the log, not to the browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    /// The sign-in could not finish; the text is safe to show.
    #[error("sign-in failed: {0}")]
    SignIn(String),
    /// Sigil refused the refresh token: the session has ended, the user signs in again.
    #[error("the session has ended")]
    SessionEnded,
    /// Sigil or todo-api is down or answered nonsense; `service` names which.
    #[error("{service} failed: {cause}")]
    Upstream {
        service: &'static str,
        cause: String,
    },
    /// todo-api refused a change (e.g. a title too long); the text is todo-api's.
    #[error("todo-api refused: {0}")]
    Refused(String),
    #[error("not found")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            WebError::SessionEnded => {
                // Back to the start page, which explains and offers to sign in again.
                return Redirect::to("/?notice=ended").into_response();
            }
            WebError::BadRequest(text) => (
                StatusCode::BAD_REQUEST,
                "That request is not right",
                text.clone(),
            ),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this session. Go back, reload the page and try again."
                    .to_string(),
            ),
            WebError::SignIn(text) => (StatusCode::BAD_REQUEST, "Sign-in failed", text.clone()),
            WebError::Upstream { service, cause } => {
                tracing::warn!(service, cause = %cause, "an upstream call failed");
                (
                    StatusCode::BAD_GATEWAY,
                    "Something is not answering",
                    format!("{service} cannot be reached right now. Try again in a moment."),
                )
            }
            WebError::Refused(text) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "That change was refused",
                text.clone(),
            ),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is no page at this address.".to_string(),
            ),
            WebError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The page could not be shown. Try again in a moment.".to_string(),
                )
            }
        };
        let page = ErrorPage {
            heading,
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

/// Renders a template as an HTML answer.
pub fn render(template: &impl Template) -> Result<Response, WebError> {
    template
        .render()
        .map(|html| Html(html).into_response())
        .map_err(|e| WebError::Internal(format!("template: {e}")))
}

/// The pages' Content-Security-Policy: nothing but our own stylesheet and icon, no script
/// at all, no framing, and forms that post only here (the sign-out form's redirect goes on
/// to the issuer, which `form-action` must allow too).
pub fn csp(issuer: &str) -> Result<HeaderValue, String> {
    let issuer = url::Url::parse(issuer).map_err(|e| format!("invalid issuer URL: {e}"))?;
    let origin = issuer.origin().ascii_serialization();
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {origin}; \
         frame-ancestors 'none'; base-uri 'none'"
    ))
    .map_err(|e| format!("cannot build the CSP: {e}"))
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/style.css"),
    )
        .into_response()
}

pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../static/favicon.svg"),
    )
        .into_response()
}
