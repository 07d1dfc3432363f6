//! `/admin/password`: an admin changes their own password. Required before anything else
//! when the password was set for one-time use (the bootstrap admin, or after a reset).

use super::{done, failure, render, Admin, Chrome};
use crate::http::browser;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sigil_core::admin::AdminError;
use sigil_core::authorize::SignedIn;
use sigil_core::secret::Secret;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/password", get(show).post(change))
}

#[derive(Template)]
#[template(path = "admin/password.html")]
struct PasswordPage {
    chrome: Chrome,
    forced: bool,
    error: Option<String>,
}

fn page(admin: &Admin, error: Option<String>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render(
        status,
        &PasswordPage {
            chrome: admin.chrome(None),
            forced: admin.user.must_change_password,
            error,
        },
    )
}

async fn show(admin: Admin) -> Response {
    page(&admin, None)
}

async fn change(State(state): State<AppState>, admin: Admin, body: Bytes) -> Response {
    let form = match admin.form(&body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let field = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let new_password = field("new_password");
    if new_password != field("repeat_password") {
        return page(&admin, Some("the two new passwords differ".into()));
    }
    let result = state
        .admin
        .change_own_password(
            &admin.caller(),
            &admin.user.id,
            Secret::new(field("current_password")),
            Secret::new(new_password),
        )
        .await;
    match result {
        Ok(user) => {
            // Every other session ended; this one continues under a new id.
            let signed_in = SignedIn {
                user_id: user.id.clone(),
                auth_time: state.authority.now(),
                session_epoch: user.session_epoch,
            };
            if let Err(response) = browser::sign_in(&admin.session, signed_in).await {
                return response;
            }
            done("/admin", "password-changed")
        }
        Err(AdminError::Invalid(message)) => page(&admin, Some(message)),
        Err(error) => failure(error),
    }
}
