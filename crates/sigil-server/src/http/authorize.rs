//! `GET, POST /authorize` (RFC 6749 §4.1.1, OIDC Core §3.1.2) and `GET /authorize/resume`,
//! where the browser comes back after signing in or consenting.

use super::browser::{self, Pending};
use super::error::PageError;
use super::respond;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::authorize::{AuthorizeError, AuthorizeParams, Decision};
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize_get).post(authorize_post))
        .route("/authorize/resume", get(resume))
}

async fn authorize_get(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    authorize(state, session, query.unwrap_or_default().as_bytes()).await
}

async fn authorize_post(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    authorize(state, session, &body).await
}

async fn authorize(state: AppState, session: Session, raw: &[u8]) -> Result<Response, PageError> {
    let (mut values, mut repeated) = browser::parse_params(raw);
    // RFC 8707 §2: `resource` may be given several times.
    repeated.retain(|name| name != "resource");
    let resources = browser::all_values(raw, "resource");
    let mut take = |name: &str| values.remove(name);
    let params = AuthorizeParams {
        client_id: take("client_id"),
        redirect_uri: take("redirect_uri"),
        response_type: take("response_type"),
        response_mode: take("response_mode"),
        scope: take("scope"),
        state: take("state"),
        nonce: take("nonce"),
        code_challenge: take("code_challenge"),
        code_challenge_method: take("code_challenge_method"),
        prompt: take("prompt"),
        max_age: take("max_age"),
        acr_values: take("acr_values"),
        login_hint: take("login_hint"),
        id_token_hint: take("id_token_hint"),
        dpop_jkt: take("dpop_jkt"),
        request: take("request"),
        request_uri: take("request_uri"),
        resources,
        repeated,
    };
    let request = match state.authority.validate_authorization(params).await {
        Ok((_, request)) => request,
        Err(error) => return error_response(&state, error),
    };
    let now = state.authority.now();
    let pending = Pending {
        request,
        login_done: false,
        consent_done: false,
        created_at: now,
    };
    let id = browser::save_pending(&session, pending.clone(), now).await?;
    proceed(&state, &session, &id, pending).await
}

#[derive(Deserialize)]
struct ResumeQuery {
    req: String,
}

async fn resume(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ResumeQuery>,
) -> Result<Response, PageError> {
    match browser::find_pending(&session, &query.req, state.authority.now()).await? {
        Some(pending) => proceed(&state, &session, &query.req, pending).await,
        None => Err(PageError::SignInExpired),
    }
}

/// Sends the browser to the login page, the consent page, or back to the client with a code.
pub async fn proceed(
    state: &AppState,
    session: &Session,
    id: &str,
    pending: Pending,
) -> Result<Response, PageError> {
    let signed_in = browser::signed_in(session).await?;
    let decision = state
        .authority
        .decide(
            &pending.request,
            signed_in.as_ref(),
            pending.login_done,
            pending.consent_done,
        )
        .await;
    match decision {
        Ok(Decision::Login) => Ok(respond::see_other(&format!("/login?req={id}"))),
        Ok(Decision::ChangePassword) => {
            Ok(respond::see_other(&format!("/account/password?req={id}")))
        }
        Ok(Decision::Consent) => Ok(respond::see_other(&format!("/consent?req={id}"))),
        Ok(Decision::SecondFactor { passkey_only }) => Ok(respond::see_other(&format!(
            "/login/second-factor?req={id}{}",
            if passkey_only { "&passkey=1" } else { "" }
        ))),
        Ok(Decision::EnrollSecondFactor { passkey }) => Ok(respond::see_other(&format!(
            "/account/security?req={id}{}",
            if passkey { "&passkey=1" } else { "" }
        ))),
        Ok(Decision::Issue { user, auth }) => {
            browser::take_pending(session, id).await?;
            match state
                .authority
                .issue_code(&pending.request, &user, &auth)
                .await
            {
                Ok(code) => {
                    tracing::info!(client = %pending.request.client_id, "authorization code issued");
                    let issuer = &state.authority.config().issuer;
                    let mut params = vec![("code", code.expose()), ("iss", issuer.as_str())];
                    if let Some(s) = pending.request.state.as_deref() {
                        params.push(("state", s));
                    }
                    browser::redirect_to_client(&pending.request.redirect_uri, &params)
                }
                Err(error) => error_response(
                    state,
                    AuthorizeError::Redirect {
                        redirect_uri: pending.request.redirect_uri.clone(),
                        error,
                        state: pending.request.state.clone(),
                    },
                ),
            }
        }
        Err(error) => {
            browser::discard_pending(session, id).await;
            error_response(state, error)
        }
    }
}

/// RFC 6749 §4.1.2.1: a fatal error is a page; every other error goes back to the
/// registered redirect URI with `error`, `error_description`, `state` and (RFC 9207) `iss`.
pub fn error_response(state: &AppState, error: AuthorizeError) -> Result<Response, PageError> {
    match error {
        AuthorizeError::Fatal(text) => Err(PageError::AuthorizationRefused(text)),
        AuthorizeError::Unchecked(error) => Err(PageError::AuthorizationUnchecked(error)),
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            state: client_state,
        } => {
            super::error::log_cause(&error);
            tracing::info!(error = error.code.as_str(), "authorization request refused");
            let issuer = state.authority.config().issuer.clone();
            let description = super::error::sanitize_description(&error.description);
            let mut params = vec![
                ("error", error.code.as_str()),
                ("error_description", description.as_str()),
                ("iss", issuer.as_str()),
            ];
            if let Some(s) = client_state.as_deref() {
                params.push(("state", s));
            }
            browser::redirect_to_client(&redirect_uri, &params)
        }
    }
}
