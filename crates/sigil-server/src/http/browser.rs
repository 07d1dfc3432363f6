//! What the browser pages share: the session's signed-in user, its CSRF token, pending
//! authorization requests, form parsing, and redirects to clients.

use super::form::OAuthForm;
use super::pages;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sigil_core::authorize::{AuthorizationRequest, SignedIn};
use sigil_core::secret::{constant_time_eq, random_token};
use std::collections::HashMap;
use tower_sessions::Session;

const USER: &str = crate::sessions::SIGNED_IN_KEY;
const CSRF: &str = "csrf";
const PENDING: &str = "pending";
/// Pending requests a session may hold at once (several tabs), and for how long.
const MAX_PENDING: usize = 8;
const PENDING_TTL: i64 = 30 * 60;

/// An authorization request waiting for the user to sign in or consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub request: AuthorizationRequest,
    pub login_done: bool,
    pub consent_done: bool,
    pub created_at: i64,
}

/// A session failure becomes a plain 503 page: the database behind sessions is down.
pub fn session_error(err: tower_sessions::session::Error) -> Response {
    tracing::warn!(error = %err, "session store failure");
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Sigil cannot reach its database right now. Please try again in a moment.",
    )
}

pub async fn signed_in(session: &Session) -> Result<Option<SignedIn>, Response> {
    session.get::<SignedIn>(USER).await.map_err(session_error)
}

/// Signs a user in: a new session id (against fixation), the user, a fresh CSRF token.
pub async fn sign_in(session: &Session, user: SignedIn) -> Result<(), Response> {
    session.cycle_id().await.map_err(session_error)?;
    session.insert(USER, user).await.map_err(session_error)?;
    session
        .insert(CSRF, random_token(24))
        .await
        .map_err(session_error)
}

/// Ends the session entirely.
pub async fn sign_out(session: &Session) -> Result<(), Response> {
    session.flush().await.map_err(session_error)
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String, Response> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(session_error)? {
        return Ok(token);
    }
    let token = random_token(24);
    session.insert(CSRF, &token).await.map_err(session_error)?;
    Ok(token)
}

/// Checks a form's CSRF token against the session's, in constant time.
pub async fn check_csrf(session: &Session, form: &OAuthForm) -> Result<(), Response> {
    let expected = session.get::<String>(CSRF).await.map_err(session_error)?;
    let presented = form.single("csrf").ok().flatten();
    match (expected, presented) {
        (Some(expected), Some(presented)) if constant_time_eq(&expected, presented) => Ok(()),
        _ => Err(pages::message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was too old or did not come from this site. Go back, reload the page and try again.",
        )),
    }
}

async fn pending_map(session: &Session) -> Result<HashMap<String, Pending>, Response> {
    Ok(session
        .get::<HashMap<String, Pending>>(PENDING)
        .await
        .map_err(session_error)?
        .unwrap_or_default())
}

/// Keeps a pending request in the session; returns its id.
pub async fn save_pending(
    session: &Session,
    pending: Pending,
    now: i64,
) -> Result<String, Response> {
    let mut map = pending_map(session).await?;
    map.retain(|_, p| now - p.created_at < PENDING_TTL);
    while map.len() >= MAX_PENDING {
        let oldest = map
            .iter()
            .min_by_key(|(_, p)| p.created_at)
            .map(|(id, _)| id.clone());
        match oldest {
            Some(id) => map.remove(&id),
            None => break,
        };
    }
    let id = random_token(16);
    map.insert(id.clone(), pending);
    session.insert(PENDING, map).await.map_err(session_error)?;
    Ok(id)
}

pub async fn update_pending(session: &Session, id: &str, pending: Pending) -> Result<(), Response> {
    let mut map = pending_map(session).await?;
    map.insert(id.to_string(), pending);
    session.insert(PENDING, map).await.map_err(session_error)
}

pub async fn take_pending(session: &Session, id: &str) -> Result<Option<Pending>, Response> {
    let mut map = pending_map(session).await?;
    let pending = map.remove(id);
    session.insert(PENDING, map).await.map_err(session_error)?;
    Ok(pending)
}

pub async fn find_pending(
    session: &Session,
    id: &str,
    now: i64,
) -> Result<Option<Pending>, Response> {
    Ok(pending_map(session)
        .await?
        .remove(id)
        .filter(|p| now - p.created_at < PENDING_TTL))
}

/// The page for a sign-in request that is no longer in the session.
pub fn expired_request() -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "Go back to the application and start signing in again.",
    )
}

/// A redirect to a client's registered URI with extra query parameters.
pub fn redirect_to_client(uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(uri) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The application's redirect URI is not valid.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    redirect(StatusCode::FOUND, url.as_str())
}

/// A redirect within Sigil or to a client, with the page headers.
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    pages::set_page_headers(&mut response, &[]);
    response
}

/// Parses a query string or form body, noting repeated parameters.
pub fn parse_params(raw: &[u8]) -> (HashMap<String, String>, Vec<String>) {
    let mut values = HashMap::new();
    let mut repeated = Vec::new();
    for (name, value) in form_urlencoded::parse(raw) {
        if value.is_empty() {
            continue;
        }
        match values.entry(name.into_owned()) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                if !repeated.contains(entry.key()) {
                    repeated.push(entry.key().clone());
                }
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(value.into_owned());
            }
        }
    }
    (values, repeated)
}
