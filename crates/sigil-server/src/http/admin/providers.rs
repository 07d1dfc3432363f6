//! `/admin/providers`: list, add and remove the upstream identity providers people sign in
//! through ("Sign in with …"). The same core operations as `sigil provider add|remove`,
//! which seal the client secret and write the audit log. The secret is never shown back:
//! not after an error, not on the list.

use super::path::{filters, AdminPath, ProviderId};
use super::{confirm, done, render, render_form, Admin, Chrome, Confirm, NoticeQuery};
use crate::http::error::PageError;
use crate::http::form::OAuthForm;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use sigil_core::admin::AdminError;
use sigil_core::federation::{FederationError, NewProvider, Provider, ProviderKind};
use sigil_core::secret::Secret;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/providers", get(list))
        .route("/admin/providers/new", get(new_form).post(create))
        .route(
            "/admin/providers/{id}/remove",
            get(confirm_remove).post(remove),
        )
}

/// What the console says when core refuses something other than the form's input.
fn refused(error: FederationError) -> PageError {
    match error {
        FederationError::NotFound => AdminError::NotFound.into(),
        FederationError::Invalid(message) => AdminError::Invalid(message).into(),
        FederationError::Store(error) => PageError::Unavailable {
            event: "admin: identity provider action failed",
            error,
        },
        // Sealing the client secret failed: nothing the admin typed can fix that.
        other => {
            tracing::error!(error = %other, "admin: identity provider action failed");
            PageError::Federation {
                failure: crate::http::error::FederationFailure::NotStored,
                back: "/admin/providers".into(),
            }
        }
    }
}

fn kind_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Oidc => "OpenID Connect",
        ProviderKind::OAuth2 => "OAuth 2.0",
    }
}

pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub issuer: String,
    pub client_id: String,
    pub create_users: bool,
    pub trust_email: bool,
    pub allow_http: bool,
    pub redirect_uri: String,
}

impl ProviderRow {
    fn new(provider: &Provider, issuer: &str) -> Self {
        Self {
            id: provider.id.clone(),
            name: provider.name.clone(),
            kind: kind_name(provider.kind),
            issuer: provider.issuer.clone(),
            client_id: provider.client_id.clone(),
            create_users: provider.create_users,
            trust_email: provider.trust_email,
            allow_http: provider.allow_http,
            redirect_uri: provider.redirect_uri(issuer),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ListPage {
    chrome: Chrome,
    providers: Vec<ProviderRow>,
}

async fn list(
    State(state): State<AppState>,
    admin: Admin,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, PageError> {
    let providers = state.federation.providers().await.map_err(refused)?;
    let issuer = &state.authority.config().issuer;
    render(&ListPage {
        chrome: admin.chrome(query.notice.as_deref()),
        providers: providers
            .iter()
            .map(|p| ProviderRow::new(p, issuer))
            .collect(),
    })
}

/// The form's fields as typed, to show them again after an error. The client secret is
/// not among them: it is taken from the post once and never written back into a page.
pub struct ProviderForm {
    pub id: String,
    pub name: String,
    /// `oidc` or `oauth2`, as the radio buttons post it.
    pub kind: String,
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    pub create_users: bool,
    pub trust_email: bool,
    pub allow_http: bool,
    pub authorize_url: String,
    pub token_url: String,
    pub userinfo_url: String,
    pub subject_claim: String,
}

impl ProviderForm {
    fn blank() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            kind: ProviderKind::Oidc.as_str().to_string(),
            issuer: String::new(),
            client_id: String::new(),
            scopes: String::new(),
            create_users: false,
            trust_email: false,
            allow_http: false,
            authorize_url: String::new(),
            token_url: String::new(),
            userinfo_url: String::new(),
            subject_claim: String::new(),
        }
    }

    fn from_post(form: &OAuthForm) -> Self {
        let text = |name: &str| form.single(name).ok().flatten().unwrap_or("").to_string();
        let checked = |name: &str| !text(name).is_empty();
        Self {
            id: text("id"),
            name: text("name"),
            kind: text("kind"),
            issuer: text("issuer"),
            client_id: text("client_id"),
            scopes: text("scopes"),
            create_users: checked("create_users"),
            trust_email: checked("trust_email"),
            allow_http: checked("allow_http"),
            authorize_url: text("authorize_url"),
            token_url: text("token_url"),
            userinfo_url: text("userinfo_url"),
            subject_claim: text("subject_claim"),
        }
    }

    fn is_oauth2(&self) -> bool {
        self.kind == ProviderKind::OAuth2.as_str()
    }

    /// What core is asked to add. Empty optional fields mean "the default", as leaving an
    /// option out of `sigil provider add` does; core checks the rest.
    fn new_provider(&self) -> Result<NewProvider, String> {
        let kind = ProviderKind::parse(&self.kind)
            .ok_or("choose the kind of provider: OpenID Connect or OAuth 2.0")?;
        let optional = |text: &str| {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_string())
        };
        Ok(NewProvider {
            id: self.id.trim().to_string(),
            name: self.name.clone(),
            kind,
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            scopes: optional(&self.scopes),
            authorize_url: optional(&self.authorize_url),
            token_url: optional(&self.token_url),
            userinfo_url: optional(&self.userinfo_url),
            subject_claim: optional(&self.subject_claim),
            create_users: self.create_users,
            trust_email: self.trust_email,
            allow_http: self.allow_http,
        })
    }
}

#[derive(Template)]
#[template(path = "admin/provider_form.html")]
struct FormPage {
    chrome: Chrome,
    form: ProviderForm,
    /// `{issuer}/login/provider/`: the start of the redirect URI to register.
    callback_base: String,
    error: Option<String>,
}

fn form_page(
    state: &AppState,
    admin: &Admin,
    form: ProviderForm,
    error: Option<String>,
) -> Result<Response, PageError> {
    let is_invalid = error.is_some();
    let issuer = state.authority.config().issuer.trim_end_matches('/');
    render_form(
        &FormPage {
            chrome: admin.chrome(None),
            form,
            callback_base: format!("{issuer}/login/provider/"),
            error,
        },
        is_invalid,
    )
}

async fn new_form(State(state): State<AppState>, admin: Admin) -> Result<Response, PageError> {
    form_page(&state, &admin, ProviderForm::blank(), None)
}

async fn create(
    State(state): State<AppState>,
    admin: Admin,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = admin.form(&body).await?;
    let fields = ProviderForm::from_post(&form);
    let new = match fields.new_provider() {
        Ok(new) => new,
        Err(message) => return form_page(&state, &admin, fields, Some(message)),
    };
    let secret = Secret::new(form.single("client_secret").ok().flatten().unwrap_or(""));
    match state
        .federation
        .add_provider(&admin.caller(), new, &secret)
        .await
    {
        Ok(_) => Ok(done("/admin/providers", "provider-added")),
        Err(FederationError::Invalid(message)) => form_page(&state, &admin, fields, Some(message)),
        Err(error) => Err(refused(error)),
    }
}

async fn find(state: &AppState, id: &ProviderId) -> Result<Provider, PageError> {
    state
        .federation
        .provider(id.as_str())
        .await
        .map_err(refused)?
        .ok_or(PageError::Admin(AdminError::NotFound))
}

async fn confirm_remove(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ProviderId>,
) -> Result<Response, PageError> {
    let provider = find(&state, &id).await?;
    confirm(
        &admin,
        Confirm {
            title: format!("Remove {}?", provider.name),
            message: "Nobody can sign in through this provider any more, and it leaves the sign-in page. The accounts linked through it keep their links: adding a provider with the same issuer again signs them in again.",
            action: format!("/admin/providers/{id}/remove"),
            button: "Remove provider",
            cancel: "/admin/providers".into(),
            is_danger: true,
        },
    )
}

async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    AdminPath(id): AdminPath<ProviderId>,
    body: Bytes,
) -> Result<Response, PageError> {
    admin.form(&body).await?;
    match state
        .federation
        .remove_provider(&admin.caller(), id.as_str())
        .await
    {
        Ok(()) => Ok(done("/admin/providers", "provider-removed")),
        Err(error) => Err(refused(error)),
    }
}
