//! `/admin`: the admin console. Only signed-in admins get in: anonymous visitors are sent to
//! the sign-in page, signed-in users without the role get 403. Every form carries the
//! session's CSRF token; destructive actions go through a confirmation page. The pages call
//! the same core operations as the command line, which write the audit log.

mod account;
mod activity;
pub mod audit;
mod charts;
mod clients;
mod keys;
mod path;
mod providers;
mod resources;
mod sessions;
mod users;

use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::{pages, respond};
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sigil_core::audit::Caller;
use sigil_core::user::User;
use std::time::{Duration, UNIX_EPOCH};
use tower_sessions::Session;

/// The admin routes; the caller layers sessions on top.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/", get(dashboard))
        .route("/admin/logout", post(sign_out))
        .route("/static/admin.js", get(script))
        .merge(account::router())
        .merge(clients::router())
        .merge(users::router())
        .merge(sessions::router())
        .merge(providers::router())
        .merge(resources::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(activity::router())
}

const SCRIPT: &str = include_str!("../../../../../templates/admin.js");

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// What every admin page shows around its content.
pub struct Chrome {
    pub csrf: String,
    pub admin_name: String,
    pub notice: Option<&'static str>,
}

/// A signed-in admin, with the session and its CSRF token. As an extractor it turns
/// everyone else away.
pub struct Admin {
    pub user: User,
    pub session: Session,
    pub csrf: String,
    /// The peer address of the request, for the audit log.
    pub address: Option<String>,
    /// The request's headers (its user agent, for a session started anew).
    pub headers: axum::http::HeaderMap,
}

impl Admin {
    /// This admin, from this request's address: who core records as acting.
    pub fn caller(&self) -> Caller {
        Caller::user(
            self.user.id.clone(),
            self.user.username.clone(),
            self.address.clone(),
        )
    }

    pub fn chrome(&self, notice: Option<&str>) -> Chrome {
        Chrome {
            csrf: self.csrf.clone(),
            admin_name: self.user.username.clone(),
            notice: notice.and_then(notice_text),
        }
    }

    /// Parses a posted form and checks its CSRF token.
    pub async fn form(&self, body: &[u8]) -> Result<OAuthForm, PageError> {
        let form = OAuthForm::parse(body);
        browser::check_csrf(&self.session, &form).await?;
        Ok(form)
    }
}

/// Why a request does not reach an admin page.
pub enum NotAdmin {
    /// Nobody (valid) is signed in: to the sign-in page, coming back to `back` afterwards.
    SignInFirst { back: String },
    /// The admin's password was set for one-time use: to `/admin/password` first.
    ChangePasswordFirst,
    /// The admin has a second factor (or must have one) that this session did not prove:
    /// to the second step (or to add one) first, coming back to `back` afterwards.
    SecondFactorFirst { has_factor: bool, back: String },
    /// An error page: not an admin, or the session or the database failed.
    Refused(PageError),
}

impl From<PageError> for NotAdmin {
    fn from(error: PageError) -> Self {
        Self::Refused(error)
    }
}

impl IntoResponse for NotAdmin {
    fn into_response(self) -> Response {
        match self {
            NotAdmin::SignInFirst { back } => {
                let mut url = String::from("/login?next=");
                url.push_str(&form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>());
                respond::see_other(&url)
            }
            NotAdmin::ChangePasswordFirst => respond::see_other("/admin/password"),
            NotAdmin::SecondFactorFirst { has_factor, back } => {
                let back = form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>();
                if has_factor {
                    respond::see_other(&format!("/login/second-factor?next={back}"))
                } else {
                    respond::see_other(&format!("/account/security?next={back}"))
                }
            }
            NotAdmin::Refused(error) => error.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = NotAdmin;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotAdmin> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|rejection| PageError::Rejected(Box::new(rejection.into_response())))?;
        let path = parts.uri.path().to_string();
        let back = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| path.clone())
        } else {
            "/admin".to_string()
        };
        let Some(signed_in) = browser::signed_in(&session).await? else {
            return Err(NotAdmin::SignInFirst { back });
        };
        let user = match state.authority.signed_in_user(&signed_in).await {
            Ok(user) => user,
            Err(error) => {
                return Err(PageError::Unavailable {
                    event: "admin: user look-up failed",
                    error,
                }
                .into())
            }
        };
        let user = match user {
            Some(user) => user,
            // Disabled, deleted, or signed out everywhere since: this session is over.
            _ => {
                browser::sign_out(state, &session).await?;
                return Err(NotAdmin::SignInFirst { back });
            }
        };
        if !user.is_admin {
            return Err(PageError::AdminsOnly.into());
        }
        if user.must_change_password && path != "/admin/password" && path != "/admin/logout" {
            return Err(NotAdmin::ChangePasswordFirst);
        }
        // The console needs what a sign-in of this admin needs: a second factor proven in
        // this session when they have one or must have one.
        if signed_in.level() < sigil_core::factors::Level::TwoFactor && path != "/admin/logout" {
            let has_factor = state
                .factors
                .summary(&user.id)
                .await
                .map_err(PageError::from)?
                .has_any();
            if has_factor || state.factors.is_required(&user) {
                return Err(NotAdmin::SecondFactorFirst { has_factor, back });
            }
        }
        let csrf = browser::csrf_token(&session).await?;
        Ok(Admin {
            user,
            session,
            csrf,
            address: super::caller::peer_address(&parts.extensions),
            headers: parts.headers.clone(),
        })
    }
}

/// The fixed messages a redirect may ask a page to show (`?notice=…`): only these, so
/// that a link cannot put words on the page.
fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "saved" => "Saved.",
        "client-deleted" => "The client was deleted.",
        "user-created" => "The user was created.",
        "user-disabled" => {
            "The user was disabled: their sessions ended and their refresh tokens were revoked."
        }
        "user-enabled" => "The user was enabled.",
        "password-reset" => {
            "The password was reset: their sessions ended and their refresh tokens were revoked."
        }
        "grant-revoked" => "Access was revoked.",
        "session-ended" => "The session was ended.",
        "rotated" => "A new signing key was published.",
        "pruned" => "Keys whose tokens have all expired were removed.",
        "verification-sent" => "A verification link was mailed to the user's address.",
        "invitation-sent" => "The invitation was mailed.",
        "nothing-pruned" => "No key can be pruned yet.",
        "password-changed" => "Your password was changed.",
        "factors-reset" => "Their second factors were removed, and they were told by mail.",
        "provider-added" => {
            "The provider was added. Register its redirect URI at the provider before anyone signs in with it."
        }
        "provider-removed" => "The provider was removed: nobody signs in through it any more.",
        "resource-saved" => "The resource was saved.",
        "resource-removed" => {
            "The resource was removed. Tokens already issued for it stay valid until they expire."
        }
        _ => return None,
    })
}

/// Redirect after a successful POST, with a notice.
pub fn done(location: &str, notice: &str) -> Response {
    let separator = if location.contains('?') { '&' } else { '?' };
    respond::see_other(&format!("{location}{separator}notice={notice}"))
}

/// Renders an admin page (the same security headers as every page; scripts from this
/// origin only).
pub fn render(template: &impl Template) -> Result<Response, PageError> {
    Ok(pages::render(template, &[])?.into_response())
}

/// Renders an admin form page: as it is, or again with what is wrong with the input
/// (`is_invalid`: 422).
pub fn render_form(template: &impl Template, is_invalid: bool) -> Result<Response, PageError> {
    let page = pages::render(template, &[])?;
    if is_invalid {
        Err(PageError::InvalidForm(page))
    } else {
        Ok(page.into_response())
    }
}

/// A confirmation page for a destructive action.
#[derive(Template)]
#[template(path = "admin/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    pub action: String,
    pub button: String,
    pub cancel: String,
    pub is_danger: bool,
    pub hidden: Vec<(String, String)>,
}

/// What a confirmation page asks.
pub struct Confirm<'a> {
    pub title: String,
    pub message: &'a str,
    pub action: String,
    pub button: &'a str,
    pub cancel: String,
    pub is_danger: bool,
}

/// Renders a confirmation page whose form posts to `action`.
pub fn confirm(admin: &Admin, confirm: Confirm<'_>) -> Result<Response, PageError> {
    confirm_with(admin, confirm, Vec::new())
}

/// [`confirm`], with fixed `hidden` fields posted along (names and values the handler
/// chose, never taken from the request).
pub fn confirm_with(
    admin: &Admin,
    confirm: Confirm<'_>,
    hidden: Vec<(String, String)>,
) -> Result<Response, PageError> {
    render(&ConfirmPage {
        chrome: admin.chrome(None),
        title: confirm.title,
        message: confirm.message.to_string(),
        action: confirm.action,
        button: confirm.button.to_string(),
        cancel: confirm.cancel,
        is_danger: confirm.is_danger,
        hidden,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// Seconds since the epoch as `2026-11-28 13:45:00`.
pub fn format_time(unix: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    issuer: String,
    clients: usize,
    clients_more: bool,
    users: usize,
    keys: usize,
    last_audit: i64,
    range: activity::Range,
    activity: activity::Overview,
}

#[derive(serde::Deserialize, Default)]
struct DashboardQuery {
    notice: Option<String>,
    #[serde(default)]
    range: activity::Range,
}

const DASHBOARD_COUNT_LIMIT: i64 = 1000;

async fn dashboard(
    State(state): State<AppState>,
    admin: Admin,
    axum::extract::Query(query): axum::extract::Query<DashboardQuery>,
) -> Result<Response, PageError> {
    let overview = state.admin.overview(DASHBOARD_COUNT_LIMIT).await?;
    let activity = activity::overview(&state, query.range).await?;
    let (clients, users, last_audit) = (overview.clients, overview.users, overview.last_audit_seq);
    let page = DashboardPage {
        chrome: admin.chrome(query.notice.as_deref()),
        issuer: state.authority.config().issuer.clone(),
        clients,
        clients_more: clients as i64 >= DASHBOARD_COUNT_LIMIT,
        users: users.max(0) as usize,
        keys: state.authority.keys().current().keys().len(),
        last_audit,
        range: query.range,
        activity,
    };
    render(&page)
}

async fn sign_out(
    State(state): State<AppState>,
    admin: Admin,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    browser::sign_out(&state, &admin.session).await?;
    Ok(pages::message("Signed out", "You are signed out of Sigil.", false)?.into_response())
}
