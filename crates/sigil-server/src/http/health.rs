//! Liveness and readiness; the metrics scrape (on its own listener).

use super::respond;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /metrics`, served only on the metrics listener (`--metrics-bind`).
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus text exposition (format 0.0.4), on the `--metrics-bind` listener only.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Metrics", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let events = state.authority.events();
    let (open, idle, max) = state.database.pool_stats();
    let gauges = crate::metrics::Gauges {
        sign_in_successes: events.sign_in_successes.load(Ordering::Relaxed),
        sign_in_failures: events.sign_in_failures.load(Ordering::Relaxed),
        refresh_reuse_detected: events.refresh_reuse_detected.load(Ordering::Relaxed),
        password_queue_depth: state.authority.password_pool().depth(),
        db_connections_open: open,
        db_connections_idle: idle,
        db_connections_max: max,
        signing_keys: state.authority.keys().current().keys().len(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(&gauges),
    )
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The database answers within two seconds and signing keys are loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Database reachable and keys loaded", body = Object),
        (status = 503, description = "Not ready: `database` or `signing_keys` says which", body = Object),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.authority.ping_store()).await,
        Ok(Ok(()))
    );
    let keys = !state.authority.keys().current().is_empty();
    let is_ready = database && keys;
    let body = serde_json::json!({
        "status": if is_ready { "ready" } else { "unavailable" },
        "database": if database { "ok" } else { "unreachable" },
        "signing_keys": if keys { "ok" } else { "missing" },
    });
    respond::readiness(is_ready, Json(body))
}
