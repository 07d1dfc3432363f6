//! Adding a passkey on `/account/security`: options for a discoverable credential of the
//! signed-in user (their passkeys excluded), then the credential verified and handed to
//! `SecondFactors::add_passkey` (audited, mailed; the first factor comes with recovery
//! codes, shown once). An account that has a factor needs a session that proved one.

use super::{begin, credential_field, options_response, take};
use crate::http::account::request_id;
use crate::http::account_security::{
    after_change, me, needs_step_up, overview_page, sign_in_first, step_up,
};
use crate::http::browser;
use crate::http::caller::PeerAddress;
use crate::http::error::PageError;
use crate::http::form::OAuthForm;
use crate::http::login::local_next;
use crate::passkeys::{CeremonyState, PasskeyError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use sigil_core::factors::{validate_name, FactorError};
use sigil_core::store::{Factor, FactorKind};
use tower_sessions::Session;

/// `POST /account/security/passkey/options`: the creation options, as JSON.
pub(super) async fn options(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten());
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    let summary = state.factors.summary(&me.user.id).await?;
    if needs_step_up(&me, &summary) {
        return Ok(step_up(req));
    }
    let passkeys: Vec<Factor> = summary
        .factors
        .into_iter()
        .filter(|f| f.kind == FactorKind::Passkey)
        .collect();
    let (options, ceremony) = state.passkeys.start_registration(&me.user, &passkeys)?;
    begin(
        &session,
        ceremony,
        Some(me.user.id.clone()),
        state.authority.now(),
    )
    .await?;
    Ok(options_response(options))
}

/// `POST /account/security/passkey` (`name`, `credential`): the new passkey is verified
/// and added; the session notes it as proven.
pub(super) async fn finish(
    State(state): State<AppState>,
    session: Session,
    peer: PeerAddress,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = request_id(form.single("req").ok().flatten());
    let next = local_next(form.single("next").ok().flatten());
    let name = form.single("name").ok().flatten().unwrap_or("");
    let Some(me) = me(&state, &session, &peer).await? else {
        return Ok(sign_in_first(req));
    };
    if needs_step_up(&me, &state.factors.summary(&me.user.id).await?) {
        return Ok(step_up(req));
    }
    let (state_ref, session_ref, me_ref) = (&state, &session, &me);
    let refused = |message: String| async move {
        Ok::<_, PageError>(PageError::InvalidForm(
            overview_page(
                state_ref,
                session_ref,
                me_ref,
                (req, next),
                None,
                Some(&message),
            )
            .await?,
        ))
    };
    if let Err(FactorError::InvalidName(why)) = validate_name(name) {
        return Err(refused(format!("The name is not possible: {why}.")).await?);
    }
    let now = state.authority.now();
    let registration = match take(&session, Some(&me.user.id), now).await? {
        CeremonyState::Registration(registration) => registration,
        _ => return Err(PasskeyError::Expired.into()),
    };
    let registered = match state
        .passkeys
        .finish_registration(&registration, credential_field(&form))
    {
        Ok(registered) => registered,
        Err(PasskeyError::Malformed) => {
            return Err(refused("Your browser did not send a passkey. Try again.".into()).await?)
        }
        Err(PasskeyError::Refused(error)) => {
            tracing::info!(user = %me.user.id, %error, "passkey registration refused");
            return Err(refused("That passkey was not accepted. Try again.".into()).await?);
        }
        Err(error) => return Err(error.into()),
    };
    if state
        .factors
        .find_passkey(&registered.credential_id)
        .await?
        .is_some()
    {
        return Err(refused("This passkey is registered already.".into()).await?);
    }
    let codes = match state
        .factors
        .add_passkey(
            &me.caller,
            &me.user,
            name,
            &registered.credential_id,
            registered.data,
        )
        .await
    {
        Ok(codes) => codes,
        Err(FactorError::InvalidName(why)) => {
            return Err(refused(format!("The name is not possible: {why}.")).await?)
        }
        Err(error) => return Err(error.into()),
    };
    tracing::info!(user = %me.user.id, "passkey added");
    // The ceremony just verified the user on the authenticator: the session has proven it.
    let mut signed_in = me.signed_in.clone();
    signed_in.add_method(registered.method, now);
    browser::sign_in(&session, signed_in).await?;
    after_change(&state, &session, (req, next), codes, "added").await
}
