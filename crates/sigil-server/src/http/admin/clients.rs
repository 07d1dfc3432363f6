//! `/admin/clients`: list, search, register, edit, rotate the secret of, and delete clients.
//! A new or rotated secret is shown once, in the response to the POST that made it.

use super::path::{filters, AdminPath, ClientId};
use super::{confirm, done, render, render_form, Admin, Chrome, Confirm, NoticeQuery};
use crate::http::error::PageError;
use crate::http::form::OAuthForm;
use crate::http::{pages, respond};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sigil_core::admin::{AdminError, ClientUsage};
use sigil_core::client::{AuthMethod, Client, ClientRegistration, GrantType};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list))
        .route("/admin/clients/new", get(new_form).post(create))
        .route("/admin/clients/{id}", get(show))
        .route("/admin/clients/{id}/edit", get(edit_form).post(update))
        .route(
            "/admin/clients/{id}/rotate-secret",
            get(confirm_rotate).post(rotate),
        )
        .route(
            "/admin/clients/{id}/delete",
            get(confirm_delete).post(delete),
        )
}

const LIST_LIMIT: i64 = 200;

pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub grants: String,
    pub first_party: bool,
    /// For a self-registered client: the address it registered from.
    pub registered_from: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/clients.html")]
struct ListPage {
    chrome: Chrome,
    query: String,
    clients: Vec<ClientRow>,
    truncated: bool,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    notice: Option<String>,
}

fn grant_names(client: &Client) -> String {
    client
        .grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let search = query.q.unwrap_or_default();
    let search = search.trim();
    let found = state
        .admin
        .list_clients((!search.is_empty()).then_some(search), LIST_LIMIT + 1)
        .await;
    let mut clients = found?;
    let truncated = clients.len() as i64 > LIST_LIMIT;
    clients.truncate(LIST_LIMIT as usize);
    let page = ListPage {
        chrome: admin.chrome(query.notice.as_deref()),
        query: search.to_string(),
        clients: clients
            .iter()
            .map(|c| ClientRow {
                id: c.id.clone(),
                name: c.name.clone(),
                kind: if c.is_confidential() {
                    "confidential"
                } else {
                    "public"
                },
                grants: grant_names(c),
                first_party: c.is_first_party,
                registered_from: c.registration.as_ref().map(|_| {
                    c.registered_from
                        .clone()
                        .unwrap_or_else(|| "an unknown address".into())
                }),
            })
            .collect(),
        truncated,
    };
    render(&page)
}

/// The form's fields as typed, to show them again after an error.
#[derive(Default)]
pub struct ClientForm {
    pub name: String,
    pub is_public: bool,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grants: Vec<(&'static str, bool)>,
    pub scopes: String,
    pub audiences: String,
    pub first_party: bool,
    pub always_issue_refresh_token: bool,
    pub access_token_ttl: String,
    pub refresh_token_ttl: String,
    pub allowed_origins: String,
    pub backchannel_logout_uri: String,
    pub backchannel_logout_session_required: bool,
    /// A confidential client that signs client assertions (RFC 7523) instead of a secret.
    pub private_key_jwt: bool,
    pub jwks_uri: String,
    pub jwks: String,
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
}

impl ClientForm {
    fn blank() -> Self {
        Self {
            grants: GrantType::ALL.iter().map(|g| (g.as_str(), false)).collect(),
            ..Default::default()
        }
    }

    fn from_client(client: &Client) -> Self {
        Self {
            name: client.name.clone(),
            is_public: !client.is_confidential(),
            redirect_uris: client.redirect_uris.join("\n"),
            post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
            grants: GrantType::ALL
                .iter()
                .map(|g| (g.as_str(), client.grant_types.contains(g)))
                .collect(),
            scopes: client.scopes.join(" "),
            audiences: client.audiences.join("\n"),
            first_party: client.is_first_party,
            always_issue_refresh_token: client.always_issue_refresh_token,
            access_token_ttl: client
                .access_token_ttl
                .map(|t| t.to_string())
                .unwrap_or_default(),
            refresh_token_ttl: client
                .refresh_token_ttl
                .map(|t| t.to_string())
                .unwrap_or_default(),
            allowed_origins: client.allowed_origins.join("\n"),
            backchannel_logout_uri: client.backchannel_logout_uri.clone().unwrap_or_default(),
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            private_key_jwt: client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt,
            jwks_uri: client.jwks_uri.clone().unwrap_or_default(),
            jwks: client.jwks.clone().unwrap_or_default(),
            require_pushed_authorization_requests: client.require_pushed_authorization_requests,
            dpop_bound_access_tokens: client.dpop_bound_access_tokens,
        }
    }

    fn from_post(form: &OAuthForm) -> Self {
        let text = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
        let checked = form.all("grant_types");
        Self {
            name: text("name"),
            is_public: text("client_type") == "public",
            private_key_jwt: text("client_type") == "private_key_jwt",
            jwks_uri: text("jwks_uri"),
            jwks: text("jwks"),
            require_pushed_authorization_requests: !text("require_pushed_authorization_requests")
                .is_empty(),
            dpop_bound_access_tokens: !text("dpop_bound_access_tokens").is_empty(),
            redirect_uris: text("redirect_uris"),
            post_logout_redirect_uris: text("post_logout_redirect_uris"),
            grants: GrantType::ALL
                .iter()
                .map(|g| (g.as_str(), checked.iter().any(|c| c == g.as_str())))
                .collect(),
            scopes: text("scopes"),
            audiences: text("audiences"),
            first_party: !text("first_party").is_empty(),
            always_issue_refresh_token: !text("always_issue_refresh_token").is_empty(),
            access_token_ttl: text("access_token_ttl"),
            refresh_token_ttl: text("refresh_token_ttl"),
            allowed_origins: text("allowed_origins"),
            backchannel_logout_uri: text("backchannel_logout_uri"),
            backchannel_logout_session_required: !text("backchannel_logout_session_required")
                .is_empty(),
        }
    }

    fn registration(&self) -> Result<ClientRegistration, String> {
        let lines = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        };
        let ttl = |text: &str, what: &str| -> Result<Option<i64>, String> {
            let text = text.trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<i64>()
                .map(Some)
                .map_err(|_| format!("the {what} lifetime must be a whole number of seconds"))
        };
        let grants: Vec<String> = self
            .grants
            .iter()
            .filter(|(_, on)| *on)
            .map(|(g, _)| g.to_string())
            .collect();
        let scopes: Vec<String> = self.scopes.split_whitespace().map(str::to_string).collect();
        Ok(ClientRegistration {
            name: self.name.clone(),
            is_public: self.is_public,
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            grant_types: (!grants.is_empty()).then_some(grants),
            scopes: (!scopes.is_empty()).then_some(scopes),
            audiences: lines(&self.audiences),
            is_first_party: self.first_party,
            always_issue_refresh_token: self.always_issue_refresh_token,
            access_token_ttl: ttl(&self.access_token_ttl, "access-token")?,
            refresh_token_ttl: ttl(&self.refresh_token_ttl, "refresh-token")?,
            allowed_origins: lines(&self.allowed_origins),
            backchannel_logout_uri: Some(self.backchannel_logout_uri.trim().to_string())
                .filter(|uri| !uri.is_empty()),
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            token_endpoint_auth_method: self.private_key_jwt.then_some(AuthMethod::PrivateKeyJwt),
            jwks: Some(self.jwks.trim().to_string()).filter(|j| !j.is_empty()),
            jwks_uri: Some(self.jwks_uri.trim().to_string()).filter(|u| !u.is_empty()),
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
        })
    }
}

#[derive(Template)]
#[template(path = "admin/client_form.html")]
struct FormPage {
    chrome: Chrome,
    heading: String,
    action: String,
    submit: &'static str,
    cancel: String,
    is_new: bool,
    form: ClientForm,
    error: Option<String>,
}

fn new_page(admin: &Admin, form: ClientForm, error: Option<String>) -> Result<Response, PageError> {
    let is_invalid = error.is_some();
    render_form(
        &FormPage {
            chrome: admin.chrome(None),
            heading: "Register a client".into(),
            action: "/admin/clients/new".into(),
            submit: "Register client",
            cancel: "/admin/clients".into(),
            is_new: true,
            form,
            error,
        },
        is_invalid,
    )
}

async fn new_form(admin: Admin) -> Result<Response, PageError> {
    new_page(&admin, ClientForm::blank(), None)
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let fields = ClientForm::from_post(&form);
    let registration = match fields.registration() {
        Ok(registration) => registration,
        Err(message) => return new_page(&admin, fields, Some(message)),
    };
    match state
        .admin
        .create_client(&admin.caller(), registration)
        .await
    {
        Ok((client, secret)) => {
            client_page(
                &state,
                &admin,
                &client,
                secret.as_ref().map(|s| s.expose().to_string()),
                Some("saved"),
                true,
            )
            .await
        }
        Err(AdminError::Invalid(message)) => new_page(&admin, fields, Some(message)),
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "admin/client.html")]
struct ClientPage {
    chrome: Chrome,
    client: Client,
    grants: String,
    secret: Option<String>,
    access_ttl: String,
    refresh_ttl: String,
    config: String,
    example_authorize: Option<String>,
    /// Live refresh families and consents: the "Usage" panel (`#client-usage`), where
    /// later facts are appended.
    usage: ClientUsage,
}

async fn client_page(
    state: &AppState,
    admin: &Admin,
    client: &Client,
    secret: Option<String>,
    notice: Option<&str>,
    is_created: bool,
) -> Result<Response, PageError> {
    let usage = state.admin.client_usage(&client.id).await?;
    let config = state.authority.config();
    let issuer = &config.issuer;
    let mut text = format!(
        "issuer:         {issuer}\ndiscovery:      {issuer}/.well-known/openid-configuration\nclient_id:      {}\n",
        client.id
    );
    if client.is_confidential() {
        text.push_str(if secret.is_some() {
            "client_secret:  (shown above, once)\n"
        } else {
            "client_secret:  (shown once at registration; rotate it if lost)\n"
        });
        text.push_str("token auth:     client_secret_basic or client_secret_post\n");
    } else {
        text.push_str("token auth:     none (public client: PKCE S256)\n");
    }
    if let Some(uri) = client.redirect_uris.first() {
        text.push_str(&format!("redirect_uri:   {uri}\n"));
    }
    text.push_str(&format!("scopes:         {}\n", client.scopes.join(" ")));
    let example_authorize = client
        .redirect_uris
        .first()
        .filter(|_| client.allows_grant(GrantType::AuthorizationCode))
        .map(|uri| {
            let scope: Vec<&str> = client
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| ["openid", "profile", "email", "offline_access"].contains(s))
                .collect();
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("response_type", "code")
                .append_pair("client_id", &client.id)
                .append_pair("redirect_uri", uri)
                .append_pair("scope", &scope.join(" "))
                .append_pair("state", "STATE")
                .append_pair("nonce", "NONCE")
                .append_pair("code_challenge", "BASE64URL_SHA256_OF_VERIFIER")
                .append_pair("code_challenge_method", "S256")
                .finish();
            format!("{issuer}/authorize?{query}")
        });
    let lifetime = |ttl: Option<i64>, default: i64| match ttl {
        Some(t) => format!("{t} s"),
        None => format!("{default} s (server default)"),
    };
    let page = pages::render(
        &ClientPage {
            chrome: admin.chrome(notice),
            grants: grant_names(client),
            secret,
            access_ttl: lifetime(client.access_token_ttl, config.access_token_ttl),
            refresh_ttl: lifetime(
                client.refresh_token_ttl,
                if client.is_confidential() {
                    config.refresh_token_ttl
                } else {
                    config.public_client_refresh_token_ttl
                },
            ),
            config: text,
            example_authorize,
            usage,
            client: client.clone(),
        },
        &[],
    )?;
    Ok(if is_created {
        respond::created(page)
    } else {
        page.into_response()
    })
}

async fn find(state: &AppState, id: &str) -> Result<Client, AdminError> {
    state
        .admin
        .find_client(id)
        .await?
        .ok_or(AdminError::NotFound)
}

async fn show(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let client = find(&state, id.as_str()).await?;
    client_page(
        &state,
        &admin,
        &client,
        None,
        query.notice.as_deref(),
        false,
    )
    .await
}

fn edit_page(
    admin: &Admin,
    id: &ClientId,
    form: ClientForm,
    error: Option<String>,
) -> Result<Response, PageError> {
    let is_invalid = error.is_some();
    render_form(
        &FormPage {
            chrome: admin.chrome(None),
            heading: format!("Edit {}", form.name),
            action: format!("/admin/clients/{id}/edit"),
            submit: "Save changes",
            cancel: format!("/admin/clients/{id}"),
            is_new: false,
            form,
            error,
        },
        is_invalid,
    )
}

async fn edit_form(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
) -> Result<Response, PageError> {
    let client = find(&state, id.as_str()).await?;
    edit_page(&admin, &id, ClientForm::from_client(&client), None)
}

async fn update(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let existing = find(&state, id.as_str()).await?;
    let mut fields = ClientForm::from_post(&form);
    fields.is_public = !existing.is_confidential();
    let registration = match fields.registration() {
        Ok(registration) => registration,
        Err(message) => return edit_page(&admin, &id, fields, Some(message)),
    };
    match state
        .admin
        .update_client(&admin.caller(), id.as_str(), registration)
        .await
    {
        Ok(_) => Ok(done(&format!("/admin/clients/{id}"), "saved")),
        Err(AdminError::Invalid(message)) => edit_page(&admin, &id, fields, Some(message)),
        Err(error) => Err(error.into()),
    }
}

async fn confirm_rotate(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
) -> Result<Response, PageError> {
    let client = find(&state, id.as_str()).await?;
    confirm(
        &admin,
        Confirm {
            title: format!("Rotate the secret of {}?", client.name),
            message: "A new secret is generated and shown once. The current secret stops working at once: update the application right after.",
            action: format!("/admin/clients/{id}/rotate-secret"),
            button: "Rotate secret",
            cancel: format!("/admin/clients/{id}"),
            is_danger: true,
        },
    )
}

async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    match state
        .admin
        .rotate_client_secret(&admin.caller(), id.as_str())
        .await
    {
        Ok((client, secret)) => {
            client_page(
                &state,
                &admin,
                &client,
                Some(secret.expose().to_string()),
                Some("saved"),
                false,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
) -> Result<Response, PageError> {
    let client = find(&state, id.as_str()).await?;
    confirm(
        &admin,
        Confirm {
            title: format!("Delete {}?", client.name),
            message: "The client, its refresh tokens and its users' consents are deleted. Its access tokens stop passing introspection at once and expire on their own. This cannot be undone.",
            action: format!("/admin/clients/{id}/delete"),
            button: "Delete client",
            cancel: format!("/admin/clients/{id}"),
            is_danger: true,
        },
    )
}

async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ClientId>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    match state
        .admin
        .delete_client(&admin.caller(), id.as_str())
        .await
    {
        Ok(()) => Ok(done("/admin/clients", "client-deleted")),
        Err(error) => Err(error.into()),
    }
}
