//! `GET /openapi.json`: the OpenAPI 3.1 document of the JSON endpoints, generated from the
//! handlers' `#[utoipa::path]` annotations and the response types, built once per router.

use crate::state::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An RFC 6749 §5.2 error.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `temporarily_unavailable`.
    error: String,
    error_description: String,
}

/// The form parameters of the token, revocation and introspection endpoints. Which are
/// required depends on `grant_type` (token) or the endpoint; see docs/api.md.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `authorization_code`, `refresh_token`, `password` or `client_credentials` (token).
    grant_type: Option<String>,
    /// Authorization code grant.
    code: Option<String>,
    /// Authorization code grant: required when the authorization request had one.
    redirect_uri: Option<String>,
    /// Authorization code grant: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// Refresh token grant.
    refresh_token: Option<String>,
    /// Password grant (enabled per client).
    username: Option<String>,
    /// Password grant.
    password: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    /// RFC 8707 resource indicator; may repeat.
    resource: Option<String>,
    /// Revocation and introspection: the token.
    token: Option<String>,
    /// Revocation and introspection: `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    /// `client_secret_post`, or a public client's id.
    client_id: Option<String>,
    /// `client_secret_post`.
    client_secret: Option<String>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "client_secret_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sigil",
        description = "OAuth 2.0 / OpenID Connect authorization server: the JSON endpoints. The browser pages (/authorize, /login, /consent, /logout, /admin) are described in docs/api.md."
    ),
    paths(
        super::token::token,
        super::revoke::revoke,
        super::introspect::introspect,
        super::userinfo::userinfo,
        super::discovery::metadata,
        super::discovery::jwks,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    components(schemas(ErrorBody, TokenForm)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub fn router() -> Router<AppState> {
    let document = Arc::new(document());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let document = document.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    document.as_str().to_owned(),
                )
                    .into_response()
            }
        }),
    )
}
