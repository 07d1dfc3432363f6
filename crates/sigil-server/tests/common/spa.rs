//! The single-page app of `tests/spa/` on an origin of its own: oidc-client-ts installed
//! with npm into a cache under the target directory, and a small static file server on a
//! free loopback port. Without npm the browser test is skipped with a notice, except under
//! CI=true, where that is a failure.
#![allow(dead_code)]

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};

/// The package the SPA is built on, pinned to its major version.
const PACKAGE: &str = "oidc-client-ts@3";

/// The browser bundle inside the package: an IIFE that defines the global `oidc`.
const BUNDLE: &str = "node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js";

/// The SPA's own files (HTML and JavaScript, no build step).
const SPA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spa");

/// oidc-client-ts's browser bundle, installed on first use into `target/tmp/npm-spa`; or
/// `None` (with a notice) when npm is missing.
pub fn oidc_client_bundle() -> Option<PathBuf> {
    // `cargo test` runs a binary's tests as threads of one process: one install per
    // process, the others wait for it.
    static INSTALLED: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install_bundle).clone()
}

fn install_bundle() -> Option<PathBuf> {
    super::npm::install("spa", PACKAGE, BUNDLE, "the single-page-app browser test")
        .map(|dir| dir.join(BUNDLE))
}

/// A listener on a free loopback port, bound before the SPA's address is needed (its
/// redirect URI and allowed origin are registered before it serves).
pub async fn bind_loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, origin)
}

/// Serves the SPA on `listener`: its pages, oidc-client-ts's bundle and `/config.json`
/// (`config`: the issuer, client id and todo-api's address), until the test ends.
pub fn serve_spa(listener: tokio::net::TcpListener, bundle: PathBuf, config: serde_json::Value) {
    let config = config.to_string();
    let router = axum::Router::new().fallback(move |uri: Uri| {
        let (bundle, config) = (bundle.clone(), config.clone());
        async move { spa_file(uri.path(), &bundle, config) }
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
}

fn spa_file(path: &str, bundle: &Path, config: String) -> Response {
    let html = "text/html; charset=utf-8";
    let javascript = "text/javascript; charset=utf-8";
    let (file, content_type) = match path {
        "/" | "/index.html" => (Path::new(SPA_DIR).join("index.html"), html),
        "/callback.html" => (Path::new(SPA_DIR).join("callback.html"), html),
        "/app.js" => (Path::new(SPA_DIR).join("app.js"), javascript),
        "/oidc-client-ts.min.js" => (bundle.to_path_buf(), javascript),
        "/config.json" => {
            return ([(header::CONTENT_TYPE, "application/json")], config).into_response()
        }
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    match std::fs::read(&file) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", file.display()),
        )
            .into_response(),
    }
}
