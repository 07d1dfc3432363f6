//! `/admin/sessions`: every live browser session, a page at a time, and ending one (after a
//! confirmation page) from there or from the user's page. Ending is core's
//! (`Admin::end_session`): the record ends, the clients hear by back-channel logout, the
//! audit log records it.

use super::path::{filters, segment, AdminPath, SessionId};
use super::{confirm_with, done, render, Admin, Chrome, Confirm};
use crate::http::account_pages::browser_name;
use crate::http::browser;
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::admin::{AdminError, AdminSession, SessionClient, SessionCursor};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/sessions", get(list))
        .route("/admin/sessions/{id}/end", get(confirm_end).post(end))
}

/// Sessions on one page of the list.
const PAGE_SIZE: i64 = 100;

/// A session as a row of the console's tables.
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    /// `None` when the account is gone.
    pub username: Option<String>,
    pub clients: Vec<SessionClient>,
    pub address: String,
    pub started: String,
    pub seen: String,
    /// The browser in a few words, and the user agent as sent (cut to 200 characters when
    /// the session started).
    pub agent: String,
    pub agent_full: String,
    /// The session this page is shown in.
    pub is_current: bool,
}

/// The rows of `sessions`; `current`: the record id of the admin's own session.
pub fn rows(sessions: Vec<AdminSession>, current: Option<&str>) -> Vec<SessionRow> {
    sessions
        .into_iter()
        .map(|s| SessionRow {
            is_current: Some(s.session.id.as_str()) == current,
            agent: browser_name(s.session.user_agent.as_deref()),
            agent_full: s.session.user_agent.clone().unwrap_or_default(),
            address: s
                .session
                .address
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            started: super::format_time(s.session.created_at),
            seen: super::format_time(s.session.last_seen_at),
            username: s.username,
            clients: s.clients,
            user_id: s.session.user_id,
            id: s.session.id,
        })
        .collect()
}

/// The record id of the session the admin is using.
pub async fn current_session_id(admin: &Admin) -> Result<Option<String>, PageError> {
    Ok(browser::signed_in(&admin.session)
        .await?
        .and_then(|signed_in| signed_in.session_id))
}

#[derive(Template)]
#[template(path = "admin/sessions.html")]
struct ListPage {
    chrome: Chrome,
    sessions: Vec<SessionRow>,
    /// The link to the next (older) page, if there is one.
    next: Option<String>,
    is_first_page: bool,
    idle_ttl: String,
}

#[derive(Deserialize)]
struct ListQuery {
    /// The cursor of the page: `<last_seen_at>.<id>` of the row before it.
    before: Option<String>,
    notice: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let cursor = match query.before.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<SessionCursor>().map_err(|_| {
            AdminError::Invalid(
                "This link to a page of sessions is not valid. Start again from Sessions.".into(),
            )
        })?),
    };
    let page = state
        .admin
        .list_live_sessions(state.session_ttl, cursor.as_ref(), PAGE_SIZE)
        .await?;
    let current = current_session_id(&admin).await?;
    render(&ListPage {
        chrome: admin.chrome(query.notice.as_deref()),
        sessions: rows(page.sessions, current.as_deref()),
        next: page
            .next
            .map(|next| format!("/admin/sessions?before={next}")),
        is_first_page: cursor.is_none(),
        idle_ttl: humantime::format_duration(std::time::Duration::from_secs(
            state.session_ttl.max(0) as u64,
        ))
        .to_string(),
    })
}

/// Where the confirmation and the redirect go back to: a fixed choice, never a URL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Back {
    Sessions,
    User,
}

impl Back {
    fn from_value(value: Option<&str>) -> Self {
        match value {
            Some("user") => Back::User,
            _ => Back::Sessions,
        }
    }

    fn location(self, session: &AdminSession) -> String {
        match self {
            Back::User => format!("/admin/users/{}", segment(&session.session.user_id)),
            Back::Sessions => "/admin/sessions".to_string(),
        }
    }
}

#[derive(Deserialize)]
struct BackQuery {
    back: Option<String>,
}

async fn confirm_end(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<SessionId>,
    Query(query): Query<BackQuery>,
) -> Result<Response, PageError> {
    let found = state.admin.find_session(id.as_str()).await?;
    let back = Back::from_value(query.back.as_deref());
    let who = found
        .username
        .clone()
        .unwrap_or_else(|| "a deleted account".into());
    let clients = match found.clients.len() {
        0 => "It signed in to no application through Sigil.".to_string(),
        1 => "The one application it signed in to is told (back-channel logout).".to_string(),
        n => format!("The {n} applications it signed in to are told (back-channel logout)."),
    };
    let message = format!(
        "The browser ({}, from {}, last seen {}) is signed out at its next request. {clients} Tokens the applications already hold stay valid until they expire or are revoked; {who} can sign in again.",
        browser_name(found.session.user_agent.as_deref()),
        found.session.address.as_deref().unwrap_or("an unknown address"),
        super::format_time(found.session.last_seen_at),
    );
    let hidden = match back {
        Back::User => vec![("back".to_string(), "user".to_string())],
        Back::Sessions => Vec::new(),
    };
    confirm_with(
        &admin,
        Confirm {
            title: format!("End this session of {who}?"),
            message: &message,
            action: format!("/admin/sessions/{id}/end"),
            button: "End session",
            cancel: back.location(&found),
            is_danger: true,
        },
        hidden,
    )
}

async fn end(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<SessionId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let back = Back::from_value(form.single("back").ok().flatten());
    let ended = state
        .admin
        .end_session(&admin.caller(), id.as_str())
        .await?;
    tracing::info!(user = %ended.session.user_id, "a browser session ended by an admin");
    Ok(done(&back.location(&ended), "session-ended"))
}
