//! `GET, POST /login`: the sign-in page. CSRF-protected; the session id is rotated at
//! sign-in; a failed attempt gets one generic message, whatever was wrong.

use super::authorize::proceed;
use super::browser;
use super::error::{log_cause, PageError};
use super::form::OAuthForm;
use super::pages::{self, LoginPage};
use super::respond;
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::accounts::SignUpMode;
use sigil_core::device::DEVICE_TOKEN_TTL;
use sigil_core::factors::{Method, UsedMethod};
use sigil_core::secret::Secret;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new().route("/login", get(show).post(submit))
}

#[derive(Deserialize)]
struct LoginQuery {
    req: Option<String>,
    next: Option<String>,
    /// One of the fixed notices of [`notice_text`].
    notice: Option<String>,
    /// A user name to fill in (after sign-up or a reset).
    username: Option<String>,
}

/// The fixed words a redirect to the sign-in page may ask for: only these, so that a link
/// cannot put text on the page.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "verified" => "Your e-mail address is confirmed. Sign in to continue.",
        "password-set" => {
            "Your new password is set, and every browser and app signed in as you was signed out. Sign in with it."
        }
        "signed-up" => "Your account is ready. Sign in to continue.",
        _ => return None,
    })
}

/// A place inside Sigil to return to after signing in: only the admin console or the
/// account pages, so that the parameter cannot send anyone elsewhere.
pub(super) fn local_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if ["/admin", "/account"].iter().any(|base| {
                path == *base
                    || path.starts_with(&format!("{base}/"))
                    || path.starts_with(&format!("{base}?"))
            }) && !path.contains(['\\', '\r', '\n']) =>
        {
            path
        }
        _ => "",
    }
}

/// The client's name and redirect-URI origin for a pending request, if any.
pub(super) async fn client_of(
    state: &AppState,
    session: &Session,
    req: &str,
) -> Result<Option<(String, Vec<String>, Option<String>)>, PageError> {
    let Some(pending) = browser::find_pending(session, req, state.authority.now()).await? else {
        return Ok(None);
    };
    let client = state
        .authority
        .find_client(&pending.request.client_id)
        .await
        .inspect_err(log_cause)
        .ok()
        .flatten();
    let targets = pages::csp_source(&pending.request.redirect_uri)
        .into_iter()
        .collect();
    Ok(client.map(|c| (c.name.clone(), targets, pending.request.login_hint.clone())))
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let req = query.req.unwrap_or_default();
    let next = local_next(query.next.as_deref()).to_string();
    let csrf = browser::csrf_token(&session).await?;
    let (client_name, targets, hint) = match client_of(&state, &session, &req).await? {
        Some((name, targets, hint)) => (Some(name), targets, hint),
        None if req.is_empty() => (None, Vec::new(), None),
        None => return Err(PageError::SignInExpired),
    };
    let page = LoginPage {
        csrf: &csrf,
        req: &req,
        next: &next,
        client_name: client_name.as_deref(),
        username: hint.as_deref().or(query.username.as_deref()).unwrap_or(""),
        error: None,
        notice: notice_text(query.notice.as_deref()),
        sign_up_open: state.accounts.config().sign_up == SignUpMode::Open,
        passkeys_available: state.passkeys.is_available(),
        providers: super::federation::links(&state, &req, &next).await,
    };
    Ok(pages::render(&page, &targets)?.into_response())
}

/// The trusted-device cookie's name for an issuer (see `sigil_core::device`).
pub fn device_cookie_name(is_https: bool) -> &'static str {
    if is_https {
        "__Host-sigil_device"
    } else {
        "sigil_device"
    }
}

/// The trusted-device cookie the browser sent, if any (the last one of that name).
fn presented_device_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
        .next_back()
}

/// A `Set-Cookie` for a trusted-device token: sent only to Sigil (HttpOnly, SameSite=Strict,
/// path `/login`), Secure under https, for [`DEVICE_TOKEN_TTL`].
fn device_cookie(name: &str, token: &str, is_https: bool) -> Option<HeaderValue> {
    let (path, secure) = if is_https {
        ("/", "; Secure")
    } else {
        ("/login", "")
    };
    HeaderValue::from_str(&format!(
        "{name}={token}; Max-Age={DEVICE_TOKEN_TTL}; Path={path}; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

async fn submit(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = form.single("req").ok().flatten().unwrap_or("").to_string();
    let next = local_next(form.single("next").ok().flatten()).to_string();
    let username = form
        .single("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let password = form
        .single("password")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let mut is_throttled = false;
    let now = state.authority.now();
    let is_https = state.authority.config().issuer.starts_with("https://");
    let cookie_name = device_cookie_name(is_https);
    // A browser that signed in to this account before is exempt from the account's wait
    // (its attempts count against the device); anything else counts against the account.
    let device = presented_device_token(&headers, cookie_name)
        .and_then(|token| state.devices.verify(token, &username, now));
    let user = if username.is_empty() || password.is_empty() {
        None
    } else {
        match state
            .authority
            .authenticate_user(
                &username,
                Secret::new(password),
                device.as_deref(),
                &peer.anonymous(),
            )
            .await
        {
            Ok(user) => user,
            // The same words whether the name exists or not, and no count of seconds: no
            // Retry-After either, which would tell a script when to send its next guess.
            Err(error) if error.cause == sigil_core::Cause::TooManyFailedSignIns => {
                tracing::info!("sign-in throttled");
                is_throttled = true;
                None
            }
            Err(error) => return Err(PageError::SignInUnchecked(error)),
        }
    };
    let Some(user) = user else {
        tracing::info!("sign-in failed");
        let csrf = browser::csrf_token(&session).await?;
        let (client_name, targets) = match client_of(&state, &session, &req).await? {
            Some((name, targets, _)) => (Some(name), targets),
            None => (None, Vec::new()),
        };
        let page = LoginPage {
            csrf: &csrf,
            req: &req,
            next: &next,
            client_name: client_name.as_deref(),
            username: &username,
            error: Some(if is_throttled {
                "Too many sign-in attempts. Please wait a while before trying again."
            } else {
                "Incorrect user name or password."
            }),
            notice: None,
            sign_up_open: state.accounts.config().sign_up == SignUpMode::Open,
            passkeys_available: state.passkeys.is_available(),
            providers: super::federation::links(&state, &req, &next).await,
        };
        return Err(PageError::SignInRefused {
            page: pages::render(&page, &targets)?,
            is_throttled,
        });
    };
    let device_cookie = state
        .devices
        .issue(&user.username, device.as_deref(), now)
        .and_then(|token| device_cookie(cookie_name, &token, is_https));
    if user.awaits_email_verification() {
        return unverified_page(&state, &session, &req, &user).await;
    }
    let mut response = after_password(
        &state,
        &session,
        &req,
        &next,
        &user,
        peer.0.clone(),
        &headers,
        now,
    )
    .await?;
    if let Some(cookie) = device_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The session key under which the sign-in page keeps the account whose password was right
/// but whose address is not verified yet, for the "send the link again" button.
pub const UNVERIFIED_KEY: &str = "unverified_user";

/// The password was right, but the account has not verified its address: no sign-in, a
/// page that says so and offers to mail the link again.
async fn unverified_page(
    state: &AppState,
    session: &Session,
    req: &str,
    user: &sigil_core::user::User,
) -> Result<Response, PageError> {
    let _ = state;
    session.insert(UNVERIFIED_KEY, &user.id).await?;
    let csrf = browser::csrf_token(session).await?;
    let page = pages::VerifyPendingPage {
        csrf: &csrf,
        req,
        email: user.email.as_deref().unwrap_or(""),
        notice: None,
    };
    Err(PageError::Forbidden(pages::render(&page, &[])?))
}

/// The password (checked at `now`) was right: an account with a second factor goes on to
/// prove it at `/login/second-factor`, signed in only then; any other is signed in now.
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_password(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
    user: &sigil_core::user::User,
    address: Option<String>,
    headers: &HeaderMap,
    now: i64,
) -> Result<Response, PageError> {
    let first = UsedMethod {
        method: Method::Password,
        at: now,
    };
    after_first_factor(state, session, req, next, user, address, headers, first).await
}

/// A first factor (`first`: the password, or an upstream provider's sign-in) was
/// accepted: an account with a second factor goes on to prove it at
/// `/login/second-factor`, signed in only then; any other is signed in now.
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_first_factor(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
    user: &sigil_core::user::User,
    address: Option<String>,
    headers: &HeaderMap,
    first: UsedMethod,
) -> Result<Response, PageError> {
    if state.factors.summary(&user.id).await?.has_any() {
        let step = browser::SecondStep {
            user_id: user.id.clone(),
            session_epoch: user.session_epoch,
            password_at: first.at,
            next: next.to_string(),
            federated: first.method == Method::Federated,
        };
        browser::start_second_step(session, step).await?;
        tracing::info!(user = %user.id, "first factor accepted; a second factor is next");
        return Ok(respond::see_other(&super::second_factor::page_url(req)));
    }
    // A sign-in starts over: whatever this browser proved before (a second factor of an
    // earlier session) does not carry into it, so prompt=login and max_age mean it.
    let methods = vec![first];
    // A user who must have a factor and has none adds one first. With a pending request,
    // `/authorize` sends them there; without, this does.
    let enrol;
    let next = if req.is_empty() && state.factors.is_required(user) {
        enrol = match next {
            "" => "/account/security".to_string(),
            next => format!(
                "/account/security?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ),
        };
        enrol.as_str()
    } else {
        next
    };
    finish(state, session, req, next, user, address, headers, methods).await
}

/// Signs the session in with `methods` and goes on: to the pending authorization request,
/// to `next`, or to a page that says so.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
    user: &sigil_core::user::User,
    address: Option<String>,
    headers: &HeaderMap,
    methods: Vec<UsedMethod>,
) -> Result<Response, PageError> {
    let now = state.authority.now();
    // An identity waiting for this account to prove itself is linked now, unless this
    // sign-in came through a provider itself.
    let proven_here = !methods.iter().any(|m| m.method == Method::Federated);
    browser::start_session(state, session, user, address.clone(), headers, methods).await?;
    tracing::info!(user = %user.id, "signed in");
    // It is linked only once the person says so on the next page: a sign-in they did not
    // mean to make upstream (a login CSRF there) does not link silently.
    if proven_here && super::federation::has_pending_link(state, session, user).await? {
        return Ok(respond::see_other(&super::federation::confirm_url(
            req, next,
        )));
    }
    if req.is_empty() && user.must_change_password {
        return Ok(respond::see_other("/account/password"));
    }
    if req.is_empty() && !next.is_empty() {
        return Ok(respond::see_other(next));
    }
    if req.is_empty() {
        let text = format!("You are signed in as {}.", user.username);
        return Ok(pages::message("Signed in", &text, false)?.into_response());
    }
    continue_pending(state, session, req, now).await
}

/// Goes on with a pending request whose sign-in (or step-up) is done.
pub(super) async fn continue_pending(
    state: &AppState,
    session: &Session,
    req: &str,
    now: i64,
) -> Result<Response, PageError> {
    match browser::find_pending(session, req, now).await? {
        Some(mut pending) => {
            pending.login_done = true;
            browser::update_pending(session, req, pending.clone()).await?;
            proceed(state, session, req, pending).await
        }
        None => Err(PageError::SignInExpired),
    }
}
