//! `GET, POST /consent`: the user allows or denies a client the scopes it asked for. The
//! decision is remembered per user, client and scope set.

use super::authorize::{error_response, proceed};
use super::browser;
use super::form::OAuthForm;
use super::pages::{self, describe_scope, ConsentPage};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
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
) -> Response {
    let now = state.authority.now();
    let pending = match browser::find_pending(&session, &query.req, now).await {
        Ok(Some(p)) => p,
        Ok(None) => return browser::expired_request(),
        Err(response) => return response,
    };
    let signed_in = match browser::signed_in(&session).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return browser::redirect(StatusCode::SEE_OTHER, &format!("/login?req={}", query.req))
        }
        Err(response) => return response,
    };
    let user = state
        .authority
        .find_user(&signed_in.user_id)
        .await
        .ok()
        .flatten();
    let client = state
        .authority
        .find_client(&pending.request.client_id)
        .await
        .ok()
        .flatten();
    let (Some(user), Some(client)) = (user, client) else {
        return browser::expired_request();
    };
    let csrf = match browser::csrf_token(&session).await {
        Ok(token) => token,
        Err(response) => return response,
    };
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
    };
    let targets: Vec<String> = pages::csp_source(&pending.request.redirect_uri)
        .into_iter()
        .collect();
    pages::render(StatusCode::OK, &page, &targets)
}

async fn submit(State(state): State<AppState>, session: Session, body: Bytes) -> Response {
    let form = OAuthForm::parse(&body);
    if let Err(response) = browser::check_csrf(&session, &form).await {
        return response;
    }
    let req = form.single("req").ok().flatten().unwrap_or("").to_string();
    let now = state.authority.now();
    let mut pending = match browser::find_pending(&session, &req, now).await {
        Ok(Some(p)) => p,
        Ok(None) => return browser::expired_request(),
        Err(response) => return response,
    };
    let signed_in = match browser::signed_in(&session).await {
        Ok(Some(s)) => s,
        Ok(None) => return browser::redirect(StatusCode::SEE_OTHER, &format!("/login?req={req}")),
        Err(response) => return response,
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
            if let Err(response) = browser::update_pending(&session, &req, pending.clone()).await {
                return response;
            }
            proceed(&state, &session, &req, pending).await
        }
        _ => {
            let _ = browser::take_pending(&session, &req).await;
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
