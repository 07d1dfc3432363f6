//! Attacks on DPoP (RFC 9449) at the authorization server, against the real binary over
//! real HTTP (`tests/dpop.rs` covers the protocol working; this file covers it holding).
//! Every answer is checked to be a standard error (status, `error`, JSON, `Cache-Control:
//! no-store` at /token and /par), never a 5xx, never quoting a proof or a token; the
//! server answers /healthz after each flood.
//!
//! Abuses tried:
//! * Races: one proof sent in 20 concurrent /token requests, and in 20 concurrent
//!   /userinfo requests, on SQLite; one proof in 20 requests split over two replicas that
//!   share PostgreSQL. Exactly one may win (§11.1).
//! * A proof replayed at its last accepted second (`iat` + max age), when the `jti` record
//!   expires (§11.1).
//! * A malleated ES256 signature (s → n − s): a new proof string, the same `jti`.
//! * Cross-endpoint replay: a /token proof at /par and /userinfo, a /par proof at /token,
//!   a GET /userinfo proof at POST /userinfo (`htm`, `htu`, §4.3).
//! * Algorithm confusion: HS256 with an `oct` jwk whose `k` is public, `alg` ES256 with an
//!   RSA jwk, RS256 with an EC jwk, `"ES256 "`, `"es256"`, a non-string `alg`, ES256 with a
//!   P-384 key, EdDSA with an X25519 key, a P-256 point not on the curve, PS256 claimed for
//!   an RS256 signature.
//! * Oversized input: a 16384-bit and a 1024-bit RSA modulus, a 3072-bit modulus with a
//!   3072-bit exponent, a 100 KB proof, a 1 MB header, deeply nested JSON: refused cheaply.
//! * Extra key members (`kid`, `x5c`, `x5u`, `jku`, `alg`, `use` in or beside the jwk)
//!   that point elsewhere: the binding is the jwk's thumbprint, nothing else.
//! * Unicode and control characters in `jti`, `htu` and `nonce`; a `jti` of 256 and 257
//!   four-byte characters; the same `jti` from two keys.
//! * `htu` tricks, against a named issuer: userinfo (`http://evil@host/token`), another
//!   port, another scheme, `%2e%2e` segments, a trailing-dot host, `\`, `/TOKEN`,
//!   `/token/`, `//token`, `/%74oken`, and the equivalent forms that must pass (case of
//!   scheme and host, default port, query, fragment).
//! * `iat` edge cases: 1e308, −1, a string, null, a boolean, a float, 1e15, i64::MAX,
//!   u64::MAX, exactly the oldest accepted second.
//! * Nonces (`--dpop-nonce`): another server's, two periods old, one period old (good), a
//!   future period's, a truncated one, one with a zeroed MAC, a unicode one, a number.
//! * Downgrades and moves: a bound token as Bearer (header and form body) at /userinfo, its
//!   proof with another token (`ath`), a proof of another key; a public client's bound
//!   refresh token without a proof (then still usable with one); a bound token introspected
//!   by another client (inactive, no `cnf`) and by its audience (active, `cnf`).
//! * A stolen code bound with `dpop_jkt`, exchanged with another key or none, before the
//!   rightful client: the code must survive the thief.
//! * DPoP headers on endpoints that ignore them (/introspect, /revoke, /jwks, discovery,
//!   /authorize, /healthz): no crash, and the proof is not burnt.
//! * Malformed headers: 2, 50 and 150 DPoP headers, invalid UTF-8 bytes, whitespace only,
//!   at /token, /par and /userinfo.
//! * Which failures burn a proof: none. A failed client authentication, an unknown grant
//!   type, a grant the client may not use and a failed grant (a made-up code) leave it
//!   unspent: its use is recorded only when tokens are issued, so junk with a valid proof
//!   costs no database write; the good request then spends it.
//! * The server's log never holds a proof or a token.

mod common;

use common::flows::{self, code_of, pkce, sign_in_first_party};
use common::process::{free_port, Server, Setup};
use common::{jwt_claims, unix_now, TestDb};
use serde_json::{json, Map, Value};
use sigil_dpop::{Alg, ProofSigner};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "dpop attacks correct horse";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// One Sigil with its database, and a plain HTTP client.
struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    /// The issuer proofs' `htu` must name (the server's own address unless given).
    issuer: String,
    http: reqwest::Client,
}

/// An answer: status, headers, JSON body and the raw body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    raw: String,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl Env {
    fn start(db: TestDb, serve: &[&str]) -> Self {
        let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
        setup.sigil(&["migrate"], None);
        let server = Server::start_on(&setup, &[], serve, free_port(), &[]);
        let issuer = serve
            .iter()
            .position(|a| *a == "--issuer")
            .map(|i| serve[i + 1].to_string())
            .unwrap_or_else(|| server.base.clone());
        Self {
            _db: db,
            setup,
            server,
            issuer,
            http: http_client(),
        }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    /// Where a request goes (the server's address).
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// What a proof's `htu` names (the issuer).
    fn htu(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    fn add_client(&self, extra: &[&str]) -> (String, Option<String>) {
        let mut args = vec!["client", "add", "--json"];
        args.extend_from_slice(extra);
        let out: Value = serde_json::from_str(&self.setup.sigil(&args, None)).expect("json");
        (
            out["client_id"].as_str().expect("id").to_string(),
            out["client_secret"].as_str().map(str::to_string),
        )
    }

    /// A confidential `client_credentials` client for `audience`.
    fn service_for(&self, audience: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "--name",
            "Service",
            "--grant-types",
            "client_credentials",
            "--audience",
            audience,
        ];
        args.extend_from_slice(extra);
        let (id, secret) = self.add_client(&args);
        (id, secret.expect("a secret"))
    }

    fn service(&self) -> (String, String) {
        self.service_for("https://api.example.com", &[])
    }

    /// A public first-party app for the code flow, and the user carol.
    fn app(&self) -> String {
        self.setup.sigil(
            &["user", "add", "--username", "carol", "--password-stdin"],
            Some(PASSWORD),
        );
        self.add_client(&[
            "--name",
            "Phone app",
            "--public",
            "--first-party",
            "--redirect-uri",
            CALLBACK,
            "--grant-types",
            "authorization_code,refresh_token",
            "--scopes",
            "openid,offline_access",
        ])
        .0
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        proofs: &[&str],
        basic: Option<(&str, &str)>,
    ) -> Answer {
        let mut request = self.http.post(self.url(path)).form(form);
        for proof in proofs {
            request = request.header("DPoP", *proof);
        }
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        answer(request.send().await.expect("post")).await
    }

    async fn client_token(&self, client: &(String, String), proofs: &[&str]) -> Answer {
        self.post(
            "/token",
            &[("grant_type", "client_credentials")],
            proofs,
            Some((&client.0, &client.1)),
        )
        .await
    }

    async fn userinfo(&self, authorization: &str, proofs: &[&str]) -> Answer {
        let mut request = self
            .http
            .get(self.url("/userinfo"))
            .header("Authorization", authorization);
        for proof in proofs {
            request = request.header("DPoP", *proof);
        }
        answer(request.send().await.expect("get")).await
    }

    /// `POST /token` for `client_credentials` with a proof `key` signs now.
    async fn fresh_client_token(&self, client: &(String, String), key: &ProofSigner) -> Answer {
        self.client_token(client, &[&post_proof(key, &self.htu("/token"))])
            .await
    }

    /// A code for the app (carol signs in), with extra authorization parameters.
    async fn code(&self, app: &str, extra: &[(&str, &str)]) -> (String, String) {
        let (verifier, challenge) = pkce();
        let code = sign_in(
            self.base(),
            &authorize_url(self.base(), app, &challenge, extra),
        )
        .await;
        (code, verifier)
    }

    async fn exchange(&self, app: &str, code: &str, verifier: &str, proofs: &[&str]) -> Answer {
        self.post(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", CALLBACK),
                ("client_id", app),
            ],
            proofs,
            None,
        )
        .await
    }

    /// Tokens for carol bound to `key`: (access, refresh).
    async fn bound_tokens(&self, app: &str, key: &ProofSigner) -> (String, String) {
        let (code, verifier) = self.code(app, &[]).await;
        let tokens = self
            .exchange(
                app,
                &code,
                &verifier,
                &[&post_proof(key, &self.htu("/token"))],
            )
            .await;
        assert_eq!(tokens.status, 200, "{}", tokens.body);
        assert_eq!(tokens.body["token_type"], "DPoP");
        (
            tokens.body["access_token"].as_str().expect("access").into(),
            tokens.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .into(),
        )
    }

    async fn assert_healthy(&self) {
        let response = self
            .http
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("healthz");
        assert_eq!(response.status(), 200, "the server should still be healthy");
    }

    /// The server's log: it must never hold a proof or a token.
    fn assert_log_free_of(&self, secrets: &[&str]) {
        let log = std::fs::read_to_string(self.setup.log_path()).expect("log");
        for secret in secrets {
            assert!(
                !log.contains(secret),
                "the server log holds a secret: {}…",
                &secret[..secret.len().min(16)]
            );
        }
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    }
}

fn now() -> i64 {
    unix_now() as i64
}

fn key() -> ProofSigner {
    ProofSigner::generate(Alg::Es256).expect("key")
}

fn post_proof(key: &ProofSigner, url: &str) -> String {
    key.proof("POST", url, None, None, now()).expect("proof")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// Whether `text` holds a run of 30 or more base64url characters: what a proof, a token
/// or a thumbprint would leave in an error.
fn has_long_base64_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            run += 1;
            if run >= 30 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Checks a refusal: the status, the `error` code, words in the description, JSON, no
/// proof or token quoted in the description or the challenges, and `Cache-Control:
/// no-store`.
fn assert_refused(answer: &Answer, status: u16, error: &str, words: &str) {
    assert_eq!(answer.status, status, "{}", answer.raw);
    assert_eq!(answer.error(), error, "{}", answer.raw);
    let description = answer.body["error_description"].as_str().unwrap_or("");
    assert!(
        description.contains(words),
        "{description:?} should say {words:?}"
    );
    assert_clean(answer);
}

/// What every answer of a DPoP endpoint must be: no 5xx, `no-store`, and when an error,
/// a JSON body with an `error` and nothing secret quoted.
fn assert_clean(answer: &Answer) {
    assert!(answer.status < 500, "a server error: {}", answer.raw);
    // (431 is answered before any endpoint: nothing in it to cache.)
    assert!(
        answer.status == 431 || answer.header("cache-control") == ["no-store"],
        "no Cache-Control: no-store: {}",
        answer.raw
    );
    // Only the bare 401 challenge (no token at all) has no body.
    if !answer.raw.is_empty() || answer.status >= 400 && answer.status != 401 {
        assert!(answer.body.is_object(), "not JSON: {:?}", answer.raw);
    }
    if answer.status >= 400 && !answer.raw.is_empty() {
        assert!(!answer.error().is_empty(), "{}", answer.raw);
        let description = answer.body["error_description"].as_str().unwrap_or("");
        assert!(
            !has_long_base64_run(description),
            "the description quotes something: {description}"
        );
    }
    for challenge in answer.header("www-authenticate") {
        assert!(!has_long_base64_run(&challenge), "{challenge}");
    }
}

/// The code at the app's callback once carol has signed in from `authorize_url`.
async fn sign_in(base: &str, authorize_url: &str) -> String {
    code_of(&sign_in_first_party(base, authorize_url, CALLBACK, "carol", PASSWORD).await)
}

fn authorize_url(base: &str, client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    flows::authorize_url(base, client_id, CALLBACK, challenge, extra)
}

/// Claims of a good proof for `POST url`, to be broken one at a time.
fn claims(url: &str) -> Value {
    json!({"jti": sigil_core::secret::random_token(12), "htm": "POST", "htu": url, "iat": now()})
}

fn header_with(key: &ProofSigner, changes: &[(&str, Value)]) -> Value {
    let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    for (name, value) in changes {
        header[*name] = value.clone();
    }
    header
}

/// Sends `requests` copies of one request at once (all lined up on a barrier), to the
/// given bases in turn, and returns the answers.
async fn race(
    bases: &[String],
    requests: usize,
    build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> Vec<Answer> {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..requests {
        // One client per request: one connection each, so they really run at once.
        let client = http_client();
        let request = build(&client, &bases[i % bases.len()]);
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            answer(request.send().await.expect("send")).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("join"));
    }
    answers
}

fn assert_one_winner(answers: &[Answer], loser_status: u16) {
    let winners = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(winners, 1, "exactly one use of the proof may succeed");
    for loser in answers.iter().filter(|a| a.status != 200) {
        assert_refused(loser, loser_status, "invalid_dpop_proof", "used before");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_proof_raced_twenty_times_wins_once_on_sqlite() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let app = env.app();
    let key = key();

    let proof = post_proof(&key, &env.htu("/token"));
    let answers = race(&[env.base().to_string()], 20, |http, base| {
        http.post(format!("{base}/token"))
            .basic_auth(&client.0, Some(&client.1))
            .header("DPoP", &proof)
            .form(&[("grant_type", "client_credentials")])
    })
    .await;
    assert_one_winner(&answers, 400);
    env.assert_healthy().await;

    let (access, _) = env.bound_tokens(&app, &key).await;
    let proof = key
        .proof("GET", &env.htu("/userinfo"), Some(&access), None, now())
        .expect("proof");
    let answers = race(&[env.base().to_string()], 20, |http, base| {
        http.get(format!("{base}/userinfo"))
            .header("Authorization", format!("DPoP {access}"))
            .header("DPoP", &proof)
    })
    .await;
    assert_one_winner(&answers, 401);
    env.assert_healthy().await;
    env.assert_log_free_of(&[&proof, &access]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_proof_raced_at_two_replicas_on_postgres_wins_once() {
    let Some(db) = TestDb::postgres("dpop_attacks_race").await else {
        return;
    };
    let issuer = "http://sigil.attacks-replicas.test";
    let env = Env::start(db, &["--issuer", issuer]);
    let second = Server::start_on(&env.setup, &[], &["--issuer", issuer], free_port(), &[]);
    let client = env.service();
    let key = key();
    let bases = [env.base().to_string(), second.base.clone()];
    for round in 0..3 {
        let proof = post_proof(&key, &env.htu("/token"));
        let answers = race(&bases, 20, |http, base| {
            http.post(format!("{base}/token"))
                .basic_auth(&client.0, Some(&client.1))
                .header("DPoP", &proof)
                .form(&[("grant_type", "client_credentials")])
        })
        .await;
        let winners = answers.iter().filter(|a| a.status == 200).count();
        assert_eq!(winners, 1, "round {round}: one winner across replicas");
        assert_one_winner(&answers, 400);
    }
    env.assert_healthy().await;
    let health = http_client()
        .get(format!("{}/healthz", second.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_cannot_be_replayed_at_the_last_second_of_its_window() {
    // With a 2 s window a proof is accepted while now ≤ iat + 2; its jti must be
    // remembered for all of that time, the last second included.
    let env = Env::start(TestDb::sqlite(), &["--dpop-proof-max-age", "2s"]);
    let client = env.service();
    let key = key();
    let proof = post_proof(&key, &env.htu("/token"));
    let first = env.client_token(&client, &[&proof]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut replays_accepted = 0;
    loop {
        let replay = env.client_token(&client, &[&proof]).await;
        assert_clean(&replay);
        if replay.status == 200 {
            replays_accepted += 1;
        } else if replay.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("iat"))
        {
            break; // The window is over: the proof is refused for its age from now on.
        } else {
            assert_refused(&replay, 400, "invalid_dpop_proof", "used before");
        }
        assert!(Instant::now() < deadline, "the proof never got too old");
        // The clock is what is awaited here: poll it well within a second.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(
        replays_accepted, 0,
        "a used proof was accepted again at iat + max age"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malleated_signature_is_still_the_same_proof() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let key = key();
    let proof = post_proof(&key, &env.htu("/token"));
    // ECDSA signatures are malleable: (r, n − s) verifies as well as (r, s).
    let (input, signature) = proof.rsplit_once('.').expect("jws");
    let signature = unb64(signature);
    let order = openssl::bn::BigNum::from_hex_str(
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
    )
    .expect("n");
    let s = openssl::bn::BigNum::from_slice(&signature[32..]).expect("s");
    let mut flipped = openssl::bn::BigNum::new().expect("bn");
    flipped.checked_sub(&order, &s).expect("n - s");
    let mut malleated = signature[..32].to_vec();
    malleated.extend(flipped.to_vec_padded(32).expect("32 bytes"));
    let twin = format!("{input}.{}", b64(&malleated));
    assert_ne!(twin, proof);
    assert_eq!(env.client_token(&client, &[&proof]).await.status, 200);
    assert_refused(
        &env.client_token(&client, &[&twin]).await,
        400,
        "invalid_dpop_proof",
        "used before",
    );
    // And the other way round: the twin first, then the original.
    let proof = post_proof(&key, &env.htu("/token"));
    let (input, signature) = proof.rsplit_once('.').expect("jws");
    let signature = unb64(signature);
    let s = openssl::bn::BigNum::from_slice(&signature[32..]).expect("s");
    let mut flipped = openssl::bn::BigNum::new().expect("bn");
    flipped.checked_sub(&order, &s).expect("n - s");
    let mut malleated = signature[..32].to_vec();
    malleated.extend(flipped.to_vec_padded(32).expect("32 bytes"));
    let twin = format!("{input}.{}", b64(&malleated));
    let twin_answer = env.client_token(&client, &[&twin]).await;
    assert_clean(&twin_answer);
    if twin_answer.status == 200 {
        assert_refused(
            &env.client_token(&client, &[&proof]).await,
            400,
            "invalid_dpop_proof",
            "used before",
        );
    } else {
        // A verifier that insists on low-s refuses the twin as a bad signature.
        assert_refused(&twin_answer, 400, "invalid_dpop_proof", "signature");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_good_at_one_endpoint_only() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let app = env.app();
    let key = key();
    let (access, _) = env.bound_tokens(&app, &key).await;

    // Accepted at /token, then replayed at /par and /userinfo.
    let at_token = post_proof(&key, &env.htu("/token"));
    assert_eq!(env.client_token(&client, &[&at_token]).await.status, 200);
    let (_, challenge) = pkce();
    let par_form = [
        ("response_type", "code"),
        ("client_id", app.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    assert_refused(
        &env.post("/par", &par_form, &[&at_token], None).await,
        400,
        "invalid_dpop_proof",
        "htu",
    );
    assert_refused(
        &env.userinfo(&format!("DPoP {access}"), &[&at_token]).await,
        401,
        "invalid_dpop_proof",
        "htm",
    );
    let post_userinfo = env
        .http
        .post(env.url("/userinfo"))
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", &at_token)
        .send()
        .await
        .expect("post");
    assert_refused(
        &answer(post_userinfo).await,
        401,
        "invalid_dpop_proof",
        "htu",
    );

    // A /par proof at /token.
    let at_par = post_proof(&key, &env.htu("/par"));
    assert_eq!(
        env.post("/par", &par_form, &[&at_par], None).await.status,
        201
    );
    assert_refused(
        &env.client_token(&client, &[&at_par]).await,
        400,
        "invalid_dpop_proof",
        "htu",
    );

    // A GET /userinfo proof (with ath) at POST /userinfo, and at /token.
    let get_proof = key
        .proof("GET", &env.htu("/userinfo"), Some(&access), None, now())
        .expect("p");
    let post_userinfo = env
        .http
        .post(env.url("/userinfo"))
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", &get_proof)
        .send()
        .await
        .expect("post");
    assert_refused(
        &answer(post_userinfo).await,
        401,
        "invalid_dpop_proof",
        "htm",
    );
    assert_refused(
        &env.client_token(&client, &[&get_proof]).await,
        400,
        "invalid_dpop_proof",
        "htm",
    );
    // None of those refusals burnt it where it belongs.
    let info = env.userinfo(&format!("DPoP {access}"), &[&get_proof]).await;
    assert_eq!(info.status, 200, "{}", info.raw);
    env.assert_log_free_of(&[&at_token, &at_par, &get_proof, &access]);
}

/// HMAC-SHA256, for an HS256 proof made with a key anyone can read.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = openssl::pkey::PKey::hmac(key).expect("hmac key");
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).expect("signer");
    signer.update(data).expect("update");
    signer.sign_to_vec().expect("sign")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_confusion_is_refused() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let url = env.htu("/token");
    let ec = key();
    let rsa = ProofSigner::generate(Alg::Rs256).expect("rsa");

    // HS256 with the "public" symmetric key in the header: whoever reads it can sign.
    let secret = b"everyone can read this key";
    let header =
        json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(secret)}});
    let input = format!("{}.{}", b64_json(&header), b64_json(&claims(&url)));
    let hs256 = format!("{input}.{}", b64(&hmac_sha256(secret, input.as_bytes())));
    assert_refused(
        &env.client_token(&client, &[&hs256]).await,
        400,
        "invalid_dpop_proof",
        "alg",
    );
    // The same, with an oct key and alg ES256.
    let oct_es256 = ec
        .sign_with_header(
            &header_with(&ec, &[("jwk", json!({"kty": "oct", "k": b64(secret)}))]),
            &claims(&url),
        )
        .expect("p");
    let answer = env.client_token(&client, &[&oct_es256]).await;
    assert_refused(&answer, 400, "invalid_dpop_proof", "jwk");

    // alg ES256 over an RSA key (signed with the EC key; the RSA key's owner never signed).
    let es256_rsa_jwk = ec
        .sign_with_header(
            &header_with(&ec, &[("jwk", Value::Object(rsa.public_jwk().clone()))]),
            &claims(&url),
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&es256_rsa_jwk]).await,
        400,
        "invalid_dpop_proof",
        "does not fit the alg",
    );
    // alg RS256 over an EC key (signed by the RSA key).
    let rs256_ec_jwk = rsa
        .sign_with_header(
            &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": ec.public_jwk()}),
            &claims(&url),
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&rs256_ec_jwk]).await,
        400,
        "invalid_dpop_proof",
        "does not fit the alg",
    );
    // PS256 claimed for an RS256 signature.
    let ps256_claimed = rsa
        .sign_with_header(
            &json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": rsa.public_jwk()}),
            &claims(&url),
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&ps256_claimed]).await,
        400,
        "invalid_dpop_proof",
        "signature",
    );
    // Names that are almost ES256, and names that are not strings.
    for alg in [
        json!("ES256 "),
        json!(" ES256"),
        json!("es256"),
        json!("ES256\u{0000}"),
        json!("ＥＳ256"),
        json!(["ES256"]),
        json!(256),
        json!(null),
        json!("none"),
    ] {
        let proof = ec
            .sign_with_header(&header_with(&ec, &[("alg", alg.clone())]), &claims(&url))
            .expect("p");
        assert_refused(
            &env.client_token(&client, &[&proof]).await,
            400,
            "invalid_dpop_proof",
            "alg",
        );
    }
    // Keys of the right type but the wrong curve, and a point that is not on P-256.
    let mut p384 = ec.public_jwk().clone();
    p384.insert("crv".into(), json!("P-384"));
    let mut x25519 = Map::new();
    x25519.insert("kty".into(), json!("OKP"));
    x25519.insert("crv".into(), json!("X25519"));
    x25519.insert("x".into(), json!(b64(&[9u8; 32])));
    for (jwk, alg) in [(p384, "ES256"), (x25519, "EdDSA")] {
        let proof = ec
            .sign_with_header(
                &header_with(&ec, &[("alg", json!(alg)), ("jwk", Value::Object(jwk))]),
                &claims(&url),
            )
            .expect("p");
        assert_refused(
            &env.client_token(&client, &[&proof]).await,
            400,
            "invalid_dpop_proof",
            "does not fit the alg",
        );
    }
    let mut off_curve = ec.public_jwk().clone();
    off_curve.insert("x".into(), json!(b64(&[1u8; 32])));
    off_curve.insert("y".into(), json!(b64(&[2u8; 32])));
    let proof = ec
        .sign_with_header(
            &header_with(&ec, &[("jwk", Value::Object(off_curve))]),
            &claims(&url),
        )
        .expect("p");
    let answer = env.client_token(&client, &[&proof]).await;
    assert_refused(&answer, 400, "invalid_dpop_proof", "");
    assert!(
        answer.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("jwk") || d.contains("signature")),
        "{}",
        answer.raw
    );
    env.assert_healthy().await;
}

/// A number of `bits` bits (odd, top bit set, `top` its first byte) for a fake RSA
/// public key: nothing signs with it, it only has to look like one.
fn fake_rsa_number(bits: usize, top: u8) -> String {
    let mut bytes = vec![0xA5u8; bits / 8];
    bytes[0] = top | 0x80;
    *bytes.last_mut().expect("byte") |= 1;
    b64(&bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_keys_and_headers_are_refused_cheaply() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let url = env.htu("/token");
    let ec = key();
    let rsa_header = |n: String, e: String| json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "n": n, "e": e}});
    // 16384 bits fits in the 8 KiB limit: the size rule must refuse it before any math.
    let huge = ec
        .sign_with_header(
            &rsa_header(fake_rsa_number(16384, 0xC3), "AQAB".into()),
            &claims(&url),
        )
        .expect("p");
    assert!(huge.len() < sigil_dpop::MAX_PROOF_LEN, "{}", huge.len());
    let small = ec
        .sign_with_header(
            &rsa_header(fake_rsa_number(1024, 0xC3), "AQAB".into()),
            &claims(&url),
        )
        .expect("p");
    // A public exponent as long as the modulus makes verification as slow as signing.
    let huge_exponent = ec
        .sign_with_header(
            &rsa_header(fake_rsa_number(3072, 0xC3), fake_rsa_number(3072, 0x83)),
            &claims(&url),
        )
        .expect("p");
    let started = Instant::now();
    for _ in 0..20 {
        assert_refused(
            &env.client_token(&client, &[&huge]).await,
            400,
            "invalid_dpop_proof",
            "2048 to 4096 bits",
        );
        assert_refused(
            &env.client_token(&client, &[&small]).await,
            400,
            "invalid_dpop_proof",
            "2048 to 4096 bits",
        );
        let answer = env.client_token(&client, &[&huge_exponent]).await;
        assert_eq!(answer.status, 400, "{}", answer.raw);
        assert_eq!(answer.error(), "invalid_dpop_proof");
        assert_clean(&answer);
    }
    let spent = started.elapsed();
    assert!(
        spent < Duration::from_secs(20),
        "60 refusals of bad keys took {spent:?}"
    );

    // A proof just over 8 KiB: refused by length, not parsed.
    let padding = "A".repeat(3 * 1024);
    let long = format!("{padding}.{padding}.{padding}");
    assert_refused(
        &env.client_token(&client, &[&long]).await,
        400,
        "invalid_dpop_proof",
        "8 KiB",
    );
    // A 100 KB one is over the server's limit on headers: 431 before any handler.
    let padding = "A".repeat(33 * 1024);
    let long = format!("{padding}.{padding}.{padding}");
    let started = Instant::now();
    for _ in 0..20 {
        assert_refused(
            &env.client_token(&client, &[&long]).await,
            431,
            "invalid_request",
            "headers too large",
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // Deeply nested JSON inside the limit.
    let nested = format!("{}{}", "[".repeat(3000), "]".repeat(3000));
    let deep = format!(
        "{}.{}.AAAA",
        b64(nested.as_bytes()),
        b64_json(&claims(&url))
    );
    assert_refused(
        &env.client_token(&client, &[&deep]).await,
        400,
        "invalid_dpop_proof",
        "header",
    );
    // A 1 MB header is beyond what the HTTP server reads: refused before any handler
    // (431), or the connection is closed; either way the server lives on.
    let megabyte = "A".repeat(1024 * 1024);
    let sent = env
        .http
        .post(env.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .header("DPoP", &megabyte)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status(), 431, "{:?}", response.text().await);
    }
    env.assert_healthy().await;
    assert_eq!(env.fresh_client_token(&client, &ec).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_key_members_do_not_change_the_binding() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let url = env.htu("/token");
    let key = key();
    let other = self::key();
    let rsa = ProofSigner::generate(Alg::Rs256).expect("rsa");
    // kid, x5u and unknown members in the jwk, kid, jku and x5u beside it, all naming
    // another key: ignored, the token is bound to the jwk that signed.
    let mut decorated = key.public_jwk().clone();
    decorated.insert("kid".into(), json!(other.jkt()));
    decorated.insert("x5u".into(), json!("https://attacker.example/cert.pem"));
    decorated.insert("ext".into(), json!(true));
    let header = header_with(
        &key,
        &[
            ("jwk", Value::Object(decorated)),
            ("kid", json!(other.jkt())),
            ("jku", json!("https://attacker.example/jwks")),
            ("x5u", json!("https://attacker.example/cert.pem")),
        ],
    );
    let proof = key.sign_with_header(&header, &claims(&url)).expect("p");
    let answer = env.client_token(&client, &[&proof]).await;
    assert_clean(&answer);
    assert_eq!(answer.status, 200, "{}", answer.raw);
    let token = answer.body["access_token"].as_str().expect("token");
    assert_eq!(
        jwt_claims(token)["cnf"],
        json!({"jkt": key.jkt()}),
        "bound to the key that signed, whatever kid says"
    );
    // Members that contradict the use (another alg, an encryption key) or carry a chain
    // that is not one: refused as a key that cannot verify, never a 500.
    for (member, value) in [
        ("alg", json!("HS256")),
        ("use", json!("enc")),
        ("key_ops", json!(["encrypt"])),
        ("x5c", json!([b64(b"not a certificate")])),
    ] {
        let mut jwk = key.public_jwk().clone();
        jwk.insert(member.into(), value);
        let proof = key
            .sign_with_header(
                &header_with(&key, &[("jwk", Value::Object(jwk))]),
                &claims(&url),
            )
            .expect("p");
        let answer = env.client_token(&client, &[&proof]).await;
        assert_refused(&answer, 400, "invalid_dpop_proof", "jwk");
    }
    // A jwk that is another key than the one that signed: the signature fails.
    let proof = key
        .sign_with_header(
            &header_with(&key, &[("jwk", Value::Object(other.public_jwk().clone()))]),
            &claims(&url),
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&proof]).await,
        400,
        "invalid_dpop_proof",
        "signature",
    );
    // An RSA jwk with an extra private-looking member hidden under another name is fine;
    // one with d is refused (tested in dpop.rs); with k (symmetric) too.
    let mut with_k = rsa.public_jwk().clone();
    with_k.insert("k".into(), json!("c2VjcmV0"));
    let proof = rsa
        .sign_with_header(
            &json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": with_k}),
            &claims(&url),
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&proof]).await,
        400,
        "invalid_dpop_proof",
        "private key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_and_control_characters_in_claims() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let url = env.htu("/token");
    let key = key();
    let other = self::key();
    let signed = |signer: &ProofSigner, claims: &Value| signer.sign(claims).expect("proof");

    // A jti of control characters, quotes, RTL marks and emoji is an opaque string: it is
    // accepted once and then remembered like any other.
    let odd_jti = "\u{0}\u{1}\n\r\t'\"; DROP TABLE dpop_proofs; --\u{202e}🙂\u{fffd}";
    let mut odd = claims(&url);
    odd["jti"] = json!(odd_jti);
    let proof = signed(&key, &odd);
    let first = env.client_token(&client, &[&proof]).await;
    assert_eq!(first.status, 200, "{}", first.raw);
    assert_refused(
        &env.client_token(&client, &[&proof]).await,
        400,
        "invalid_dpop_proof",
        "used before",
    );
    // The same jti from another key is another proof.
    odd["iat"] = json!(now());
    assert_eq!(
        env.client_token(&client, &[&signed(&other, &odd)])
            .await
            .status,
        200
    );
    // 256 four-byte characters (1 KiB) pass, 257 do not; empty does not.
    let mut long = claims(&url);
    long["jti"] = json!("🙂".repeat(256));
    assert_eq!(
        env.client_token(&client, &[&signed(&key, &long)])
            .await
            .status,
        200
    );
    for jti in [json!("🙂".repeat(257)), json!(""), json!(7), json!(null)] {
        let mut bad = claims(&url);
        bad["jti"] = jti;
        assert_refused(
            &env.client_token(&client, &[&signed(&key, &bad)]).await,
            400,
            "invalid_dpop_proof",
            "jti",
        );
    }
    // A htu with unicode, a NUL, or a control character in the host.
    for htu in [
        url.replace("/token", "/tøken"),
        url.replace("/token", "/to%00ken"),
        url.replace("127.0.0.1", "127.0.0.1\u{0}.evil"),
        url.replace("127.0.0.1", "１２７.0.0.1.evil"),
    ] {
        let mut bad = claims(&url);
        bad["htu"] = json!(htu);
        assert_refused(
            &env.client_token(&client, &[&signed(&key, &bad)]).await,
            400,
            "invalid_dpop_proof",
            "htu",
        );
    }
    // URLs are parsed as browsers do (WHATWG): C0 controls and spaces at the ends, and tabs
    // and newlines anywhere, are dropped. What is left is this server's own URL, so the
    // signer meant it: accepted.
    for htu in [
        format!("{url}\u{0}"),
        format!(" {url}\u{1f}"),
        url.replace("/token", "/to\nk\ten"),
    ] {
        let mut odd = claims(&url);
        odd["htu"] = json!(htu);
        let answer = env.client_token(&client, &[&signed(&key, &odd)]).await;
        assert_eq!(answer.status, 200, "{htu:?}: {}", answer.raw);
    }
    // A nonce is ignored by a server that gives none, whatever it holds.
    let mut with_nonce = claims(&url);
    with_nonce["nonce"] = json!("\u{0}🙂\n");
    assert_eq!(
        env.client_token(&client, &[&signed(&key, &with_nonce)])
            .await
            .status,
        200
    );
    for nonce in [json!(""), json!(42), json!({"n": 1})] {
        let mut bad = claims(&url);
        bad["nonce"] = nonce;
        assert_refused(
            &env.client_token(&client, &[&signed(&key, &bad)]).await,
            400,
            "invalid_dpop_proof",
            "nonce",
        );
    }
    env.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htu_tricks_against_a_named_issuer() {
    let issuer = "http://sigil.attacks.test";
    let env = Env::start(TestDb::sqlite(), &["--issuer", issuer]);
    let client = env.service();
    let key = key();
    let with_htu = |htu: &str| {
        let mut claims = claims(issuer);
        claims["htu"] = json!(htu);
        key.sign(&claims).expect("proof")
    };
    for htu in [
        "http://evil@sigil.attacks.test/token",
        "http://sigil.attacks.test:evil@evil.example/token",
        "http://sigil.attacks.test@evil.example/token",
        "http://sigil.attacks.test:8443/token",
        "https://sigil.attacks.test/token",
        "http://sigil.attacks.test./token",
        "http://sigil.attacks.test.evil.example/token",
        "http://sigil.attacks.test\\@evil.example/token",
        "http://sigil.attacks.test/TOKEN",
        "http://sigil.attacks.test/token/",
        "http://sigil.attacks.test//token",
        "http://sigil.attacks.test/token;x",
        "http://sigil.attacks.test/%74oken",
        "http://sigil.attacks.test/token%2f..%2fpar",
        "http://sigil.attacks.test/token/%2e%2e/par",
        "sigil.attacks.test/token",
        "/token",
        "ftp://sigil.attacks.test/token",
        "",
    ] {
        assert_refused(
            &env.client_token(&client, &[&with_htu(htu)]).await,
            400,
            "invalid_dpop_proof",
            "htu",
        );
    }
    // What RFC 3986 §6.2.2 and §6.2.3 make the same URL passes: the case of scheme and
    // host, the default port, dot segments (also percent-encoded), query and fragment.
    for htu in [
        "HTTP://SIGIL.Attacks.TEST/token",
        "http://sigil.attacks.test:80/token",
        "http://sigil.attacks.test/par/../token",
        "http://sigil.attacks.test/x/%2e%2e/token",
        "http://sigil.attacks.test/token?x=1",
        "http://sigil.attacks.test/token#f",
    ] {
        let answer = env.client_token(&client, &[&with_htu(htu)]).await;
        assert_eq!(answer.status, 200, "{htu}: {}", answer.raw);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iat_edge_cases() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let url = env.htu("/token");
    let key = key();
    let with_iat = |iat: Value| {
        let mut claims = claims(&url);
        claims["iat"] = iat;
        key.sign(&claims).expect("proof")
    };
    // Not a number at all, or not one a date can be.
    for iat in [
        json!("1700000000"),
        json!(null),
        json!(true),
        json!([now()]),
        json!(1e308),
        json!(-1e308),
        json!(1e15),
        json!(u64::MAX),
    ] {
        assert_refused(
            &env.client_token(&client, &[&with_iat(iat.clone())]).await,
            400,
            "invalid_dpop_proof",
            "numeric iat",
        );
    }
    // Numbers outside the window.
    for iat in [
        json!(-1),
        json!(0),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(now() + 40),
        json!(now() - 310),
    ] {
        assert_refused(
            &env.client_token(&client, &[&with_iat(iat.clone())]).await,
            400,
            "invalid_dpop_proof",
            "iat",
        );
    }
    // A fraction is dropped; the window's edges are inside.
    for iat in [
        json!(now() as f64 + 0.75),
        json!(now() + 29),
        json!(now() - 298),
    ] {
        let answer = env.client_token(&client, &[&with_iat(iat.clone())]).await;
        assert_eq!(answer.status, 200, "{iat}: {}", answer.raw);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_forged_old_or_from_elsewhere_are_refused() {
    let env = Env::start(TestDb::sqlite(), &["--dpop-nonce"]);
    let elsewhere = Env::start(TestDb::sqlite(), &["--dpop-nonce"]);
    let client = env.service();
    let far_client = elsewhere.service();
    let url = env.htu("/token");
    let key = key();
    let nonce_of = |answer: &Answer| answer.header("dpop-nonce").pop().expect("DPoP-Nonce");
    let with_nonce = |nonce: Value| {
        let mut claims = claims(&url);
        claims["nonce"] = nonce;
        key.sign(&claims).expect("proof")
    };

    // Another server's nonce (another key): a fine nonce, not this server's.
    let theirs = nonce_of(&elsewhere.fresh_client_token(&far_client, &key).await);
    let answer = env
        .client_token(&client, &[&with_nonce(json!(theirs))])
        .await;
    assert_refused(&answer, 400, "use_dpop_nonce", "nonce");
    let ours = nonce_of(&answer);
    assert_ne!(ours, theirs);

    // Nonces made with this server's own key (read from its keys directory) for other
    // periods: the one before is good, older or later ones are not.
    let secret: [u8; 32] = std::fs::read(env.setup.keys().join("dpop-nonce.key"))
        .expect("nonce key")
        .try_into()
        .expect("32 bytes");
    let nonce_key =
        sigil_core::dpop::NonceKey::new(&secret, sigil_core::dpop::NONCE_PERIOD).expect("key");
    let period = sigil_core::dpop::NONCE_PERIOD;
    let at = now();
    assert!(
        [at, at - period]
            .iter()
            .any(|t| nonce_key.current(*t).as_deref() == Some(ours.as_str())),
        "the nonce key read is the server's"
    );
    let previous = nonce_key.current(at - period).expect("nonce");
    let answer = env
        .client_token(&client, &[&with_nonce(json!(previous))])
        .await;
    assert_eq!(answer.status, 200, "the previous period's nonce is good");
    for (what, nonce) in [
        ("two periods old", nonce_key.current(at - 2 * period)),
        ("a day old", nonce_key.current(at - 86_400)),
        ("a later period's", nonce_key.current(at + 2 * period)),
        ("of period i64::MIN", nonce_key.current(i64::MIN)),
    ] {
        let answer = env
            .client_token(&client, &[&with_nonce(json!(nonce.expect("nonce")))])
            .await;
        assert_eq!(answer.error(), "use_dpop_nonce", "{what}: {}", answer.raw);
        assert_refused(&answer, 400, "use_dpop_nonce", "nonce");
        assert!(!answer.header("dpop-nonce").is_empty(), "{what}");
    }
    let raw = unb64(&ours);
    let mut zeroed_mac = raw.clone();
    zeroed_mac[8..].fill(0);
    let mut flipped = raw.clone();
    flipped[0] ^= 0x80;
    for nonce in [
        json!(&ours[..ours.len() - 1]),
        json!(format!("{ours}A")),
        json!(b64(&zeroed_mac)),
        json!(b64(&flipped)),
        json!(format!("{ours}\u{0}")),
        json!(format!("Α{}", &ours[1..])),
        json!("🙂".repeat(32)),
    ] {
        assert_refused(
            &env.client_token(&client, &[&with_nonce(nonce)]).await,
            400,
            "use_dpop_nonce",
            "nonce",
        );
    }
    assert_refused(
        &env.client_token(&client, &[&with_nonce(json!(12345))])
            .await,
        400,
        "invalid_dpop_proof",
        "nonce",
    );
    // The current nonce still works after all that.
    let good = with_nonce(json!(nonce_key.current(now()).expect("nonce")));
    assert_eq!(env.client_token(&client, &[&good]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_cannot_be_downgraded_or_moved() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let app = env.app();
    let key = key();
    let stranger = self::key();
    let userinfo = env.htu("/userinfo");
    let (access, refresh) = env.bound_tokens(&app, &key).await;
    let (other_access, _) = env.bound_tokens(&app, &key).await;
    let proof_for = |signer: &ProofSigner, token: &str| {
        signer
            .proof("GET", &userinfo, Some(token), None, now())
            .expect("proof")
    };

    // As Bearer, in the header or in a form body.
    assert_refused(
        &env.userinfo(&format!("Bearer {access}"), &[]).await,
        401,
        "invalid_token",
        "DPoP-bound",
    );
    assert_refused(
        &env.userinfo(&format!("Bearer {access}"), &[&proof_for(&key, &access)])
            .await,
        401,
        "invalid_token",
        "DPoP-bound",
    );
    let in_body = env
        .http
        .post(env.url("/userinfo"))
        .form(&[("access_token", access.as_str())])
        .send()
        .await
        .expect("post");
    assert_refused(&answer(in_body).await, 401, "invalid_token", "DPoP-bound");
    // A good proof of the right key, made for another token of the same key (ath).
    assert_refused(
        &env.userinfo(
            &format!("DPoP {access}"),
            &[&proof_for(&key, &other_access)],
        )
        .await,
        401,
        "invalid_dpop_proof",
        "ath",
    );
    // A proof of another key, with the right ath.
    assert_refused(
        &env.userinfo(&format!("DPoP {access}"), &[&proof_for(&stranger, &access)])
            .await,
        401,
        "invalid_dpop_proof",
        "bound to",
    );
    // An ath of the token with trailing white space, or in padded base64.
    let mut padded = json!({"jti": "pad", "htm": "GET", "htu": userinfo, "iat": now()});
    padded["ath"] = json!(format!("{}=", sigil_dpop::access_token_hash(&access)));
    assert_refused(
        &env.userinfo(&format!("DPoP {access}"), &[&key.sign(&padded).expect("p")])
            .await,
        401,
        "invalid_dpop_proof",
        "ath",
    );
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let info = env
        .userinfo(&format!("dpop {access}"), &[&proof_for(&key, &access)])
        .await;
    assert_eq!(info.status, 200, "{}", info.raw);

    // A public client's bound refresh token without a proof: refused, and not spent.
    let refresh_with = |proofs: Vec<String>| {
        let (app, refresh) = (app.clone(), refresh.clone());
        let env = &env;
        async move {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            env.post(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh),
                    ("client_id", &app),
                ],
                &proofs,
                None,
            )
            .await
        }
    };
    assert_refused(
        &refresh_with(vec![]).await,
        400,
        "invalid_dpop_proof",
        "bound to a DPoP key",
    );
    assert_refused(
        &refresh_with(vec![post_proof(&stranger, &env.htu("/token"))]).await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    let refreshed = refresh_with(vec![post_proof(&key, &env.htu("/token"))]).await;
    assert_eq!(
        refreshed.status, 200,
        "the rightful holder is not locked out: {}",
        refreshed.raw
    );
    assert_eq!(
        jwt_claims(refreshed.body["access_token"].as_str().expect("at"))["cnf"]["jkt"],
        key.jkt()
    );

    // Introspection: another client learns nothing; the token's audience learns the cnf.
    let issued_to = env.service_for("https://api.example.com", &[]);
    let bystander = env.service_for("https://other.example.com", &[]);
    let audience = env.service_for("https://api.example.com", &[]);
    let bound = env.fresh_client_token(&issued_to, &key).await;
    let service_token = bound.body["access_token"].as_str().expect("token");
    let introspect = |by: &(String, String), token: &str| {
        let (by, token) = (by.clone(), token.to_string());
        let env = &env;
        async move {
            env.post(
                "/introspect",
                &[("token", &token)],
                &[],
                Some((&by.0, &by.1)),
            )
            .await
        }
    };
    for token in [service_token, access.as_str(), refresh.as_str()] {
        let seen = introspect(&bystander, token).await;
        assert_eq!(seen.status, 200, "{}", seen.raw);
        assert_eq!(seen.body["active"], false, "{}", seen.raw);
        assert!(seen.body.get("cnf").is_none(), "{}", seen.raw);
    }
    let seen = introspect(&audience, service_token).await;
    assert_eq!(seen.body["active"], true, "{}", seen.raw);
    assert_eq!(seen.body["cnf"], json!({"jkt": key.jkt()}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_bound_code_is_useless_with_another_key() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let app = env.app();
    let key = key();
    let thief = self::key();
    let token_url = env.htu("/token");

    // The thief has the code and even the verifier, but not the key.
    let (code, verifier) = env.code(&app, &[("dpop_jkt", key.jkt())]).await;
    assert_refused(
        &env.exchange(&app, &code, &verifier, &[&post_proof(&thief, &token_url)])
            .await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    assert_refused(
        &env.exchange(&app, &code, &verifier, &[]).await,
        400,
        "invalid_dpop_proof",
        "dpop_jkt",
    );
    // A proof whose header names the thief's key beside the right thumbprint as kid.
    let mut claims = claims(&token_url);
    claims["jkt"] = json!(key.jkt());
    let decorated = thief
        .sign_with_header(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": thief.public_jwk(), "kid": key.jkt()}),
            &claims,
        )
        .expect("p");
    assert_refused(
        &env.exchange(&app, &code, &verifier, &[&decorated]).await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    // The rightful client still gets its tokens: the thief's tries did not spend the code.
    let tokens = env
        .exchange(&app, &code, &verifier, &[&post_proof(&key, &token_url)])
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.raw);
    assert_eq!(
        jwt_claims(tokens.body["access_token"].as_str().expect("at"))["cnf"]["jkt"],
        key.jkt()
    );

    // Bound at PAR; a dpop_jkt added to the front-channel request does not rebind it.
    let (verifier, challenge) = pkce();
    let pushed = env
        .post(
            "/par",
            &[
                ("response_type", "code"),
                ("client_id", &app),
                ("redirect_uri", CALLBACK),
                ("scope", "openid"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
            &[&post_proof(&key, &env.htu("/par"))],
            None,
        )
        .await;
    assert_eq!(pushed.status, 201, "{}", pushed.raw);
    assert_clean(&pushed);
    let mut authorize = url::Url::parse(&env.url("/authorize")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &app)
        .append_pair(
            "request_uri",
            pushed.body["request_uri"].as_str().expect("uri"),
        )
        .append_pair("dpop_jkt", thief.jkt());
    let code = sign_in(env.base(), authorize.as_str()).await;
    assert_refused(
        &env.exchange(&app, &code, &verifier, &[&post_proof(&thief, &token_url)])
            .await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    let tokens = env
        .exchange(&app, &code, &verifier, &[&post_proof(&key, &token_url)])
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_headers_on_other_endpoints_change_nothing() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let app = env.app();
    let key = key();
    let token = env.fresh_client_token(&client, &key).await;
    let access = token.body["access_token"].as_str().expect("token");
    // A good /token proof, shown to every other endpoint first.
    let proof = post_proof(&key, &env.htu("/token"));
    let headers = [proof.as_str(), "garbage", "a.b.c"];
    for dpop in headers {
        for (path, form) in [
            ("/introspect", vec![("token", access)]),
            ("/revoke", vec![("token", "not-a-token")]),
        ] {
            let response = env
                .http
                .post(env.url(path))
                .basic_auth(&client.0, Some(&client.1))
                .header("DPoP", dpop)
                .form(&form)
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), 200, "{path}");
        }
        for path in [
            "/jwks.json",
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/healthz",
        ] {
            let response = env
                .http
                .get(env.url(path))
                .header("DPoP", dpop)
                .send()
                .await
                .expect("get");
            assert_eq!(response.status(), 200, "{path}");
        }
        let (_, challenge) = pkce();
        let response = env
            .http
            .get(authorize_url(env.base(), &app, &challenge, &[]))
            .header("DPoP", dpop)
            .send()
            .await
            .expect("get");
        assert!(
            response.status().is_redirection() || response.status() == 200,
            "{}",
            response.status()
        );
    }
    // The token is still active (introspect did not revoke or bind anything) …
    let seen = env
        .post(
            "/introspect",
            &[("token", access)],
            &[],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(seen.body["active"], true);
    // … and the proof was not burnt on the way.
    let answer = env.client_token(&client, &[&proof]).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_dpop_headers_are_refused_cleanly() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let app = env.app();
    let key = key();
    let (access, _) = env.bound_tokens(&app, &key).await;
    let (_, challenge) = pkce();
    let par_form = vec![
        ("response_type", "code".to_string()),
        ("client_id", app.clone()),
        ("redirect_uri", CALLBACK.to_string()),
        ("scope", "openid".to_string()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256".to_string()),
    ];
    use reqwest::header::HeaderValue;
    let good = |path: &str, method: &str| {
        let token = (path == "/userinfo").then_some(access.as_str());
        key.proof(method, &env.htu(path), token, None, now())
            .expect("proof")
    };
    // (path, DPoP header values)
    let cases = |path: &str, method: &str| -> Vec<(&'static str, Vec<HeaderValue>)> {
        let proof = good(path, method);
        let value = |text: &str| HeaderValue::from_str(text).expect("header");
        vec![
            ("two", vec![value(&proof), value(&good(path, method))]),
            ("fifty", (0..50).map(|_| value("a.b.c")).collect()),
            (
                "invalid UTF-8",
                vec![HeaderValue::from_bytes(b"\xff\xfe\x80.\xc3\x28.\xa0\xa1").expect("obs-text")],
            ),
            (
                "UTF-8 outside ASCII",
                vec![HeaderValue::from_bytes("ü.ö.ä".as_bytes()).expect("obs-text")],
            ),
            ("white space", vec![value("   \t ")]),
            ("tab inside", vec![value(&proof.replacen('.', ".\t", 1))]),
        ]
    };
    for (path, method) in [("/token", "POST"), ("/par", "POST"), ("/userinfo", "GET")] {
        for (what, values) in cases(path, method) {
            let mut request = match path {
                "/token" => env
                    .http
                    .post(env.url(path))
                    .basic_auth(&client.0, Some(&client.1))
                    .form(&[("grant_type", "client_credentials")]),
                "/par" => env.http.post(env.url(path)).form(&par_form),
                _ => env
                    .http
                    .get(env.url(path))
                    .header("Authorization", format!("DPoP {access}")),
            };
            for value in values {
                request = request.header("DPoP", value);
            }
            let answer = answer(request.send().await.expect("send")).await;
            let status = if path == "/userinfo" { 401 } else { 400 };
            assert_eq!(answer.status, status, "{path} {what}: {}", answer.raw);
            assert_eq!(
                answer.error(),
                "invalid_dpop_proof",
                "{path} {what}: {}",
                answer.raw
            );
            assert_clean(&answer);
        }
    }
    // More headers than the HTTP server reads: refused before any handler.
    let proof = good("/token", "POST");
    let mut request = env
        .http
        .post(env.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("grant_type", "client_credentials")]);
    for _ in 0..150 {
        request = request.header("DPoP", &proof);
    }
    if let Ok(response) = request.send().await {
        let status = response.status().as_u16();
        assert!(status == 431 || status == 400, "{status}");
    }
    env.assert_healthy().await;
    // After all that, the proof sent many times over was never accepted, so it still is.
    let answer = env.client_token(&client, &[&proof]).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn which_failures_burn_a_proof() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let client = env.service();
    let app = env.app();
    let key = key();
    let token_url = env.htu("/token");

    // Client authentication fails: nothing was done for anyone, the proof is unspent.
    let proof = post_proof(&key, &token_url);
    let wrong = (client.0.clone(), "wrong secret".to_string());
    let answer = env.client_token(&wrong, &[&proof]).await;
    assert_refused(&answer, 401, "invalid_client", "");
    assert!(!answer.header("www-authenticate").is_empty());
    // An unknown grant type, or one the client may not use: refused before the proof.
    let unknown = env
        .post(
            "/token",
            &[("grant_type", "urn:example:steal")],
            &[&proof],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_refused(&unknown, 400, "unsupported_grant_type", "");
    let not_allowed = env
        .post(
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            &[&proof],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_refused(&not_allowed, 400, "unauthorized_client", "");
    let answer = env.client_token(&client, &[&proof]).await;
    assert_eq!(answer.status, 200, "the proof is unspent: {}", answer.raw);

    // Past authentication, the proof is checked, but its use is recorded only once the
    // grant is good: a made-up code leaves it unspent, the real exchange spends it.
    let proof = post_proof(&key, &token_url);
    let (code, verifier) = env.code(&app, &[]).await;
    let bad_code = env
        .exchange(&app, "not-the-code", &verifier, &[&proof])
        .await;
    assert_refused(&bad_code, 400, "invalid_grant", "");
    let tokens = env.exchange(&app, &code, &verifier, &[&proof]).await;
    assert_eq!(tokens.status, 200, "the proof was unspent: {}", tokens.raw);
    assert_clean(&tokens);
    assert_refused(
        &env.client_token(&client, &[&proof]).await,
        400,
        "invalid_dpop_proof",
        "used before",
    );
    env.assert_log_free_of(&[&proof, tokens.body["access_token"].as_str().expect("at")]);
}
