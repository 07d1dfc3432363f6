//! `/admin/password`: an admin changes their own password. Required before anything else
//! when the password was set for one-time use (the bootstrap admin, or after a reset).

use super::{done, render_form, Admin, Chrome};
use crate::http::browser;
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sigil_core::accounts::AccountError;
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

/// The form; shown again with `error` (422) when the change was refused.
fn page(admin: &Admin, error: Option<String>) -> Result<Response, PageError> {
    let is_invalid = error.is_some();
    let page = PasswordPage {
        chrome: admin.chrome(None),
        forced: admin.user.must_change_password,
        error,
    };
    render_form(&page, is_invalid)
}

async fn show(admin: Admin) -> Result<Response, PageError> {
    page(&admin, None)
}

async fn change(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let field = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let new_password = field("new_password");
    if new_password != field("repeat_password") {
        return page(&admin, Some("the two new passwords differ".into()));
    }
    let result = state
        .accounts
        .change_password(
            &admin.caller(),
            &admin.user.id,
            Secret::new(field("current_password")),
            Secret::new(new_password),
        )
        .await;
    match result {
        Ok(user) => {
            // Every other session ended; this one continues as a new one.
            let methods =
                browser::methods_with_password(&admin.session, &user.id, state.authority.now())
                    .await?;
            browser::start_session(
                &state,
                &admin.session,
                &user,
                admin.address.clone(),
                &admin.headers,
                methods,
            )
            .await?;
            Ok(done("/admin", "password-changed"))
        }
        Err(AccountError::Fields(fields)) => {
            page(&admin, Some(sigil_core::accounts::field_messages(&fields)))
        }
        Err(AccountError::WrongPassword) => {
            page(&admin, Some("the current password is not correct".into()))
        }
        Err(error) => Err(PageError::Account(error)),
    }
}
