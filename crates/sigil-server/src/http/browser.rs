//! What the browser pages share: the session's signed-in user, its CSRF token, pending
//! authorization requests, form parsing, and redirects to clients.

use super::error::PageError;
use super::form::OAuthForm;
use super::respond;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sigil_core::authorize::{AuthorizationRequest, SignedIn};
use sigil_core::secret::{constant_time_eq, random_token};
use std::collections::HashMap;
use tower_sessions::Session;

const USER: &str = crate::sessions::SIGNED_IN_KEY;
const CSRF: &str = "csrf";
const PENDING: &str = "pending";
const SECOND_STEP: &str = "second_step";
/// How long a right password waits for its second factor.
const SECOND_STEP_TTL: i64 = 10 * 60;
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

/// A sign-in half done: the password was right, and the account has a second factor to
/// prove before the session is signed in. Nothing is signed in meanwhile; the account
/// pages, the admin console and `/authorize` see no user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondStep {
    pub user_id: String,
    /// The user's `session_epoch` when the password was checked: a password reset or a
    /// "sign out everywhere" meanwhile voids the half-done sign-in.
    pub session_epoch: i64,
    /// When the password was checked.
    pub password_at: i64,
    /// Where to go afterwards without a pending request (see `login::local_next`).
    pub next: String,
    /// The first factor was an upstream provider's sign-in, not the password (then
    /// `password_at` is when it came back).
    #[serde(default)]
    pub federated: bool,
}

/// Keeps a half-done sign-in (see [`SecondStep`]), replacing any earlier one. The session
/// id changes, as it will again at the sign-in.
pub async fn start_second_step(session: &Session, step: SecondStep) -> Result<(), PageError> {
    session.cycle_id().await?;
    session.insert(SECOND_STEP, step).await?;
    Ok(())
}

/// The half-done sign-in of this session, if it is recent enough.
pub async fn second_step(session: &Session, now: i64) -> Result<Option<SecondStep>, PageError> {
    Ok(session
        .get::<SecondStep>(SECOND_STEP)
        .await?
        .filter(|step| now - step.password_at < SECOND_STEP_TTL))
}

/// Drops the half-done sign-in (done, or given up).
pub async fn end_second_step(session: &Session) -> Result<(), PageError> {
    session.remove::<SecondStep>(SECOND_STEP).await?;
    Ok(())
}

pub async fn signed_in(session: &Session) -> Result<Option<SignedIn>, PageError> {
    Ok(session.get::<SignedIn>(USER).await?)
}

/// Signs a user in: a new session id (against fixation), the user, a fresh CSRF token.
pub async fn sign_in(session: &Session, user: SignedIn) -> Result<(), PageError> {
    session.cycle_id().await?;
    session.remove::<SecondStep>(SECOND_STEP).await?;
    session.insert(USER, user).await?;
    session.insert(CSRF, random_token(24)).await?;
    Ok(())
}

/// Signs `user` in to this browser session as a new session of theirs: recorded for the
/// account page's list (with the address and browser it came from), then [`sign_in`].
pub async fn start_session(
    state: &crate::state::AppState,
    session: &Session,
    user: &sigil_core::user::User,
    address: Option<String>,
    headers: &axum::http::HeaderMap,
    methods: Vec<sigil_core::factors::UsedMethod>,
) -> Result<SignedIn, PageError> {
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let signed_in = state
        .accounts
        .start_session(user, address, user_agent, methods)
        .await
        .map_err(PageError::Account)?;
    sign_in(session, signed_in.clone()).await?;
    Ok(signed_in)
}

/// The methods of a sign-in that just checked the password at `now`: the password, and
/// whatever this browser proved for the same user earlier in the session (a password
/// change keeps a second factor proven before it).
pub async fn methods_with_password(
    session: &Session,
    user_id: &str,
    now: i64,
) -> Result<Vec<sigil_core::factors::UsedMethod>, PageError> {
    let mut methods = match signed_in(session).await? {
        Some(earlier) if earlier.user_id == user_id => earlier.used_methods(),
        _ => Vec::new(),
    };
    methods.retain(|m| m.method != sigil_core::factors::Method::Password);
    methods.push(sigil_core::factors::UsedMethod {
        method: sigil_core::factors::Method::Password,
        at: now,
    });
    Ok(methods)
}

/// The user this browser session is signed in as, if the session still counts for them
/// (see `Authority::signed_in_user_and_session`, which also notes the session's use).
pub async fn current_user(
    state: &crate::state::AppState,
    session: &Session,
    _address: Option<&str>,
) -> Result<Option<(sigil_core::user::User, SignedIn)>, PageError> {
    let Some(signed_in) = signed_in(session).await? else {
        return Ok(None);
    };
    match state.authority.signed_in_user_and_session(&signed_in).await {
        Ok(Some((user, _))) => Ok(Some((user, signed_in))),
        Ok(None) => Ok(None),
        Err(error) => Err(PageError::Unavailable {
            event: "could not read the signed-in user",
            error,
        }),
    }
}

/// Ends the session entirely, and its record (so that the account page no longer lists it).
pub async fn sign_out(state: &crate::state::AppState, session: &Session) -> Result<(), PageError> {
    if let Some(signed_in) = signed_in(session).await? {
        if let Some(id) = &signed_in.session_id {
            state.accounts.forget_session(&signed_in.user_id, id).await;
        }
    }
    Ok(session.flush().await?)
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String, PageError> {
    if let Some(token) = session.get::<String>(CSRF).await? {
        return Ok(token);
    }
    let token = random_token(24);
    session.insert(CSRF, &token).await?;
    Ok(token)
}

/// Checks a form's CSRF token against the session's, in constant time.
pub async fn check_csrf(session: &Session, form: &OAuthForm) -> Result<(), PageError> {
    let expected = session.get::<String>(CSRF).await?;
    let presented = form.single("csrf").ok().flatten();
    match (expected, presented) {
        (Some(expected), Some(presented)) if constant_time_eq(&expected, presented) => Ok(()),
        _ => Err(PageError::FormExpired),
    }
}

async fn pending_map(session: &Session) -> Result<HashMap<String, Pending>, PageError> {
    Ok(session
        .get::<HashMap<String, Pending>>(PENDING)
        .await?
        .unwrap_or_default())
}

/// Keeps a pending request in the session; returns its id.
pub async fn save_pending(
    session: &Session,
    pending: Pending,
    now: i64,
) -> Result<String, PageError> {
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
    session.insert(PENDING, map).await?;
    Ok(id)
}

pub async fn update_pending(
    session: &Session,
    id: &str,
    pending: Pending,
) -> Result<(), PageError> {
    let mut map = pending_map(session).await?;
    map.insert(id.to_string(), pending);
    Ok(session.insert(PENDING, map).await?)
}

pub async fn take_pending(session: &Session, id: &str) -> Result<Option<Pending>, PageError> {
    let mut map = pending_map(session).await?;
    let pending = map.remove(id);
    session.insert(PENDING, map).await?;
    Ok(pending)
}

pub async fn find_pending(
    session: &Session,
    id: &str,
    now: i64,
) -> Result<Option<Pending>, PageError> {
    Ok(pending_map(session)
        .await?
        .remove(id)
        .filter(|p| now - p.created_at < PENDING_TTL))
}

/// Drops a pending request if the session store lets it: a failure is logged, and the
/// answer goes out anyway.
pub async fn discard_pending(session: &Session, id: &str) {
    if let Err(error) = take_pending(session, id).await {
        error.log();
    }
}

/// A redirect (302) to a client's registered URI with extra query parameters.
pub fn redirect_to_client(uri: &str, params: &[(&str, &str)]) -> Result<Response, PageError> {
    let mut url = url::Url::parse(uri).map_err(|_| PageError::InvalidRedirect)?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    Ok(respond::found(url.as_str()))
}

/// Parses a query string or form body, noting repeated parameters.
/// Every non-empty value of a parameter that may repeat (RFC 8707 `resource`), in order.
pub fn all_values(raw: &[u8], wanted: &str) -> Vec<String> {
    form_urlencoded::parse(raw)
        .filter(|(name, value)| name == wanted && !value.is_empty())
        .map(|(_, value)| value.into_owned())
        .collect()
}

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
