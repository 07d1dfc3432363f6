//! `GET, POST /logout` (OIDC RP-Initiated Logout 1.0) and `POST /logout/confirm`. A request
//! tied to the signed-in user by `id_token_hint` ends the session at once; any other asks
//! the user first, so that a third-party page cannot sign people out.

use super::browser;
use super::error::PageError;
use super::form::OAuthForm;
use super::pages::{self, LogoutPage};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sigil_core::logout::{LogoutParams, LogoutPlan};
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/logout", get(logout_get).post(logout_post))
        .route("/logout/confirm", post(confirm))
}

fn params(raw: &[u8]) -> LogoutParams {
    let (mut values, _) = browser::parse_params(raw);
    LogoutParams {
        id_token_hint: values.remove("id_token_hint"),
        client_id: values.remove("client_id"),
        post_logout_redirect_uri: values.remove("post_logout_redirect_uri"),
        state: values.remove("state"),
    }
}

async fn logout_get(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    logout(state, session, params(query.unwrap_or_default().as_bytes())).await
}

async fn logout_post(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    logout(state, session, params(&body)).await
}

async fn logout(
    state: AppState,
    session: Session,
    params: LogoutParams,
) -> Result<Response, PageError> {
    let plan = state
        .authority
        .validate_logout(params)
        .await
        .map_err(PageError::LogoutRefused)?;
    let signed_in = browser::signed_in(&session).await?;
    let tied_to_session = match (&signed_in, &plan.hint_subject) {
        (None, _) => true,
        (Some(user), Some(sub)) => user.user_id == *sub,
        (Some(_), None) => false,
    };
    if tied_to_session {
        browser::sign_out(&state, &session).await?;
        return finish(&plan);
    }
    let csrf = browser::csrf_token(&session).await?;
    let page = LogoutPage {
        csrf: &csrf,
        client_name: plan.client_name.as_deref(),
        client_id: plan.client_id.as_deref(),
        post_logout_redirect_uri: plan.redirect_uri.as_deref(),
        state: plan.state.as_deref(),
    };
    let targets: Vec<String> = plan
        .redirect_uri
        .as_deref()
        .and_then(pages::csp_source)
        .into_iter()
        .collect();
    Ok(pages::render(&page, &targets)?.into_response())
}

async fn confirm(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let plan = state
        .authority
        .validate_logout(params(&body))
        .await
        .map_err(PageError::LogoutRefused)?;
    browser::sign_out(&state, &session).await?;
    finish(&plan)
}

fn finish(plan: &LogoutPlan) -> Result<Response, PageError> {
    tracing::info!("signed out");
    match &plan.redirect_uri {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = plan.state.as_deref() {
                params.push(("state", s));
            }
            browser::redirect_to_client(uri, &params)
        }
        None => Ok(
            pages::message("Signed out", "You have signed out of Sigil.", false)?.into_response(),
        ),
    }
}
