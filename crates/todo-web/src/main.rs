//! The `todo-web` binary: parse the command line, discover the issuer, serve.

use clap::Parser;
use std::time::{Duration, Instant};
use todo_web::config::Config;
use todo_web::oidc::Provider;
use todo_web::session::SessionStore;
use todo_web::todo_api::TodoApi;
use todo_web::{app, AppState};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(message) = run(Config::parse()).await {
        eprintln!("todo-web: error: {message}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<(), String> {
    let public_url = config.public_url();
    // Sigil may still be starting (docker compose): retry discovery for a while.
    let deadline = Instant::now() + Duration::from_secs(config.discovery_timeout_secs);
    let provider = loop {
        match Provider::discover(
            &config.issuer,
            &config.client_id,
            &config.client_secret.0,
            &public_url,
        )
        .await
        {
            Ok(provider) => break provider,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "issuer not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("cannot discover {}: {e}", config.issuer)),
        }
    };
    let todo_api = TodoApi::new(config.todo_api.clone())?;
    let sessions = SessionStore::new(config.session_idle());
    let state = AppState::new(provider, todo_api, sessions, &public_url)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("todo-web listening on http://{addr} (public URL {public_url})");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}
