//! RFC 9728 with axum: the route that serves the metadata document, and a layer that names
//! it in the challenges of handlers that use [`super::Authenticated`] without a
//! [`super::VerifyLayer`].

use super::add_resource_metadata;
use crate::ProtectedResourceMetadata;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How long clients and caches may keep the document.
const CACHE_CONTROL: &str = "public, max-age=3600";

impl ProtectedResourceMetadata {
    /// A router that answers `GET` (and `HEAD`) at each of [`Self::route_paths`] with the
    /// document (RFC 9728 §3.2): `200`, `Content-Type: application/json`, `Cache-Control:
    /// public, max-age=3600`, and `Access-Control-Allow-Origin: *`, since the document is
    /// public and browser-based clients read it from other origins. Other methods get axum's
    /// 405. Merge it into the application's router, at the root of the host:
    ///
    /// ```no_run
    /// use axum::{routing::get, Router};
    /// use sigil_verify::axum_support::VerifyLayer;
    /// use sigil_verify::{ProtectedResourceMetadata, Verifier};
    ///
    /// # fn run(verifier: Verifier) -> Result<(), sigil_verify::MetadataError> {
    /// let metadata = ProtectedResourceMetadata::builder("https://api.example.com/mcp")
    ///     .authorization_servers(["https://sigil.example.com"])
    ///     .scopes_supported(["mcp:tools"])
    ///     .build()?;
    /// let app: Router = Router::new()
    ///     .route("/mcp", get(|| async { "tools" }))
    ///     .route_layer(
    ///         VerifyLayer::new(verifier)
    ///             .require_scopes(["mcp:tools"])
    ///             .resource_metadata(metadata.metadata_url()),
    ///     )
    ///     .merge(metadata.router());
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let body = Bytes::from(self.to_json().to_string());
        let serve = move || {
            let body = body.clone();
            async move {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        ),
                        (
                            header::CACHE_CONTROL,
                            HeaderValue::from_static(CACHE_CONTROL),
                        ),
                        (
                            header::ACCESS_CONTROL_ALLOW_ORIGIN,
                            HeaderValue::from_static("*"),
                        ),
                    ],
                    body,
                )
                    .into_response()
            }
        };
        // The paths are safe to route: the builder refused resource paths with `{`, `}`
        // (not canonical) or segments that start with `:` or `*`.
        self.route_paths()
            .into_iter()
            .fold(Router::new(), |router, path| {
                router.route(path, get(serve.clone()))
            })
    }
}

/// A layer that adds `resource_metadata="<url>"` (RFC 9728 §5.1) to the challenge of every
/// `sigil-verify` refusal beneath it: the [`super::Authenticated`] extractor's and the
/// `VerifyError`s that handlers return. A [`super::VerifyLayer`] with
/// [`super::VerifyLayer::resource_metadata`] does this already; this layer is for routers
/// that verify in the extractor alone. Other responses pass unchanged.
#[derive(Clone, Debug)]
pub struct ResourceMetadataLayer {
    url: Arc<str>,
}

impl ResourceMetadataLayer {
    /// `url`: the metadata's URL, usually [`ProtectedResourceMetadata::metadata_url`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Arc::from(url.into()),
        }
    }
}

impl<S> tower::Layer<S> for ResourceMetadataLayer {
    type Service = ResourceMetadataService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ResourceMetadataService {
            inner,
            url: self.url.clone(),
        }
    }
}

/// The service [`ResourceMetadataLayer`] wraps around a handler or router.
#[derive(Clone, Debug)]
pub struct ResourceMetadataService<S> {
    inner: S,
    url: Arc<str>,
}

impl<S> tower::Service<Request<Body>> for ResourceMetadataService<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone is ready only after poll_ready on the original: swap them.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let url = self.url.clone();
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            add_resource_metadata(&mut response, &url);
            Ok(response)
        })
    }
}
