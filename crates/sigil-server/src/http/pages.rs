//! HTML pages (askama templates from `templates/`), the stylesheet, and the headers every
//! browser-facing response carries: CSP without inline scripts, no framing, no referrer,
//! no caching.

use askama::Template;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub const STYLESHEET: &str = include_str!("../../../../templates/sigil.css");

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub csrf: &'a str,
    pub req: &'a str,
    /// Where to go after signing in without a pending request (an admin page).
    pub next: &'a str,
    pub client_name: Option<&'a str>,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// A word of good news (the address was confirmed, the password set).
    pub notice: Option<&'a str>,
    /// Whether to offer "Create an account".
    pub sign_up_open: bool,
    /// Whether to offer "Sign in with a passkey" (the issuer has a host name).
    pub passkeys_available: bool,
    /// "Sign in with …" links, one per upstream provider.
    pub providers: Vec<super::federation::ProviderLink>,
}

/// The sign-in page's answer to an account whose address is not verified yet.
#[derive(Template)]
#[template(path = "verify_pending.html")]
pub struct VerifyPendingPage<'a> {
    pub csrf: &'a str,
    pub req: &'a str,
    pub email: &'a str,
    pub notice: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub csrf: &'a str,
    pub req: &'a str,
    pub client_name: &'a str,
    pub username: &'a str,
    pub scopes: Vec<(String, &'static str)>,
    /// For a client ID metadata document client: the host of its `client_id`.
    pub document_host: Option<String>,
    /// Every redirect URI of a document client is on the user's own computer.
    pub runs_locally: bool,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub is_error: bool,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub csrf: &'a str,
    pub client_name: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/sigil.css", get(stylesheet))
        .route("/static/passkeys.js", get(passkeys_script))
}

/// The passkey ceremonies' script (the pages' only script besides the admin console's).
pub const PASSKEYS_SCRIPT: &str = include_str!("../../../../templates/passkeys.js");

async fn passkeys_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        PASSKEYS_SCRIPT,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Plain-language descriptions of the scopes shown on the consent page.
pub fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are (your account id)",
        "profile" => "See your name and user name",
        "email" => "See your email address",
        "offline_access" => "Stay signed in: keep access while you are away",
        _ => "Access granted under this name by the application",
    }
}

/// A rendered page: its HTML, and the origins its forms may end up at besides Sigil. As a
/// response it is a 200 with the page headers; an error or another status wraps it.
#[derive(Debug)]
pub struct Page {
    html: String,
    form_targets: Vec<String>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.html,
        )
            .into_response();
        set_page_headers(&mut response, &self.form_targets);
        response
    }
}

/// Renders a template. `form_targets` are extra origins the page's forms may end up at
/// (the client's redirect URI, reached by redirect after the form is posted: CSP
/// `form-action` covers redirects).
pub fn render(template: &impl Template, form_targets: &[String]) -> Result<Page, askama::Error> {
    Ok(Page {
        html: template.render()?,
        form_targets: form_targets.to_vec(),
    })
}

/// An error or information page.
#[derive(Template)]
#[template(path = "federation_message.html")]
pub struct FederationMessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub back: &'a str,
    pub back_text: &'a str,
}

/// The page an upstream sign-in ends on when it signs nobody in, with a link to `back`.
pub fn federation_message(title: &str, text: &str, back: &str) -> Result<Page, askama::Error> {
    render(
        &FederationMessagePage {
            title,
            message: text,
            back,
            back_text: if back.starts_with("/account") {
                "Back to your account"
            } else if back.starts_with("/admin") {
                "Back to the providers"
            } else {
                "Back to sign-in"
            },
        },
        &[],
    )
}

pub fn message(title: &str, text: &str, is_error: bool) -> Result<Page, askama::Error> {
    render(
        &MessagePage {
            title,
            message: text,
            detail: None,
            is_error,
        },
        &[],
    )
}

/// CSP and the other page headers.
pub fn set_page_headers(response: &mut Response, form_targets: &[String]) {
    let mut form_action = String::from("'self'");
    for target in form_targets {
        form_action.push(' ');
        form_action.push_str(target);
    }
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The CSP source that allows a redirect URI: its origin for http(s), its scheme otherwise.
pub fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => {
            let origin = url.origin().ascii_serialization();
            // A CSP source list is space-separated: anything odd in it is dropped.
            (!origin.contains([' ', ';', ',', '\'']) && origin != "null").then_some(origin)
        }
        scheme => Some(format!("{scheme}:")),
    }
}
