//! `GET, POST /consent`: the user allows or denies a client the scopes it asked for. The
//! decision is remembered per user, client and scope set.

use super::authorize::{error_response, proceed};
use super::browser;
use super::error::{log_cause, PageError};
use super::form::OAuthForm;
use super::pages::{self, describe_scope, ConsentPage};
use super::respond;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::authorize::AuthorizeError;
use sigil_core::{ErrorCode, OAuthError};
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new().route("/consent", get(show).post(submit))
}

#[derive(Deserialize)]
struct ConsentQuery {
    req: String,
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ConsentQuery>,
) -> Result<Response, PageError> {
    let now = state.authority.now();
    let Some(pending) = browser::find_pending(&session, &query.req, now).await? else {
        return Err(PageError::SignInExpired);
    };
    // Only a session that still counts (not ended, not from before a password change).
    let Some((user, _)) = browser::current_user(&state, &session, None).await? else {
        return Ok(respond::see_other(&format!("/login?req={}", query.req)));
    };
    let user = Some(user);
    let client = state
        .authority
        .find_client(&pending.request.client_id)
        .await
        .inspect_err(log_cause)
        .ok()
        .flatten();
    let (Some(user), Some(client)) = (user, client) else {
        return Err(PageError::SignInExpired);
    };
    let csrf = browser::csrf_token(&session).await?;
    let scopes = pending
        .request
        .scopes()
        .iter()
        .map(|s| (s.to_string(), describe_scope(s)))
        .collect();
    let page = ConsentPage {
        csrf: &csrf,
        req: &query.req,
        client_name: &client.name,
        username: &user.username,
        scopes,
        document_host: client.metadata_document_host(),
        runs_locally: client.metadata_document_host().is_some()
            && client.redirects_only_to_this_computer(),
    };
    let targets: Vec<String> = pages::csp_source(&pending.request.redirect_uri)
        .into_iter()
        .collect();
    Ok(pages::render(&page, &targets)?.into_response())
}

async fn submit(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = OAuthForm::parse(&body);
    browser::check_csrf(&session, &form).await?;
    let req = form.single("req").ok().flatten().unwrap_or("").to_string();
    let now = state.authority.now();
    let Some(mut pending) = browser::find_pending(&session, &req, now).await? else {
        return Err(PageError::SignInExpired);
    };
    let Some((_, signed_in)) = browser::current_user(&state, &session, None).await? else {
        return Ok(respond::see_other(&format!("/login?req={req}")));
    };
    match form.single("decision").ok().flatten() {
        Some("allow") => {
            if let Err(error) = state
                .authority
                .record_consent(&signed_in.user_id, &pending.request)
                .await
            {
                return error_response(
                    &state,
                    AuthorizeError::Redirect {
                        redirect_uri: pending.request.redirect_uri.clone(),
                        error,
                        state: pending.request.state.clone(),
                    },
                );
            }
            pending.consent_done = true;
            browser::update_pending(&session, &req, pending.clone()).await?;
            proceed(&state, &session, &req, pending).await
        }
        _ => {
            browser::discard_pending(&session, &req).await;
            tracing::info!(client = %pending.request.client_id, "consent denied");
            error_response(
                &state,
                AuthorizeError::Redirect {
                    redirect_uri: pending.request.redirect_uri.clone(),
                    error: OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
                    state: pending.request.state.clone(),
                },
            )
        }
    }
}
