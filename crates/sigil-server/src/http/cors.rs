//! CORS for browser apps (single-page apps) on `/token`, `/par`, `/revoke` and `/userinfo`: each
//! client lists the origins its JavaScript runs on (`--allowed-origin`), and only those get
//! `Access-Control-Allow-Origin`, echoed (never `*`, never with credentials: these
//! endpoints take no cookies). Discovery and the JWKS are public and readable from any
//! origin (see `discovery.rs`).
//!
//! A preflight (`OPTIONS`) carries no client id, so it is answered for an origin that any
//! client lists, from a set kept in memory and refreshed from the database every few
//! seconds (a flood of preflights costs no query). The real request is answered for its
//! own client only: the handler names the client it served ([`served_client`]) and this
//! layer checks that client's list; a response that names none (the client could not be
//! told, say a malformed request) is readable by the listed origins of any client, so a
//! browser app sees its error.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use sigil_core::origin::Origin;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a preflight answer may be cached by the browser.
const PREFLIGHT_MAX_AGE: &str = "600";
/// The request headers a browser app may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, dpop";
/// The response headers a browser app may read beside the simple ones.
const EXPOSED_HEADERS: &str = "www-authenticate, retry-after, dpop-nonce";

/// The client a response was for, set by the handler as a response extension.
#[derive(Debug, Clone)]
pub struct ServedClient(pub String);

/// Names the client a response was for (see the module comment).
pub fn served_client(mut response: Response, client_id: &str) -> Response {
    response
        .extensions_mut()
        .insert(ServedClient(client_id.to_string()));
    response
}

/// Every origin some client lists, refreshed at most every `refresh`.
pub struct AllowedOrigins {
    refresh: Duration,
    cached: Mutex<Option<(Instant, Arc<HashSet<String>>)>>,
}

impl AllowedOrigins {
    /// `refresh`: how stale the set may be (the client cache's lifetime, between 1 and
    /// 5 s: even with the client cache off, a flood of preflights costs one query a second).
    pub fn new(refresh: Duration) -> Self {
        Self {
            refresh: refresh.clamp(Duration::from_secs(1), Duration::from_secs(5)),
            cached: Mutex::new(None),
        }
    }

    /// Whether any client lists `origin`. A database failure counts as no (the browser
    /// then refuses the response, and the app retries later).
    async fn contains(&self, state: &AppState, origin: &str) -> bool {
        if let Some(set) = self.fresh() {
            return set.contains(origin);
        }
        match state.authority.client_origins().await {
            Ok(list) => {
                let set: Arc<HashSet<String>> = Arc::new(list.into_iter().collect());
                let found = set.contains(origin);
                if let Ok(mut cached) = self.cached.lock() {
                    *cached = Some((Instant::now(), set));
                }
                found
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the clients' allowed origins");
                false
            }
        }
    }

    fn fresh(&self) -> Option<Arc<HashSet<String>>> {
        let cached = self.cached.lock().ok()?;
        match &*cached {
            Some((at, set)) if at.elapsed() < self.refresh => Some(set.clone()),
            _ => None,
        }
    }
}

/// The request's `Origin`, if it is a well-formed origin (as browsers send it). Anything
/// else (absent, `null`, garbage) gets no CORS headers at all.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::ORIGIN)?.to_str().ok()?;
    let origin = Origin::parse(value).ok()?;
    (origin.as_str() == value).then(|| value.to_string())
}

/// The layer: answers preflights, and adds the CORS headers a real response may carry.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request_origin(request.headers());
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let mut response = super::respond::no_content();
        if let Some(origin) = origin {
            if state.cors.contains(&state, &origin).await {
                let methods = if request.uri().path() == "/userinfo" {
                    "GET, POST"
                } else {
                    "POST"
                };
                let headers = response.headers_mut();
                allow(headers, &origin);
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(methods),
                );
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOWED_HEADERS),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(PREFLIGHT_MAX_AGE),
                );
            }
        }
        vary(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let served = response.extensions().get::<ServedClient>().cloned();
        let allowed = match served {
            Some(ServedClient(client_id)) => match state.authority.find_client(&client_id).await {
                Ok(Some(client)) => client.allows_origin(&origin),
                _ => false,
            },
            None => state.cors.contains(&state, &origin).await,
        };
        if allowed {
            let headers = response.headers_mut();
            allow(headers, &origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
    vary(response.headers_mut());
    response
}

fn allow(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

/// The answer depends on `Origin`: caches must keep them apart.
fn vary(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}
