//! `/admin/keys`: the signing keys with their state, and the rotate and prune actions (the
//! same life cycle as `sigil keys`). The running server reloads its key ring at once;
//! replicas sharing the directory follow at their next poll.

use super::{confirm, done, format_time, render, Admin, Chrome, Confirm, NoticeQuery};
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sigil_core::admin::AdminError;
use sigil_core::keys::KeyState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list))
        .route("/admin/keys/rotate", get(confirm_rotate).post(rotate))
        .route("/admin/keys/prune", get(confirm_prune).post(prune))
}

pub struct KeyRow {
    pub kid: String,
    pub state: &'static str,
    pub created: String,
    pub activates: String,
    pub retired: String,
    pub prunable: bool,
}

#[derive(Template)]
#[template(path = "admin/keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    activation: String,
}

/// The longest lifetime a token signed by a key can have: a retired key is needed that
/// long after it stopped signing.
async fn max_token_ttl(state: &AppState) -> Result<i64, AdminError> {
    let config = state.authority.config();
    let client_max = state.admin.longest_client_access_token_ttl().await?;
    Ok(sigil_core::keys::longest_token_ttl(
        config.access_token_ttl,
        config.id_token_ttl,
        client_max,
    ))
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let max_ttl = max_token_ttl(&state).await?;
    let now = state.authority.now();
    let set = state.authority.keys().current();
    let prunable = set.prunable(now, max_ttl);
    let keys = set
        .states(now)
        .into_iter()
        .rev()
        .map(|(key, key_state)| KeyRow {
            kid: key.kid().to_string(),
            state: key_state.name(),
            created: format_time(key.created_at()),
            activates: format_time(key.activates_at()),
            retired: match key_state {
                KeyState::Retired { retired_at } => format_time(retired_at),
                _ => "-".into(),
            },
            prunable: prunable.iter().any(|k| k == key.kid()),
        })
        .collect();
    render(&KeysPage {
        chrome: admin.chrome(query.notice.as_deref()),
        keys,
        activation: humantime::format_duration(std::time::Duration::from_secs(state.jwks_max_age))
            .to_string(),
    })
}

async fn confirm_rotate(admin: Admin) -> Result<Response, PageError> {
    confirm(
        &admin,
        Confirm {
            title: "Rotate the signing key?".into(),
            message: "A new key is published now and becomes the signing key once the JWKS cache lifetime has passed. The current key keeps being published until its tokens have expired.",
            action: "/admin/keys/rotate".into(),
            button: "Rotate",
            cancel: "/admin/keys".into(),
            is_danger: false,
        },
    )
}

async fn confirm_prune(admin: Admin) -> Result<Response, PageError> {
    confirm(
        &admin,
        Confirm {
            title: "Prune retired keys?".into(),
            message: "Retired keys whose every token has expired are deleted from the key directory and from the JWKS.",
            action: "/admin/keys/prune".into(),
            button: "Prune",
            cancel: "/admin/keys".into(),
            is_danger: false,
        },
    )
}

/// Reloads the key ring from the directory right away.
async fn reload(state: &AppState) -> Result<(), AdminError> {
    let dir = state.keys_dir.clone();
    let set = tokio::task::spawn_blocking(move || dir.load())
        .await
        .map_err(|e| AdminError::Invalid(e.to_string()))?
        .map_err(|e| AdminError::Invalid(e.to_string()))?;
    state.authority.keys().replace(set);
    Ok(())
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    let dir = state.keys_dir.clone();
    let now = state.authority.now();
    let delay = state.jwks_max_age as i64;
    let rotated =
        tokio::task::spawn_blocking(move || crate::keyfiles::rotate(&dir, now, delay, false)).await;
    let (kid, activates_at) = match rotated {
        Ok(Ok(rotated)) => rotated,
        Ok(Err(error)) => return Err(AdminError::Invalid(error.to_string()).into()),
        Err(error) => return Err(AdminError::Invalid(error.to_string()).into()),
    };
    reload(&state).await?;
    state
        .admin
        .record_key_action(
            &admin.caller(),
            "key.rotated",
            &kid,
            &format!("published; signs from {}", format_time(activates_at)),
        )
        .await;
    Ok(done("/admin/keys", "rotated"))
}

async fn prune(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    let max_ttl = max_token_ttl(&state).await?;
    let dir = state.keys_dir.clone();
    let now = state.authority.now();
    let pruned =
        tokio::task::spawn_blocking(move || crate::keyfiles::prune(&dir, now, max_ttl)).await;
    let pruned = match pruned {
        Ok(Ok(pruned)) => pruned,
        Ok(Err(error)) => return Err(AdminError::Invalid(error.to_string()).into()),
        Err(error) => return Err(AdminError::Invalid(error.to_string()).into()),
    };
    reload(&state).await?;
    for kid in &pruned {
        state
            .admin
            .record_key_action(&admin.caller(), "key.pruned", kid, "removed from the JWKS")
            .await;
    }
    Ok(done(
        "/admin/keys",
        if pruned.is_empty() {
            "nothing-pruned"
        } else {
            "pruned"
        },
    ))
}
