//! The account page a signed-in user looks after their own account with: `/account`
//! (profile and address), `/account/sessions` (browsers signed in, sign out one or all
//! others), `/account/apps` (connected apps: revoke one). The password has its own page
//! (`account.rs`), second factors theirs (`account_security.rs`). Every form carries the CSRF token; every
//! change is audited by core with the user as the actor.

use super::admin::format_time;
use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::pages;
use super::respond;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::accounts::AccountError;
use sigil_core::audit::Caller;
use sigil_core::authorize::SignedIn;
use sigil_core::secret::Secret;
use sigil_core::user::User;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(profile))
        .route("/account/profile", axum::routing::post(save_name))
        .route("/account/email", axum::routing::post(change_email))
        .route("/account/sessions", get(sessions).post(end_sessions))
        .route("/account/apps", get(apps).post(revoke_app))
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

/// The fixed words a redirect may ask an account page to show.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "saved" => "Saved.",
        "email-sent" => "If the new address can be used, we sent it a link. Your address changes once you open it.",
        "email-changed" => "Your new e-mail address is confirmed.",
        "signed-out" => "Signed out.",
        "others-signed-out" => "Every other browser was signed out.",
        "app-removed" => "The app's access was removed. It will ask again next time.",
        _ => return None,
    })
}

/// A signed-in user and their session, with this request's caller; or a redirect to sign in.
pub(super) struct Me {
    pub user: User,
    pub signed_in: SignedIn,
    pub caller: Caller,
    pub csrf: String,
}

pub(super) async fn me(
    state: &AppState,
    session: &Session,
    peer: &PeerAddress,
) -> Result<Option<Me>, PageError> {
    let Some((user, signed_in)) = browser::current_user(state, session, peer.0.as_deref()).await?
    else {
        return Ok(None);
    };
    let caller = Caller::user(user.id.clone(), user.username.clone(), peer.0.clone());
    let csrf = browser::csrf_token(session).await?;
    Ok(Some(Me {
        user,
        signed_in,
        caller,
        csrf,
    }))
}

fn sign_in_first() -> Response {
    respond::see_other("/login?next=/account")
}

#[derive(Template)]
#[template(path = "account.html")]
struct ProfilePage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    username: &'a str,
    name: &'a str,
    email: &'a str,
    email_verified: bool,
}

fn profile_page(
    me: &Me,
    notice: Option<&str>,
    error: Option<&str>,
) -> Result<pages::Page, PageError> {
    Ok(pages::render(
        &ProfilePage {
            tab: "profile",
            notice,
            error,
            csrf: &me.csrf,
            username: &me.user.username,
            name: me.user.name.as_deref().unwrap_or(""),
            email: me.user.email.as_deref().unwrap_or(""),
            email_verified: me.user.email_verified,
        },
        &[],
    )?)
}

async fn profile(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    Ok(profile_page(&me, notice_text(query.notice.as_deref()), None)?.into_response())
}

/// A refused change: the page again with the reason (422), or the error page.
fn refused(me: &Me, error: AccountError) -> Result<Response, PageError> {
    match error {
        AccountError::Fields(fields) => {
            let message = sigil_core::accounts::field_messages(&fields);
            Err(PageError::InvalidForm(profile_page(
                me,
                None,
                Some(&message),
            )?))
        }
        AccountError::WrongPassword => Err(PageError::InvalidForm(profile_page(
            me,
            None,
            Some("Your password is not correct: nothing was changed."),
        )?)),
        AccountError::Throttled => Err(PageError::TooManyRequests(profile_page(
            me,
            None,
            Some("Too many attempts: please wait a while before trying again."),
        )?)),
        other => Err(PageError::Account(other)),
    }
}

async fn save_name(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let name = form.single("name").ok().flatten().unwrap_or("");
    match state
        .accounts
        .update_name(&me.caller, &me.user.id, name)
        .await
    {
        Ok(_) => Ok(respond::see_other("/account?notice=saved")),
        Err(error) => refused(&me, error),
    }
}

async fn change_email(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let email = form.single("email").ok().flatten().unwrap_or("");
    let current = Secret::new(form.single("current_password").ok().flatten().unwrap_or(""));
    match state
        .accounts
        .request_email_change(&me.caller, &me.user.id, email, current)
        .await
    {
        Ok(()) => Ok(respond::see_other("/account?notice=email-sent")),
        Err(error) => refused(&me, error),
    }
}

/// One browser session, as the page lists it.
struct SessionRow {
    id: String,
    agent: String,
    address: String,
    started: String,
    seen: String,
    is_current: bool,
}

#[derive(Template)]
#[template(path = "account_sessions.html")]
struct SessionsPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    sessions: Vec<SessionRow>,
}

/// A short name for a browser from its user agent.
pub(crate) fn browser_name(agent: Option<&str>) -> String {
    let Some(agent) = agent else {
        return "Unknown browser".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    let system = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("Mac OS", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => agent.chars().take(60).collect(),
    }
}

async fn sessions(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let list = state
        .accounts
        .list_sessions(
            &me.user.id,
            me.signed_in.session_id.as_deref(),
            state.session_ttl,
        )
        .await
        .map_err(PageError::Account)?;
    let sessions = list
        .into_iter()
        .map(|info| SessionRow {
            agent: browser_name(info.session.user_agent.as_deref()),
            address: info
                .session
                .address
                .clone()
                .unwrap_or_else(|| "an unknown address".into()),
            started: format_time(info.session.created_at),
            seen: format_time(info.session.last_seen_at),
            is_current: info.is_current,
            id: info.session.id,
        })
        .collect();
    let page = SessionsPage {
        tab: "sessions",
        notice: notice_text(query.notice.as_deref()),
        error: None,
        csrf: &me.csrf,
        sessions,
    };
    Ok(pages::render(&page, &[])?.into_response())
}

async fn end_sessions(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let which = form.single("session").ok().flatten().unwrap_or("");
    let current = me.signed_in.session_id.as_deref();
    let (only, except, notice) = match which {
        "others" => (None, current, "others-signed-out"),
        id if sigil_core::secret::is_random_token(id, 16) && Some(id) != current => {
            (Some(id), None, "signed-out")
        }
        _ => {
            return Err(PageError::InvalidForm(pages::message(
                "Not possible",
                "There is no such session. To sign out of this browser, use Sign out.",
                true,
            )?))
        }
    };
    // A session from before session records cannot be told from the others: "others"
    // then ends every recorded one, which is every other.
    state
        .accounts
        .end_sessions(&me.caller, &me.user, only, except)
        .await
        .map_err(PageError::Account)?;
    Ok(respond::see_other(&format!(
        "/account/sessions?notice={notice}"
    )))
}

/// One connected app, as the page lists it.
struct AppRow {
    client_id: String,
    name: String,
    scope: String,
    since: String,
    last_used: String,
    sessions: usize,
}

#[derive(Template)]
#[template(path = "account_apps.html")]
struct AppsPage<'a> {
    tab: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    apps: Vec<AppRow>,
}

async fn apps(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let grants = state.admin.user_grants(&me.user.id).await?;
    let apps = grants
        .into_iter()
        .map(|grant| AppRow {
            name: grant
                .client_name
                .clone()
                .unwrap_or_else(|| "A removed app".into()),
            scope: grant
                .consented_scope
                .clone()
                .or(grant.token_scope.clone())
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(pages::describe_scope)
                .collect::<Vec<_>>()
                .join("; "),
            since: grant.consented_at.map(format_time).unwrap_or_default(),
            last_used: grant.last_used_at.map(format_time).unwrap_or_default(),
            sessions: grant.live_sessions,
            client_id: grant.client_id,
        })
        .collect();
    let page = AppsPage {
        tab: "apps",
        notice: notice_text(query.notice.as_deref()),
        error: None,
        csrf: &me.csrf,
        apps,
    };
    Ok(pages::render(&page, &[])?.into_response())
}

async fn revoke_app(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first());
    };
    let client_id = form.single("client_id").ok().flatten().unwrap_or("");
    if !sigil_core::secret::is_random_token(client_id, 16) {
        return Err(PageError::InvalidForm(pages::message(
            "Not possible",
            "There is no such app.",
            true,
        )?));
    }
    state
        .admin
        .revoke_grant(&me.caller, &me.user.id, client_id)
        .await?;
    Ok(respond::see_other("/account/apps?notice=app-removed"))
}
