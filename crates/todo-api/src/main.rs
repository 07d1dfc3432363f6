//! The `todo-api` binary: parse the command line, discover the issuer's keys, serve.

use clap::Parser;
use sigil_verify::{Verifier, VerifierConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use todo_api::resource::{
    default_public_url, dpop_config, protected_resource_metadata, ResourceIdentity,
};
use todo_api::store::TodoStore;
use todo_api::{app, step_up_requirement, with_cors, AppState};

/// A sample resource server: a per-user TODO API protected by Sigil access tokens.
#[derive(Debug, Parser)]
#[command(name = "todo-api", version, about)]
struct Args {
    /// The Sigil issuer URL (its discovery document gives the JWKS).
    #[arg(long, env = "TODO_ISSUER")]
    issuer: String,
    /// This API's resource identifier (RFC 8707, RFC 9728): the URL clients use for it and
    /// the `resource` they ask Sigil for; the metadata document's `resource`. An `https`
    /// URL, or `http` on loopback. Default: `--audience` if that is such a URL, else
    /// `http://` and the bind address (`0.0.0.0` read as 127.0.0.1).
    #[arg(long, env = "TODO_RESOURCE_URI")]
    resource_uri: Option<String>,
    /// This API's audience: tokens must carry it in `aud`. Default: the resource URI. Keep
    /// the two equal: Sigil issues a token asked for with `resource` with that `aud`.
    #[arg(long, env = "TODO_AUDIENCE")]
    audience: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "TODO_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// SQLite database URL.
    #[arg(
        long,
        env = "TODO_DATABASE_URL",
        default_value = "sqlite://data/todo.db"
    )]
    database_url: String,
    /// A browser origin allowed to call the API (CORS); repeat for several.
    #[arg(long = "cors-origin", env = "TODO_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Least time between two JWKS refetches triggered by unknown key ids.
    #[arg(long, env = "TODO_JWKS_REFETCH_COOLDOWN_SECS", default_value = "30")]
    jwks_refetch_cooldown_secs: u64,
    /// `DELETE /api/todos` (all of the caller's todos) needs a second factor proven at most
    /// this many seconds ago (RFC 9470 step-up: older sign-ins get a `max_age` challenge).
    #[arg(long, env = "TODO_STEP_UP_MAX_AGE_SECS", default_value = "300")]
    step_up_max_age_secs: u64,
    /// The URL clients reach this API at (scheme, host, port, and a path prefix if a proxy
    /// strips one): DPoP proofs' `htu` must be this and the request's path (RFC 9449 §4.3).
    /// Behind a reverse proxy, give the public `https` URL; the `Host` header is not trusted.
    /// Default: the origin of the resource URI.
    #[arg(long, env = "TODO_PUBLIC_URL")]
    public_url: Option<String>,
    /// Require a nonce of this server in every DPoP proof (RFC 9449 §9): a proof without a
    /// current one gets 401 `use_dpop_nonce` and the nonce in `DPoP-Nonce`. Nonces are
    /// per process: behind a load balancer, keep a client on one replica.
    #[arg(long, env = "TODO_DPOP_NONCE")]
    dpop_nonce: bool,
    /// With --dpop-nonce: how often the nonce changes (seconds); the previous one stays
    /// accepted one more window.
    #[arg(long, env = "TODO_DPOP_NONCE_WINDOW_SECS", default_value = "60")]
    dpop_nonce_window_secs: u64,
    /// Most DPoP proofs remembered against replay (about 40 bytes each), each for 5 minutes:
    /// when full, new proofs get 503 until old ones expire. Size it to the proof rate times
    /// 300.
    #[arg(long, env = "TODO_DPOP_REPLAY_CAPACITY", default_value = "250000")]
    dpop_replay_capacity: usize,
    /// How long to keep trying to reach the issuer at start.
    #[arg(long, default_value = "30")]
    discovery_timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(message) = run(Args::parse()).await {
        eprintln!("todo-api: error: {message}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let identity = ResourceIdentity::resolve(
        args.resource_uri.as_deref(),
        args.audience.as_deref(),
        args.bind,
    )?;
    let metadata = protected_resource_metadata(&identity.resource_uri, &args.issuer)
        .map_err(|e| format!("invalid resource metadata: {e}"))?;
    if !identity.audience_is_resource() {
        tracing::warn!(
            audience = %identity.audience,
            resource_uri = %identity.resource_uri,
            "the audience is not the resource URI: tokens that clients ask for with \
             resource={} (RFC 8707) will be refused",
            identity.resource_uri
        );
    }
    let public_url = match &args.public_url {
        Some(url) => url.clone(),
        None => default_public_url(&identity.resource_uri)?,
    };
    let nonce_window = args
        .dpop_nonce
        .then(|| Duration::from_secs(args.dpop_nonce_window_secs));
    let dpop = dpop_config(&public_url, nonce_window, args.dpop_replay_capacity)?;
    let store = TodoStore::open(&args.database_url).await?;
    let deadline = Instant::now() + Duration::from_secs(args.discovery_timeout_secs);
    let verifier = loop {
        let mut config = VerifierConfig::new(args.issuer.clone(), identity.audience.clone())
            .with_dpop(dpop.clone());
        config.refetch_cooldown = Duration::from_secs(args.jwks_refetch_cooldown_secs);
        match Verifier::discover(config).await {
            Ok(verifier) => break verifier,
            Err(e) if Instant::now() < deadline => {
                tracing::warn!(error = %e, "issuer not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("cannot load the issuer's keys: {e}")),
        }
    };
    let metadata_url = metadata.metadata_url().to_string();
    let state = AppState {
        verifier,
        store,
        step_up: step_up_requirement(Duration::from_secs(args.step_up_max_age_secs)),
        metadata,
    };
    let router = with_cors(app(state), &args.cors_origins)?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("todo-api listening on http://{addr}");
    println!(
        "todo-api resource {} (metadata at {}); DPoP proofs for {public_url}{}",
        identity.resource_uri,
        metadata_url,
        if args.dpop_nonce { ", with nonces" } else { "" }
    );
    axum::serve(listener, router)
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
