//! Load generator of the load suite's DPoP scenario (tests/load/run.sh): gets a DPoP-bound
//! token from Sigil (client_credentials with a proof), then keeps `--connections` requests
//! in flight against `--url` for `--seconds`, each with `Authorization: DPoP <token>` and a
//! proof made for it (ES256, a fresh `jti`, `ath`), and prints one line:
//!
//! ```text
//! requests 123456 seconds 10.00 rps 12345.6 p50_ms 2.51 p99_ms 6.02 errors 0
//! ```
//!
//! wrk cannot sign ES256 in Lua, and a file of pre-made proofs would have to hold one per
//! request; so this generator signs. It does the same for the open route it is compared
//! with (`/healthz`, which ignores the headers), so that both routes cost the client the same
//! and the difference between the two rates is the server's DPoP work alone.
//!
//! With `--mode token` it drives Sigil's token endpoint instead: each request is a
//! client_credentials grant with a fresh proof (`htu` the token endpoint), so each is a proof
//! check, a `jti` recorded in Sigil's database and a DPoP-bound token signed. `--mode
//! token-bearer` makes and signs the same proof but leaves it out of the request: the same
//! client work, a bearer token, and the difference is Sigil's DPoP work.

use clap::Parser;
use sigil_dpop::{Alg, ProofSigner};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Drives a URL with DPoP requests, one fresh proof each.
#[derive(Debug, Parser)]
struct Args {
    /// Sigil's token endpoint (the proof's `htu` there is this URL).
    #[arg(long)]
    token_endpoint: String,
    /// The client's `id:secret` (a client_credentials client).
    #[arg(long)]
    client: String,
    /// The scope to ask for.
    #[arg(long, default_value = "todos:read")]
    scope: String,
    /// The URL to drive; the proofs name it in `htu`.
    #[arg(long)]
    url: String,
    /// How long to drive it.
    #[arg(long, default_value = "10")]
    seconds: u64,
    /// Requests in flight at once.
    #[arg(long, default_value = "32")]
    connections: usize,
    /// Worker threads of the generator.
    #[arg(long, default_value = "2")]
    threads: usize,
    /// What each request is: `resource` (GET `--url` with the bound token and a proof),
    /// `token` (client_credentials at `--token-endpoint` with a proof) or `token-bearer` (the
    /// same without sending the proof).
    #[arg(long, default_value = "resource")]
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Resource,
    Token,
    TokenBearer,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(args))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn run(args: Args) -> Result<(), String> {
    let key = Arc::new(ProofSigner::generate(Alg::Es256)?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .map_err(|e| e.to_string())?;
    let (id, secret) = args
        .client
        .split_once(':')
        .map(|(id, secret)| (id.to_string(), secret.to_string()))
        .ok_or("--client must be id:secret")?;
    let grant = Arc::new(Grant {
        endpoint: args.token_endpoint.clone(),
        id,
        secret,
        scope: args.scope.clone(),
    });
    let token = Arc::new(match args.mode {
        Mode::Resource => grant.bound_token(&http, &key).await?,
        Mode::Token | Mode::TokenBearer => String::new(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (http, key, token, stop, errors) = (
            http.clone(),
            key.clone(),
            token.clone(),
            stop.clone(),
            errors.clone(),
        );
        let url = args.url.clone();
        let (grant, mode) = (grant.clone(), args.mode);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let ok = match mode {
                    Mode::Resource => match key.proof("GET", &url, Some(&token), None, now()) {
                        Ok(proof) => http
                            .get(&url)
                            .header("authorization", format!("DPoP {token}"))
                            .header("dpop", proof)
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success()),
                        Err(_) => false,
                    },
                    Mode::Token | Mode::TokenBearer => grant
                        .request(&http, &key, mode == Mode::Token)
                        .await
                        .is_ok(),
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(sent.elapsed().as_micros() as u32);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!(
        "requests {} seconds {elapsed:.2} rps {:.1} p50_ms {:.2} p99_ms {:.2} errors {}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// What a token-endpoint request needs.
struct Grant {
    endpoint: String,
    id: String,
    secret: String,
    scope: String,
}

impl Grant {
    /// One client_credentials grant; the proof is always made, and sent with `dpop`. The
    /// token response, when it has the `token_type` expected.
    async fn request(
        &self,
        http: &reqwest::Client,
        key: &ProofSigner,
        dpop: bool,
    ) -> Result<serde_json::Value, String> {
        let proof = key.proof("POST", &self.endpoint, None, None, now())?;
        let mut request = http
            .post(&self.endpoint)
            .basic_auth(&self.id, Some(&self.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", &self.scope)]);
        if dpop {
            request = request.header("dpop", proof);
        }
        let response: serde_json::Value = request
            .send()
            .await
            .map_err(|e| format!("token request: {e}"))?
            .json()
            .await
            .map_err(|e| format!("token response: {e}"))?;
        let wanted = if dpop { "DPoP" } else { "Bearer" };
        if response["token_type"] != wanted {
            return Err(format!(
                "Sigil did not issue a {wanted} token: {}",
                response["error"]
            ));
        }
        Ok(response)
    }

    /// A token bound to `key` (`token_type` DPoP).
    async fn bound_token(
        &self,
        http: &reqwest::Client,
        key: &ProofSigner,
    ) -> Result<String, String> {
        self.request(http, key, true).await?["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "no access_token in the token response".to_string())
    }
}
