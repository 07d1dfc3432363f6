//! `GET, POST /login/second-factor`: the second step of a sign-in, and a step-up. After a
//! right password, an account with a second factor proves it here (a code from an
//! authenticator app, a recovery code, or a passkey) before the session is signed in. A
//! session already signed in comes here when a client asks for more than it proved
//! (`acr_values`), and the method is added to the session. Wrong codes count against the
//! account, atomically across replicas.

use super::account::request_id;
use super::browser::{self, SecondStep};
use super::error::PageError;
use super::form::OAuthForm;
use super::login::{client_of, continue_pending, finish, local_next};
use super::{pages, respond};
use crate::http::caller::PeerAddress;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::audit::Caller;
use sigil_core::authorize::SignedIn;
use sigil_core::factors::{FactorError, FactorSummary, Method, UsedMethod};
use sigil_core::user::User;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new().route("/login/second-factor", get(show).post(submit))
}

/// The second step's address for a pending request (or none).
pub fn page_url(req: &str) -> String {
    match request_id(Some(req)) {
        "" => "/login/second-factor".to_string(),
        req => format!("/login/second-factor?req={req}"),
    }
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    csrf: &'a str,
    req: &'a str,
    /// Where a step-up without a pending request goes afterwards (see `login::local_next`).
    next: &'a str,
    username: &'a str,
    client_name: Option<&'a str>,
    /// A step-up of a session already signed in (not the second half of a sign-in).
    is_step_up: bool,
    /// The client asked for a phishing-resistant sign-in: only a passkey will do.
    passkey_only: bool,
    has_codes: bool,
    has_passkey: bool,
    /// The issuer has a host name, so passkeys can work.
    passkeys_available: bool,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct SecondFactorQuery {
    req: Option<String>,
    next: Option<String>,
    passkey: Option<String>,
}

/// Whose second factor this page asks for.
pub(super) enum Proving {
    /// The second half of a sign-in: the password was right.
    SignIn(SecondStep, User),
    /// A step-up of the session's signed-in user.
    StepUp(User, SignedIn),
}

impl Proving {
    pub(super) fn user(&self) -> &User {
        match self {
            Proving::SignIn(_, user) | Proving::StepUp(user, _) => user,
        }
    }
}

/// The half-done sign-in of this session, or else its signed-in user; none when neither.
pub(super) async fn proving(
    state: &AppState,
    session: &Session,
) -> Result<Option<Proving>, PageError> {
    let now = state.authority.now();
    if let Some(step) = browser::second_step(session, now).await? {
        let user = state
            .authority
            .find_user(&step.user_id)
            .await
            .map_err(|error| PageError::Unavailable {
                event: "could not read the user of a sign-in",
                error,
            })?;
        return Ok(user
            .filter(|user| !user.is_disabled && user.session_epoch == step.session_epoch)
            .map(|user| Proving::SignIn(step, user)));
    }
    Ok(browser::current_user(state, session, None)
        .await?
        .map(|(user, signed_in)| Proving::StepUp(user, signed_in)))
}

/// Whether the pending request asks for a phishing-resistant sign-in.
pub(super) async fn wants_passkey(
    state: &AppState,
    session: &Session,
    req: &str,
) -> Result<bool, PageError> {
    Ok(browser::find_pending(session, req, state.authority.now())
        .await?
        .and_then(|pending| pending.request.acr_level)
        .is_some_and(|level| level == sigil_core::factors::Level::PhishingResistant))
}

/// The page; `asks_for_passkey` (`?passkey=1`) offers the passkey alone.
#[allow(clippy::too_many_arguments)]
pub(super) async fn page(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
    proving: &Proving,
    summary: &FactorSummary,
    asks_for_passkey: bool,
    error: Option<&str>,
) -> Result<pages::Page, PageError> {
    let csrf = browser::csrf_token(session).await?;
    let (client_name, targets) = match client_of(state, session, req).await? {
        Some((name, targets, _)) => (Some(name), targets),
        None => (None, Vec::new()),
    };
    let page = SecondFactorPage {
        csrf: &csrf,
        req,
        next,
        username: &proving.user().username,
        client_name: client_name.as_deref(),
        is_step_up: matches!(proving, Proving::StepUp(..)),
        passkey_only: asks_for_passkey || wants_passkey(state, session, req).await?,
        has_codes: summary.has_totp() || summary.recovery_codes_left > 0,
        has_passkey: summary.has_passkey(),
        passkeys_available: state.passkeys.is_available(),
        error,
    };
    Ok(pages::render(&page, &targets)?)
}

fn sign_in_again(req: &str) -> Response {
    match req {
        "" => respond::see_other("/login"),
        req => respond::see_other(&format!("/login?req={req}")),
    }
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<SecondFactorQuery>,
) -> Result<Response, PageError> {
    let asks_for_passkey = query.passkey.as_deref() == Some("1");
    let req = request_id(query.req.as_deref());
    let next = local_next(query.next.as_deref());
    let Some(proving) = proving(&state, &session).await? else {
        return Ok(sign_in_again(req));
    };
    let summary = state.factors.summary(&proving.user().id).await?;
    if !summary.has_any() {
        // Nothing to prove with (the factors were reset meanwhile): sign in again.
        browser::end_second_step(&session).await?;
        return Ok(sign_in_again(req));
    }
    Ok(page(
        &state,
        &session,
        req,
        next,
        &proving,
        &summary,
        asks_for_passkey,
        None,
    )
    .await?
    .into_response())
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
    let req = request_id(form.single("req").ok().flatten()).to_string();
    let next = local_next(form.single("next").ok().flatten()).to_string();
    let code = form.single("code").ok().flatten().unwrap_or("").to_string();
    let Some(proving) = proving(&state, &session).await? else {
        return Ok(sign_in_again(&req));
    };
    let user = proving.user().clone();
    let caller = Caller::user(user.id.clone(), user.username.clone(), peer.0.clone());
    let refused = |error: &'static str| async {
        let summary = state.factors.summary(&user.id).await?;
        page(
            &state,
            &session,
            &req,
            &next,
            &proving,
            &summary,
            false,
            Some(error),
        )
        .await
    };
    let method = match state.factors.verify_code(&caller, &user, &code).await {
        Ok(method) => method,
        Err(FactorError::WrongCode) => {
            tracing::info!(user = %user.id, "second factor refused");
            return Err(PageError::InvalidForm(
                refused("That code is not right, or it was used already. Try the next one.")
                    .await?,
            ));
        }
        Err(FactorError::Throttled(_)) => {
            tracing::info!(user = %user.id, "second factor throttled");
            return Err(PageError::TooManyRequests(
                refused("Too many wrong codes. Please wait a while before trying again.").await?,
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let done = Proven {
        req: &req,
        next: &next,
        method,
        address: peer.0.clone(),
    };
    proved(&state, &session, proving, done, &headers).await
}

/// A second factor proven: for which request, where to go without one, how, from where.
pub(super) struct Proven<'a> {
    pub req: &'a str,
    pub next: &'a str,
    pub method: Method,
    pub address: Option<String>,
}

/// A second factor was proven: the sign-in finishes with both methods, or the signed-in
/// session notes the step-up; then on to the pending request (or `next`).
pub(super) async fn proved(
    state: &AppState,
    session: &Session,
    proving: Proving,
    done: Proven<'_>,
    headers: &HeaderMap,
) -> Result<Response, PageError> {
    let now = state.authority.now();
    let Proven {
        req,
        next,
        method,
        address,
    } = done;
    match proving {
        Proving::SignIn(step, user) => {
            let methods = vec![
                UsedMethod {
                    method: if step.federated {
                        Method::Federated
                    } else {
                        Method::Password
                    },
                    at: step.password_at,
                },
                UsedMethod { method, at: now },
            ];
            tracing::info!(user = %user.id, "second factor accepted");
            finish(
                state, session, req, &step.next, &user, address, headers, methods,
            )
            .await
        }
        Proving::StepUp(user, mut signed_in) => {
            signed_in.add_method(method, now);
            browser::sign_in(session, signed_in).await?;
            tracing::info!(user = %user.id, "step-up accepted");
            if req.is_empty() {
                return Ok(respond::see_other(match next {
                    "" => "/account/security",
                    next => next,
                }));
            }
            continue_pending(state, session, req, now).await
        }
    }
}
