//! `/admin/resources`: the protected resources clients may name in `resource` (RFC 8707),
//! with the scopes each accepts; add (or replace) and remove, through core's `Admin` as
//! `sigil resource add|remove` do. The resource URI travels in the form body, never in the
//! path: it is a URL of its own.

use super::{done, render, render_form, Admin, Chrome, NoticeQuery};
use crate::http::error::PageError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use sigil_core::admin::AdminError;
use sigil_core::resource::Resource;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/resources", get(list).post(save))
        .route("/admin/resources/remove", post(remove))
}

/// The add form's fields as typed, to show them again after an error.
#[derive(Default)]
pub struct ResourceForm {
    pub uri: String,
    pub name: String,
    pub scopes: String,
    pub self_registered_clients: bool,
}

#[derive(Template)]
#[template(path = "admin/resources.html")]
struct ListPage {
    chrome: Chrome,
    resources: Vec<Resource>,
    form: ResourceForm,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    admin: &Admin,
    notice: Option<&str>,
    form: ResourceForm,
    error: Option<String>,
) -> Result<Response, PageError> {
    let is_invalid = error.is_some();
    let resources = state.admin.list_resources().await?;
    let page = ListPage {
        chrome: admin.chrome(notice),
        resources,
        form,
        error,
    };
    if is_invalid {
        render_form(&page, true)
    } else {
        render(&page)
    }
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let form = ResourceForm {
        self_registered_clients: true,
        ..Default::default()
    };
    page(&state, &admin, query.notice.as_deref(), form, None).await
}

async fn save(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let text = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
    let fields = ResourceForm {
        uri: text("uri"),
        name: text("name"),
        scopes: text("scopes"),
        self_registered_clients: !text("self_registered_clients").is_empty(),
    };
    let scopes: Vec<String> = fields
        .scopes
        .split_whitespace()
        .map(str::to_string)
        .collect();
    match state
        .admin
        .put_resource(
            &admin.caller(),
            &fields.uri,
            &fields.name,
            &scopes,
            fields.self_registered_clients,
        )
        .await
    {
        Ok(_) => Ok(done("/admin/resources", "resource-saved")),
        Err(AdminError::Invalid(message)) => {
            page(&state, &admin, None, fields, Some(message)).await
        }
        Err(error) => Err(error.into()),
    }
}

async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let uri = form.single("uri").ok().flatten().unwrap_or("").to_string();
    state.admin.delete_resource(&admin.caller(), &uri).await?;
    Ok(done("/admin/resources", "resource-removed"))
}
