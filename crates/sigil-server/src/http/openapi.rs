//! `GET /openapi.json`: the OpenAPI 3.1 document of the JSON endpoints, generated from the
//! handlers' `#[utoipa::path]` annotations and the response types, built once per router.

use super::error::ErrorBody;
use super::form::TokenForm;
use crate::state::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        super::par::par,
        super::revoke::revoke,
        super::introspect::introspect,
        super::userinfo::userinfo,
        super::discovery::metadata,
        super::discovery::jwks,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    components(schemas(ErrorBody, TokenForm, super::par::PushedRequestForm)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema is the body sent: the same fields, all of them required.
    #[test]
    fn the_error_schema_is_the_error_body() {
        let document: serde_json::Value =
            serde_json::from_str(&document()).expect("the document is JSON");
        let schema = &document["components"]["schemas"]["ErrorBody"];
        let properties: Vec<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        let body = serde_json::to_value(ErrorBody::new("invalid_request", "x")).expect("body");
        let fields: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(properties, fields);
        assert_eq!(schema["required"], serde_json::json!(fields));
    }
}
