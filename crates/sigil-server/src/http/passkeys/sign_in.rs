//! Signing in with a passkey: as the second step after a password (or a step-up of a
//! signed-in session), with the user's own passkeys; and passwordless from the sign-in
//! page, with whichever discoverable credential the authenticator offers (user
//! verification required, so the passkey alone is phishing-resistant).

use super::{begin, credential_field, options_response, take};
use crate::http::account::request_id;
use crate::http::browser;
use crate::http::caller::PeerAddress;
use crate::http::error::PageError;
use crate::http::form::OAuthForm;
use crate::http::login::{client_of, finish, local_next};
use crate::http::pages::{self, LoginPage};
use crate::http::respond;
use crate::http::second_factor::{page, proved, proving, Proven};
use crate::passkeys::{user_handle, CeremonyState, PasskeyError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use sigil_core::accounts::SignUpMode;
use sigil_core::activity::SignInMethod;
use sigil_core::audit::Caller;
use sigil_core::factors::{FactorError, UsedMethod};
use sigil_core::store::{Factor, FactorKind};
use tower_sessions::Session;

fn sign_in_again(req: &str) -> Response {
    match req {
        "" => respond::see_other("/login"),
        req => respond::see_other(&format!("/login?req={req}")),
    }
}

async fn passkeys_of(state: &AppState, user_id: &str) -> Result<Vec<Factor>, PageError> {
    Ok(state
        .factors
        .summary(user_id)
        .await?
        .factors
        .into_iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .collect())
}

/// `POST /login/second-factor/passkey/options`: request options naming the user's passkeys.
pub(super) async fn second_factor_options(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten());
    let Some(proving) = proving(&state, &session).await? else {
        return Ok(sign_in_again(req));
    };
    let user_id = proving.user().id.clone();
    let passkeys = passkeys_of(&state, &user_id).await?;
    if passkeys.is_empty() {
        return Err(FactorError::NotFound.into());
    }
    let (options, ceremony) = state.passkeys.start_second_factor(&passkeys)?;
    begin(&session, ceremony, Some(user_id), state.authority.now()).await?;
    Ok(options_response(options))
}

/// `POST /login/second-factor/passkey` (`credential`): one of the user's passkeys proves
/// the second step; the sign-in (or step-up) finishes as with a code.
pub(super) async fn second_factor_finish(
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
    let Some(proving) = proving(&state, &session).await? else {
        return Ok(sign_in_again(&req));
    };
    let user = proving.user().clone();
    let (state_ref, session_ref, proving_ref, req_ref, next_ref) =
        (&state, &session, &proving, &req, &next);
    let refused = |message: &'static str| async move {
        count(state_ref, SignInMethod::SecondFactor, false);
        let summary = state_ref.factors.summary(&proving_ref.user().id).await?;
        Ok::<_, PageError>(PageError::InvalidForm(
            page(
                state_ref,
                session_ref,
                req_ref,
                next_ref,
                proving_ref,
                &summary,
                false,
                Some(message),
            )
            .await?,
        ))
    };
    let now = state.authority.now();
    let ceremony = take(&session, Some(&user.id), now).await?;
    if !matches!(ceremony, CeremonyState::SecondFactor(_)) {
        return Err(PasskeyError::Expired.into());
    }
    let (credential, credential_id, _) = match state.passkeys.identify(credential_field(&form)) {
        Ok(identified) => identified,
        Err(PasskeyError::Malformed) => {
            return Err(refused("Your browser did not send a passkey. Try again.").await?)
        }
        Err(error) => return Err(error.into()),
    };
    let Some(factor) = state
        .factors
        .find_passkey(&credential_id)
        .await?
        .filter(|f| f.user_id == user.id)
    else {
        tracing::info!(user = %user.id, "a passkey of another account, or none, at the second step");
        return Err(refused("That passkey does not belong to this account.").await?);
    };
    let verified = match state
        .passkeys
        .finish_authentication(ceremony, &credential, &factor)
    {
        Ok(verified) => verified,
        Err(PasskeyError::Refused(error)) => {
            tracing::info!(user = %user.id, %error, "passkey refused at the second step");
            return Err(refused("That passkey was not accepted. Try again.").await?);
        }
        Err(error) => return Err(error.into()),
    };
    state
        .factors
        .passkey_used(&factor.id, verified.updated_data.as_deref())
        .await?;
    count(&state, SignInMethod::SecondFactor, true);
    let done = Proven {
        req: &req,
        next: &next,
        method: verified.method,
        address: peer.0.clone(),
    };
    proved(&state, &session, proving, done, &headers).await
}

/// `POST /login/passkey/options`: request options for any discoverable credential.
pub(super) async fn passwordless_options(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let (options, ceremony) = state.passkeys.start_passwordless()?;
    begin(&session, ceremony, None, state.authority.now()).await?;
    Ok(options_response(options))
}

/// `POST /login/passkey` (`credential`, `req`, `next`): a passkey alone signs in. The
/// credential must be registered, its user handle that of its account, the account
/// enabled and its address verified.
pub(super) async fn passwordless_finish(
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
    let now = state.authority.now();
    let ceremony = take(&session, None, now).await?;
    if !matches!(ceremony, CeremonyState::Passwordless(_)) {
        return Err(PasskeyError::Expired.into());
    }
    let (credential, credential_id, handle) = match state.passkeys.identify(credential_field(&form))
    {
        Ok(identified) => identified,
        Err(PasskeyError::Malformed) => {
            return Err(refused_sign_in(
                &state,
                &session,
                &req,
                &next,
                "Your browser did not send a passkey. Try again.",
            )
            .await)
        }
        Err(error) => return Err(error.into()),
    };
    let refused = |message: &'static str| refused_sign_in(&state, &session, &req, &next, message);
    let Some(factor) = state.factors.find_passkey(&credential_id).await? else {
        tracing::info!("passwordless sign-in with an unknown passkey");
        return Err(refused("This passkey is not registered with this server.").await);
    };
    if handle != Some(user_handle(&factor.user_id)) {
        tracing::warn!(user = %factor.user_id, "passkey sign-in with a user handle not its account's");
        return Err(refused("This passkey was not accepted.").await);
    }
    // The signature first: nothing about the account is told before the passkey is proven.
    let verified = match state
        .passkeys
        .finish_authentication(ceremony, &credential, &factor)
    {
        Ok(verified) => verified,
        Err(PasskeyError::Refused(error)) => {
            tracing::info!(user = %factor.user_id, %error, "passwordless passkey refused");
            return Err(refused("This passkey was not accepted.").await);
        }
        Err(error) => return Err(error.into()),
    };
    let user = state
        .authority
        .find_user(&factor.user_id)
        .await
        .map_err(|error| PageError::Unavailable {
            event: "could not read the user of a passkey",
            error,
        })?;
    let Some(user) = user.filter(|u| !u.is_disabled) else {
        tracing::info!(user = %factor.user_id, "passkey sign-in to a disabled account");
        return Err(refused("This passkey was not accepted.").await);
    };
    if user.awaits_email_verification() {
        return Err(
            refused("Confirm your e-mail address first: follow the link we mailed you.").await,
        );
    }
    state
        .factors
        .passkey_used(&factor.id, verified.updated_data.as_deref())
        .await?;
    let caller = Caller::user(user.id.clone(), user.username.clone(), peer.0.clone());
    state.factors.passkey_signed_in(&caller, &user).await;
    tracing::info!(user = %user.id, "passkey accepted for a passwordless sign-in");
    let methods = vec![UsedMethod {
        method: verified.method,
        at: now,
    }];
    finish(
        &state,
        &session,
        &req,
        &next,
        &user,
        peer.0.clone(),
        &headers,
        methods,
    )
    .await
}

/// The sign-in page again, with `message` (401), as after a wrong password.
async fn refused_sign_in(
    state: &AppState,
    session: &Session,
    req: &str,
    next: &str,
    message: &'static str,
) -> PageError {
    count(state, SignInMethod::Passkey, false);
    let render = async {
        let csrf = browser::csrf_token(session).await?;
        let (client_name, targets) = match client_of(state, session, req).await? {
            Some((name, targets, _)) => (Some(name), targets),
            None => (None, Vec::new()),
        };
        let page = LoginPage {
            csrf: &csrf,
            req,
            next,
            client_name: client_name.as_deref(),
            username: "",
            error: Some(message),
            notice: None,
            sign_up_open: state.accounts.config().sign_up == SignUpMode::Open,
            passkeys_available: state.passkeys.is_available(),
            providers: crate::http::federation::links(state, req, next).await,
        };
        Ok::<_, PageError>(pages::render(&page, &targets)?)
    };
    match render.await {
        Ok(page) => PageError::SignInRefused {
            page,
            is_throttled: false,
        },
        Err(error) => error,
    }
}

/// Counts a passkey step for the activity charts.
fn count(state: &AppState, method: SignInMethod, ok: bool) {
    state
        .authority
        .activity()
        .record(sigil_core::activity::Event::SignIn { method, ok });
}
