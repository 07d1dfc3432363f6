//! `todo-api`: the sample resource server. A per-user TODO list behind Sigil access tokens,
//! validated offline by `sigil-verify`: it never calls Sigil per request.
//!
//! Routes (all JSON): `GET/POST/DELETE /api/todos`, `GET/PATCH/DELETE /api/todos/{id}`,
//! `GET /api/me`. Each takes a bearer token or a DPoP-bound token with its proof (RFC 9449;
//! the verifier's [`sigil_verify::DpopConfig`], see [`resource::dpop_config`]).
//! Reading needs the `todos:read` scope, changing needs `todos:write`. Deleting all of one's
//! todos at once also needs a step-up (RFC 9470): a second factor, proven recently. A user
//! sees only their own todos; another user's answers 404. Errors are RFC 9457 problem
//! details (authentication errors are RFC 6750 and RFC 9470, from `sigil-verify`).
//!
//! `GET /.well-known/oauth-protected-resource` (and, for a resource URI with a path, the
//! path-inserted form) serves the RFC 9728 metadata that names Sigil, and every
//! `WWW-Authenticate` challenge names it in `resource_metadata`, so that a client that knows
//! only the API's URL (an MCP client, say) finds where to get a token; see [`resource`].

pub mod problem;
pub mod resource;
pub mod store;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use problem::Problem;
pub use resource::{SCOPE_READ, SCOPE_WRITE};
use serde::Deserialize;
use sigil_verify::axum_support::{Authenticated, VerifyLayer};
use sigil_verify::step_up::{ACR_2FA, ACR_PHR};
use sigil_verify::{AuthenticationRequirement, ProtectedResourceMetadata, Verifier};
use std::time::Duration;
use store::{TodoPatch, TodoStore};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 500;

/// Shared state: the verifier, the store, what `DELETE /api/todos` demands of the user's
/// sign-in, and the RFC 9728 metadata.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Verifier,
    pub store: TodoStore,
    /// The step-up of `DELETE /api/todos`, usually [`step_up_requirement`].
    pub step_up: AuthenticationRequirement,
    /// Served at the well-known paths and named in every challenge; usually
    /// [`resource::protected_resource_metadata`].
    pub metadata: ProtectedResourceMetadata,
}

/// What deleting all of one's todos demands (RFC 9470): a second factor (Sigil's `acr`
/// `urn:sigil:acr:2fa`, or `phr` for a passkey), proven at most `max_age` ago.
pub fn step_up_requirement(max_age: Duration) -> AuthenticationRequirement {
    AuthenticationRequirement::new()
        .with_acr_values([ACR_2FA, ACR_PHR])
        .with_max_age(max_age)
}

impl axum::extract::FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

/// The router: `/healthz` and the metadata open, each `/api/…` handler behind a verify
/// layer with its scope (`todos:read` to read, `todos:write` to change, nothing for
/// `/api/me`) and, for `DELETE /api/todos`, the step-up. So a 401 names the scope the
/// method needs, and every challenge names the metadata.
pub fn app(state: AppState) -> Router {
    let verify =
        VerifyLayer::new(state.verifier.clone()).resource_metadata(state.metadata.metadata_url());
    let reading = verify.clone().require_scopes([SCOPE_READ]);
    let writing = verify.clone().require_scopes([SCOPE_WRITE]);
    let deleting_all = writing
        .clone()
        .require_authentication(state.step_up.clone());
    Router::new()
        .route("/api/me", get(me.layer(verify)))
        .route(
            "/api/todos",
            get(list.layer(reading.clone()))
                .post(create.layer(writing.clone()))
                .delete(remove_all.layer(deleting_all)),
        )
        .route(
            "/api/todos/{id}",
            get(read.layer(reading))
                .patch(update.layer(writing.clone()))
                .delete(remove.layer(writing)),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .merge(state.metadata.router())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(state)
}

/// Adds CORS for browser front-ends served from `origins` (e.g. `http://localhost:5173`).
pub fn with_cors(router: Router, origins: &[String]) -> Result<Router, String> {
    use axum::http::{header, HeaderValue, Method};
    use sigil_verify::axum_support::{DPOP, DPOP_NONCE};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(router);
    }
    let origins = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| format!("invalid CORS origin {o:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    // DPoP (RFC 9449): the proof goes in the `DPoP` request header; the script must be able
    // to read the challenge and the nonce of the answers (§7.1, §9).
    Ok(router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, DPOP])
            .expose_headers([header::WWW_AUTHENTICATE, DPOP_NONCE]),
    ))
}

/// JSON bodies whose rejections are problem details rather than axum's plain text.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.body_text(),
            )),
            Err(e) => Err(Problem::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
    #[serde(default)]
    done: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    title: Option<String>,
    done: Option<bool>,
}

fn validate_title(title: &str) -> Result<String, Problem> {
    let trimmed = title.trim();
    if trimmed.is_empty() {
        return Err(Problem::invalid("title", "must not be empty"));
    }
    if trimmed.chars().count() > MAX_TITLE {
        return Err(Problem::invalid("title", "must be at most 500 characters"));
    }
    Ok(trimmed.to_string())
}

/// `GET /api/me`: who the token speaks for.
#[derive(serde::Serialize)]
struct Me {
    sub: String,
    client_id: Option<String>,
    scope: String,
    exp: i64,
}

/// Who the token speaks for: any valid token, no scope needed.
async fn me(Authenticated(claims): Authenticated) -> Response {
    Json(Me {
        sub: claims.sub,
        client_id: claims.client_id,
        scope: claims.scope,
        exp: claims.exp,
    })
    .into_response()
}

async fn list(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Response> {
    let todos = state.store.list(&claims.sub).await.map_err(Problem::from)?;
    Ok(Json(todos).into_response())
}

async fn create(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    body: Result<JsonBody<NewTodo>, Problem>,
) -> Result<Response, Response> {
    let JsonBody(new) = body.map_err(IntoResponse::into_response)?;
    let title = validate_title(&new.title).map_err(IntoResponse::into_response)?;
    let todo = state
        .store
        .create(&claims.sub, &title, new.done)
        .await
        .map_err(Problem::from)?;
    Ok((StatusCode::CREATED, Json(todo)).into_response())
}

async fn read(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    match state
        .store
        .find(&claims.sub, &id)
        .await
        .map_err(Problem::from)?
    {
        Some(todo) => Ok(Json(todo).into_response()),
        None => Err(Problem::not_found().into_response()),
    }
}

async fn update(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
    body: Result<JsonBody<Patch>, Problem>,
) -> Result<Response, Response> {
    let JsonBody(patch) = body.map_err(IntoResponse::into_response)?;
    let title = patch
        .title
        .as_deref()
        .map(validate_title)
        .transpose()
        .map_err(IntoResponse::into_response)?;
    let patch = TodoPatch {
        title,
        done: patch.done,
    };
    match state
        .store
        .update(&claims.sub, &id, &patch)
        .await
        .map_err(Problem::from)?
    {
        Some(todo) => Ok(Json(todo).into_response()),
        None => Err(Problem::not_found().into_response()),
    }
}

async fn remove(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    if state
        .store
        .delete(&claims.sub, &id)
        .await
        .map_err(Problem::from)?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found().into_response())
    }
}

/// `DELETE /api/todos`: deletes every todo of the caller, at once. Its layer demands
/// `todos:write` (else 403) and the state's step-up (else 401
/// `insufficient_user_authentication` with the `acr_values` and `max_age` to ask Sigil for).
async fn remove_all(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Response, Response> {
    let deleted = state
        .store
        .delete_all(&claims.sub)
        .await
        .map_err(Problem::from)?;
    tracing::info!(deleted, "deleted all of a user's todos");
    Ok(StatusCode::NO_CONTENT.into_response())
}
