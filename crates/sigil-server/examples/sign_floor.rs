//! The floor under `client_credentials` on this machine: an HTTP server that does nothing
//! per request but read the body and sign one RS256 access token, with none of Sigil's
//! work (no client authentication, no form parsing, no claims from configuration).
//! The load suite runs it beside Sigil, so the gap between the two is Sigil's own cost and
//! the gap between it and `openssl speed` is the cost of HTTP on these cores.
//!
//! `cargo run --release -p sigil-server --example sign_floor -- PORT [inline|pool]`
//!
//! `pool` signs on Sigil's CPU pool (two fixed threads, as the server does); `inline` signs
//! on the tokio worker that took the request, which a real server must not do (it stalls
//! every other connection on that worker for the length of a signature) but which shows
//! what handing the signature to a pool costs.

use axum::routing::post;
use axum::Router;
use sigil_core::cpu::CpuPool;
use sigil_core::keys::{generate_key, SigningKey};
use sigil_core::token::sign_jwt;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: sign_floor PORT [inline|pool]")?
        .parse()?;
    let inline = match args.next().as_deref() {
        None | Some("pool") => false,
        Some("inline") => true,
        Some(other) => return Err(format!("unknown mode {other}").into()),
    };
    let generated = generate_key()?;
    let key = Arc::new(SigningKey::from_pem(&generated.private_pem, 0, 0)?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = CpuPool::new("sigil-sign", cores, 256);
    let app = Router::new().route(
        "/token",
        post(move |_body: axum::body::Bytes| {
            let (key, pool) = (key.clone(), pool.clone());
            async move {
                let claims = serde_json::json!({
                    "iss": "http://127.0.0.1",
                    "sub": "8m2b7Yq3TgWc1yQ0xk9a1w",
                    "aud": "todo-api",
                    "exp": 1_900_000_600,
                    "iat": 1_900_000_000,
                    "jti": "c4xq0mU1T2a9b8Zp3LkQ7w",
                    "client_id": "8m2b7Yq3TgWc1yQ0xk9a1w",
                    "scope": "todos:read",
                });
                let signed = if inline {
                    sign_jwt(&key, "at+jwt", &claims).ok()
                } else {
                    pool.run(move || sign_jwt(&key, "at+jwt", &claims).ok())
                        .await
                        .ok()
                        .flatten()
                };
                match signed {
                    Some(token) => (
                        axum::http::StatusCode::OK,
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "no-store"),
                        ],
                        format!(
                            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":600}}"#
                        ),
                    ),
                    None => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "no-store"),
                        ],
                        String::from(r#"{"error":"temporarily_unavailable"}"#),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
