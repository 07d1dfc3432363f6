//! DPoP (RFC 9449) end to end against the real binary: proofs made by `sigil_dpop`'s
//! `ProofSigner` (the npm test, `dpop_oauth4webapi.rs`, makes them with a client library
//! nobody here wrote).
//!
//! Covered: `client_credentials` with a proof (§5: `token_type: DPoP`, §6.1 `cnf.jkt`,
//! §6.2 introspection's `cnf`), without one (Bearer), and every refusal of §4.3 (wrong
//! `htm`, wrong `htu`, stale and future `iat`, a replayed `jti`, two `DPoP` headers, a
//! private key in the header, `alg: none`), a client that must use DPoP; the code flow with
//! `dpop_jkt` (§10) and with PAR (§10.1), a public client's refresh tokens bound to the key
//! (§5.2: refresh with another key or none fails), `/userinfo` with the DPoP scheme (§7.1,
//! `ath`, a bound token sent as Bearer refused); server nonces (§8); discovery (§5.1); and
//! with `SIGIL_TEST_DATABASE_URL`, a proof replayed at a second replica (§11.1).

mod common;

use common::flows::{self, code_of, pkce, sign_in_first_party};
use common::process::{free_port, Server, Setup};
use common::{jwt_claims, unix_now, TestDb};
use serde_json::{json, Value};
use sigil_dpop::{Alg, ProofSigner};

const PASSWORD: &str = "dpop correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// One Sigil with its database, and a plain HTTP client.
struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    http: reqwest::Client,
}

/// An answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
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

impl Env {
    fn start(db: TestDb, serve: &[&str]) -> Self {
        let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
        setup.sigil(&["migrate"], None);
        let server = Server::start_on(&setup, &[], serve, free_port(), &[]);
        Self {
            _db: db,
            setup,
            server,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    /// `sigil client add … --json`: the client id and secret, if any.
    fn add_client(&self, extra: &[&str]) -> (String, Option<String>) {
        let mut args = vec!["client", "add", "--json"];
        args.extend_from_slice(extra);
        let out: Value = serde_json::from_str(&self.setup.sigil(&args, None)).expect("json");
        (
            out["client_id"].as_str().expect("id").to_string(),
            out["client_secret"].as_str().map(str::to_string),
        )
    }

    /// A confidential client for `client_credentials`.
    fn service(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "--name",
            "Service",
            "--grant-types",
            "client_credentials",
            "--audience",
            "https://api.example.com",
        ];
        args.extend_from_slice(extra);
        let (id, secret) = self.add_client(&args);
        (id, secret.expect("a secret"))
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

    /// POSTs a form to `path` with the given `DPoP` headers and Basic credentials.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        proofs: &[&str],
        basic: Option<(&str, &str)>,
    ) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.base())).form(form);
        for proof in proofs {
            request = request.header("DPoP", *proof);
        }
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        answer(request.send().await.expect("post")).await
    }

    /// `client_credentials` for `(id, secret)` with these proofs.
    async fn client_token(&self, client: &(String, String), proofs: &[&str]) -> Answer {
        self.post(
            "/token",
            &[("grant_type", "client_credentials")],
            proofs,
            Some((&client.0, &client.1)),
        )
        .await
    }

    /// The authorization code grant for the public `app`, with these proofs.
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `GET /userinfo` with an `Authorization` header and proofs.
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
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

fn now() -> i64 {
    unix_now() as i64
}

fn key() -> ProofSigner {
    ProofSigner::generate(Alg::Es256).expect("key")
}

/// A proof for `POST url` now.
fn post_proof(key: &ProofSigner, url: &str) -> String {
    key.proof("POST", url, None, None, now()).expect("proof")
}

fn assert_refused(answer: &Answer, status: u16, error: &str, words: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.error(), error, "{}", answer.body);
    let description = answer.body["error_description"].as_str().unwrap_or("");
    assert!(
        description.contains(words),
        "{description:?} should say {words:?}"
    );
}

/// The code at the app's callback once carol has signed in from `authorize_url`.
async fn sign_in(base: &str, authorize_url: &str) -> String {
    code_of(&sign_in_first_party(base, authorize_url, CALLBACK, "carol", PASSWORD).await)
}

fn authorize_url(base: &str, client_id: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    flows::authorize_url(base, client_id, CALLBACK, challenge, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_dpop_and_every_refusal() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let token_url = env.url("/token");
    let client = env.service(&[]);
    let key = key();

    // Discovery lists the proof algorithms (§5.1).
    let metadata: Value = env
        .http
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "RS256", "PS256", "EdDSA"])
    );

    // With a proof: a DPoP token bound to the key.
    let bound = env
        .client_token(&client, &[&post_proof(&key, &token_url)])
        .await;
    assert_eq!(bound.status, 200, "{}", bound.body);
    assert_eq!(bound.body["token_type"], "DPoP");
    let token = bound.body["access_token"].as_str().expect("token");
    assert_eq!(jwt_claims(token)["cnf"], json!({"jkt": key.jkt()}));
    // Introspection reports the binding (§6.2).
    let introspection = env
        .post(
            "/introspect",
            &[("token", token)],
            &[],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(introspection.body["active"], true, "{}", introspection.body);
    assert_eq!(introspection.body["token_type"], "DPoP");
    assert_eq!(introspection.body["cnf"], json!({"jkt": key.jkt()}));

    // Without one: a Bearer token as before, unbound.
    let plain = env.client_token(&client, &[]).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert_eq!(plain.body["token_type"], "Bearer");
    assert!(
        jwt_claims(plain.body["access_token"].as_str().expect("token"))
            .get("cnf")
            .is_none()
    );

    // Every other key type works too.
    for alg in [Alg::Rs256, Alg::Ps256, Alg::EdDsa] {
        let other = ProofSigner::generate(alg).expect("key");
        let answer = env
            .client_token(&client, &[&post_proof(&other, &token_url)])
            .await;
        assert_eq!(answer.status, 200, "{alg:?}: {}", answer.body);
        let token = answer.body["access_token"].as_str().expect("token");
        assert_eq!(jwt_claims(token)["cnf"]["jkt"], other.jkt());
    }

    // §4.3 refusals, each `invalid_dpop_proof` with what was wrong.
    let wrong_method = key.proof("GET", &token_url, None, None, now()).expect("p");
    assert_refused(
        &env.client_token(&client, &[&wrong_method]).await,
        400,
        "invalid_dpop_proof",
        "htm",
    );
    let wrong_url = post_proof(&key, &env.url("/par"));
    assert_refused(
        &env.client_token(&client, &[&wrong_url]).await,
        400,
        "invalid_dpop_proof",
        "htu",
    );
    let other_host = post_proof(&key, "https://attacker.example/token");
    assert_refused(
        &env.client_token(&client, &[&other_host]).await,
        400,
        "invalid_dpop_proof",
        "htu",
    );
    let stale = key
        .proof("POST", &token_url, None, None, now() - 400)
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&stale]).await,
        400,
        "invalid_dpop_proof",
        "iat",
    );
    let future = key
        .proof("POST", &token_url, None, None, now() + 120)
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&future]).await,
        400,
        "invalid_dpop_proof",
        "iat",
    );
    let once = post_proof(&key, &token_url);
    assert_eq!(env.client_token(&client, &[&once]).await.status, 200);
    assert_refused(
        &env.client_token(&client, &[&once]).await,
        400,
        "invalid_dpop_proof",
        "used before",
    );
    let (a, b) = (post_proof(&key, &token_url), post_proof(&key, &token_url));
    assert_refused(
        &env.client_token(&client, &[&a, &b]).await,
        400,
        "invalid_dpop_proof",
        "one DPoP header",
    );
    let claims = json!({"jti": "x1", "htm": "POST", "htu": token_url, "iat": now()});
    let mut private = key.public_jwk().clone();
    private.insert("d".into(), json!("AAAA"));
    let with_private = key
        .sign_with_header(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
            &claims,
        )
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&with_private]).await,
        400,
        "invalid_dpop_proof",
        "private key",
    );
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()})),
        b64(&claims)
    );
    assert_refused(
        &env.client_token(&client, &[&unsigned]).await,
        400,
        "invalid_dpop_proof",
        "alg",
    );
    assert_refused(
        &env.client_token(&client, &[""]).await,
        400,
        "invalid_dpop_proof",
        "empty",
    );
    // A bad proof from an unauthenticated caller is an authentication failure first.
    let nobody = ("nobody".to_string(), "wrong".to_string());
    assert_eq!(
        env.client_token(&nobody, &[&post_proof(&key, &token_url)])
            .await
            .error(),
        "invalid_client"
    );

    // A client that must use DPoP (--require-dpop): no proof, no token.
    let strict = env.service(&["--require-dpop"]);
    assert_refused(
        &env.client_token(&strict, &[]).await,
        400,
        "invalid_dpop_proof",
        "DPoP-bound",
    );
    let answer = env
        .client_token(&strict, &[&post_proof(&key, &token_url)])
        .await;
    assert_eq!(answer.body["token_type"], "DPoP", "{}", answer.body);
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_binds_code_refresh_tokens_and_userinfo_to_the_key() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let app = env.app();
    let token_url = env.url("/token");
    let userinfo_url = env.url("/userinfo");
    let key = key();
    let stranger = self::key();

    // §10: dpop_jkt at /authorize binds the code to the key.
    let (verifier, challenge) = pkce();
    let code = sign_in(
        env.base(),
        &authorize_url(env.base(), &app, &challenge, &[("dpop_jkt", key.jkt())]),
    )
    .await;
    assert_refused(
        &env.exchange(&app, &code, &verifier, &[]).await,
        400,
        "invalid_dpop_proof",
        "dpop_jkt",
    );
    assert_refused(
        &env.exchange(
            &app,
            &code,
            &verifier,
            &[&post_proof(&stranger, &token_url)],
        )
        .await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    // A made-up code with a good proof costs no database write: the proof's use is
    // recorded only once the grant is good, so it still works afterwards.
    let proof = post_proof(&key, &token_url);
    let junk = env.exchange(&app, "made-up", &verifier, &[&proof]).await;
    assert_refused(&junk, 400, "invalid_grant", "invalid");
    let tokens = env.exchange(&app, &code, &verifier, &[&proof]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "DPoP");
    let access = tokens.body["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let refresh = tokens.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_eq!(jwt_claims(&access)["cnf"]["jkt"], key.jkt());

    // §7.1: userinfo wants the DPoP scheme and a proof of the key, with ath.
    let proof_for = |signer: &ProofSigner, token: &str| {
        signer
            .proof("GET", &userinfo_url, Some(token), None, now())
            .expect("proof")
    };
    let info = env
        .userinfo(&format!("DPoP {access}"), &[&proof_for(&key, &access)])
        .await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(info.body["sub"].is_string());
    let as_bearer = env.userinfo(&format!("Bearer {access}"), &[]).await;
    assert_eq!(as_bearer.status, 401);
    let challenges = as_bearer.header("www-authenticate");
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("Bearer") && c.contains("invalid_token")),
        "{challenges:?}"
    );
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("DPoP") && c.contains("algs=\"ES256 RS256 PS256 EdDSA\"")),
        "{challenges:?}"
    );
    let no_proof = env.userinfo(&format!("DPoP {access}"), &[]).await;
    assert_eq!(no_proof.status, 401);
    assert_eq!(no_proof.error(), "invalid_dpop_proof");
    assert!(no_proof
        .header("www-authenticate")
        .iter()
        .any(|c| c.starts_with("DPoP") && c.contains("error=\"invalid_dpop_proof\"")));
    let wrong_ath = env
        .userinfo(
            &format!("DPoP {access}"),
            &[&proof_for(&key, "another token")],
        )
        .await;
    assert_refused(&wrong_ath, 401, "invalid_dpop_proof", "ath");
    let wrong_key = env
        .userinfo(&format!("DPoP {access}"), &[&proof_for(&stranger, &access)])
        .await;
    assert_refused(&wrong_key, 401, "invalid_dpop_proof", "bound to");
    let post_proof_at_get = key
        .proof("POST", &userinfo_url, Some(&access), None, now())
        .expect("p");
    assert_refused(
        &env.userinfo(&format!("DPoP {access}"), &[&post_proof_at_get])
            .await,
        401,
        "invalid_dpop_proof",
        "htm",
    );
    let replayed = proof_for(&key, &access);
    assert_eq!(
        env.userinfo(&format!("DPoP {access}"), &[&replayed])
            .await
            .status,
        200
    );
    assert_refused(
        &env.userinfo(&format!("DPoP {access}"), &[&replayed]).await,
        401,
        "invalid_dpop_proof",
        "used before",
    );

    // §5.2: the public app's refresh token is bound to the key.
    let refresh_with = |proofs: Vec<String>, token: String| {
        let app = app.clone();
        let env = &env;
        async move {
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            env.post(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", &app),
                ],
                &proofs,
                None,
            )
            .await
        }
    };
    assert_refused(
        &refresh_with(vec![post_proof(&stranger, &token_url)], refresh.clone()).await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    assert_refused(
        &refresh_with(vec![], refresh.clone()).await,
        400,
        "invalid_dpop_proof",
        "bound to a DPoP key",
    );
    let refreshed = refresh_with(vec![post_proof(&key, &token_url)], refresh.clone()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "DPoP");
    let access = refreshed.body["access_token"].as_str().expect("access");
    assert_eq!(jwt_claims(access)["cnf"]["jkt"], key.jkt());
    let next = refreshed.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let again = refresh_with(vec![post_proof(&key, &token_url)], next).await;
    assert_eq!(
        again.status, 200,
        "the successor stays bound: {}",
        again.body
    );

    // A code without dpop_jkt, exchanged with a proof: bound from the exchange on.
    let (verifier, challenge) = pkce();
    let code = sign_in(
        env.base(),
        &authorize_url(env.base(), &app, &challenge, &[]),
    )
    .await;
    let tokens = env
        .exchange(
            &app,
            &code,
            &verifier,
            &[&post_proof(&stranger, &token_url)],
        )
        .await;
    assert_eq!(tokens.body["token_type"], "DPoP", "{}", tokens.body);
    let refresh = tokens.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    assert_refused(
        &refresh_with(vec![post_proof(&key, &token_url)], refresh).await,
        400,
        "invalid_grant",
        "another DPoP key",
    );

    // A malformed dpop_jkt is refused at /authorize, back at the app.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = browser
        .get(authorize_url(
            env.base(),
            &app,
            &challenge,
            &[("dpop_jkt", "short")],
        ))
        .send()
        .await
        .expect("get");
    let location = response.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(CALLBACK) && location.contains("error=invalid_request"),
        "{location}"
    );

    // An unbound token goes as Bearer only (§7.1: the DPoP scheme is for bound tokens).
    let (verifier, challenge) = pkce();
    let code = sign_in(
        env.base(),
        &authorize_url(env.base(), &app, &challenge, &[]),
    )
    .await;
    let plain = env.exchange(&app, &code, &verifier, &[]).await;
    assert_eq!(plain.body["token_type"], "Bearer", "{}", plain.body);
    let bearer = plain.body["access_token"].as_str().expect("access");
    assert_refused(
        &env.userinfo(&format!("DPoP {bearer}"), &[&proof_for(&key, bearer)])
            .await,
        401,
        "invalid_token",
        "not DPoP-bound",
    );
    assert_eq!(
        env.userinfo(&format!("Bearer {bearer}"), &[]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn par_binds_the_code_to_the_proof_key() {
    let env = Env::start(TestDb::sqlite(), &[]);
    let app = env.app();
    let par_url = env.url("/par");
    let key = key();
    let stranger = self::key();
    let (verifier, challenge) = pkce();
    let form = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("response_type", "code".to_string()),
            ("client_id", app.clone()),
            ("redirect_uri", CALLBACK.to_string()),
            ("scope", "openid offline_access".to_string()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
        ];
        form.extend(extra);
        form
    };
    let push = |form: Vec<(&'static str, String)>, proofs: Vec<String>| {
        let env = &env;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            env.post("/par", &form, &proofs, None).await
        }
    };
    // §10.1: dpop_jkt and the proof must agree.
    assert_refused(
        &push(
            form(vec![("dpop_jkt", stranger.jkt().to_string())]),
            vec![post_proof(&key, &par_url)],
        )
        .await,
        400,
        "invalid_dpop_proof",
        "dpop_jkt",
    );
    // A proof for the token endpoint is not one for /par.
    assert_refused(
        &push(form(vec![]), vec![post_proof(&key, &env.url("/token"))]).await,
        400,
        "invalid_dpop_proof",
        "htu",
    );
    let pushed = push(form(vec![]), vec![post_proof(&key, &par_url)]).await;
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let request_uri = pushed.body["request_uri"].as_str().expect("request_uri");
    let mut authorize = url::Url::parse(&env.url("/authorize")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &app)
        .append_pair("request_uri", request_uri);
    let code = sign_in(env.base(), authorize.as_str()).await;
    let token_url = env.url("/token");
    assert_refused(
        &env.exchange(
            &app,
            &code,
            &verifier,
            &[&post_proof(&stranger, &token_url)],
        )
        .await,
        400,
        "invalid_grant",
        "another DPoP key",
    );
    let tokens = env
        .exchange(&app, &code, &verifier, &[&post_proof(&key, &token_url)])
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(
        jwt_claims(tokens.body["access_token"].as_str().expect("token"))["cnf"]["jkt"],
        key.jkt()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_nonces_are_required_when_turned_on() {
    let env = Env::start(TestDb::sqlite(), &["--dpop-nonce"]);
    let app = env.app();
    let client = env.service(&[]);
    let token_url = env.url("/token");
    let key = key();

    // §8: the first proof has no nonce; the answer gives one.
    let first = env
        .client_token(&client, &[&post_proof(&key, &token_url)])
        .await;
    assert_refused(&first, 400, "use_dpop_nonce", "nonce");
    let nonce = first
        .header("dpop-nonce")
        .pop()
        .expect("a DPoP-Nonce header");
    let made_up = key
        .proof("POST", &token_url, None, Some("made-up"), now())
        .expect("p");
    assert_refused(
        &env.client_token(&client, &[&made_up]).await,
        400,
        "use_dpop_nonce",
        "nonce",
    );
    let with_nonce = key
        .proof("POST", &token_url, None, Some(&nonce), now())
        .expect("p");
    let tokens = env.client_token(&client, &[&with_nonce]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert!(
        !tokens.header("dpop-nonce").is_empty(),
        "a fresh nonce on success too"
    );

    // The same at userinfo, as a 401 with the DPoP challenge (§9).
    let (verifier, challenge) = pkce();
    let code = sign_in(
        env.base(),
        &authorize_url(env.base(), &app, &challenge, &[]),
    )
    .await;
    let proof = key
        .proof("POST", &token_url, None, Some(&nonce), now())
        .expect("p");
    let tokens = env.exchange(&app, &code, &verifier, &[&proof]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = tokens.body["access_token"].as_str().expect("access");
    let userinfo_url = env.url("/userinfo");
    let bare = key
        .proof("GET", &userinfo_url, Some(access), None, now())
        .expect("p");
    let refused = env.userinfo(&format!("DPoP {access}"), &[&bare]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.error(), "use_dpop_nonce");
    assert!(refused
        .header("www-authenticate")
        .iter()
        .any(|c| c.starts_with("DPoP") && c.contains("error=\"use_dpop_nonce\"")));
    let nonce = refused.header("dpop-nonce").pop().expect("nonce");
    let good = key
        .proof("GET", &userinfo_url, Some(access), Some(&nonce), now())
        .expect("p");
    let info = env.userinfo(&format!("DPoP {access}"), &[&good]).await;
    assert_eq!(info.status, 200, "{}", info.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_replayed_at_a_second_replica_is_refused() {
    let Some(db) = TestDb::postgres("dpop_replicas").await else {
        return;
    };
    // Replicas behind one public name share the issuer; each is reached at its own port.
    let issuer = "http://sigil.replicas.test";
    let env = Env::start(db, &["--issuer", issuer]);
    let second = Server::start_on(&env.setup, &[], &["--issuer", issuer], free_port(), &[]);
    let client = env.service(&[]);
    let key = key();
    let proof = post_proof(&key, &format!("{issuer}/token"));
    let first = env.client_token(&client, &[&proof]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replay = env
        .http
        .post(format!("{}/token", second.base))
        .basic_auth(&client.0, Some(&client.1))
        .header("DPoP", &proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("post");
    let replay = answer(replay).await;
    assert_refused(&replay, 400, "invalid_dpop_proof", "used before");
}
