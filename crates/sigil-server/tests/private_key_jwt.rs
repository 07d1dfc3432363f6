//! `private_key_jwt` client authentication (RFC 7523) end to end against the real binary.
//! Keys are made in the test with OpenSSL and assertions signed with the `jsonwebtoken`
//! crate, so nothing of Sigil's own JOSE code signs what Sigil verifies. The
//! authorization-code flow uses the `openidconnect` crate as the client; it has no
//! `private_key_jwt` of its own (its `AuthType` is Basic or the request body), so the
//! assertion goes in as two extra body parameters beside the `client_id` it sends.
//!
//! Covered: `client_credentials`, `authorization_code` and `refresh_token` with inline
//! keys (RS256, PS256, ES256, EdDSA) and with a `jwks_uri` served by a local HTTP server
//! whose requests are counted (a second request does not fetch again; a new `kid` fetches
//! once; a second unknown `kid` within the cool-down fetches nothing); `/introspect` and
//! `/revoke`; discovery. Refused: a replay (also across two replicas sharing PostgreSQL,
//! with `SIGIL_TEST_DATABASE_URL`), a wrong `aud`, an expired assertion, `exp` too far
//! ahead, no `jti`, `alg: none`, HS256, a key not in the set, `iss` ≠ `sub`, a secret from a
//! key client, an assertion from a secret client, an assertion beside Basic or a secret.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::flows::sign_in_first_party;
use common::process::{free_port, Server, Setup};
use common::{unix_now, TestDb};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const PASSWORD: &str = "key client correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A private key made for the test, its algorithm and `kid`, and its public JWK.
struct TestKey {
    encoding: EncodingKey,
    alg: Algorithm,
    kid: String,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    let rsa = Rsa::generate(2048).expect("rsa");
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec())});
    TestKey {
        encoding: EncodingKey::from_rsa_pem(&rsa.private_key_to_pem().expect("pem")).expect("key"),
        alg,
        kid: kid.into(),
        jwk,
    }
}

fn ec_key(kid: &str) -> TestKey {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    let ec = EcKey::generate(&group).expect("ec");
    let mut x = openssl::bn::BigNum::new().expect("bn");
    let mut y = openssl::bn::BigNum::new().expect("bn");
    let mut context = BigNumContext::new().expect("ctx");
    ec.public_key()
        .affine_coordinates(&group, &mut x, &mut y, &mut context)
        .expect("coordinates");
    let coordinate = |n: &openssl::bn::BigNum| b64(&n.to_vec_padded(32).expect("32 bytes"));
    let jwk =
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": coordinate(&x), "y": coordinate(&y)});
    let pem = PKey::from_ec_key(ec)
        .expect("pkey")
        .private_key_to_pem_pkcs8()
        .expect("pem");
    TestKey {
        encoding: EncodingKey::from_ec_pem(&pem).expect("key"),
        alg: Algorithm::ES256,
        kid: kid.into(),
        jwk,
    }
}

fn ed_key(kid: &str) -> TestKey {
    let key = PKey::generate_ed25519().expect("ed25519");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&key.raw_public_key().expect("raw"))});
    TestKey {
        encoding: EncodingKey::from_ed_pem(&key.private_key_to_pem_pkcs8().expect("pem"))
            .expect("key"),
        alg: Algorithm::EdDSA,
        kid: kid.into(),
        jwk,
    }
}

fn key_set(keys: &[&TestKey]) -> String {
    let keys: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
    json!({ "keys": keys }).to_string()
}

/// Claims a client would send: `iss` = `sub` = the client, `aud` the issuer, two minutes.
fn claims(client_id: &str, audience: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 120,
        "jti": sigil_core::secret::random_token(16),
    })
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

/// A JWK Set server on a loopback port: every request gets the current document, and is
/// counted.
struct KeyServer {
    url: String,
    document: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(document: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().expect("address")
        );
        let document = Arc::new(Mutex::new(document));
        let requests = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (document.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served.lock().expect("lock").clone();
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nCache-Control: max-age=600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            document,
            requests,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One Sigil with its database, and a plain HTTP client.
struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    http: reqwest::Client,
}

impl Env {
    fn start(db: TestDb) -> Self {
        let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
        setup.sigil(&["migrate"], None);
        let server = Server::start_on(
            &setup,
            &[],
            &["--jwks-uri-allow-loopback"],
            free_port(),
            &[],
        );
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

    /// `sigil client add … --json`, returning the client id (and secret, if any).
    fn add_client(&self, extra: &[&str]) -> (String, Option<String>) {
        let mut args = vec!["client", "add", "--json"];
        args.extend_from_slice(extra);
        let out: Value = serde_json::from_str(&self.setup.sigil(&args, None)).expect("json");
        (
            out["client_id"].as_str().expect("id").to_string(),
            out["client_secret"].as_str().map(str::to_string),
        )
    }

    /// A `private_key_jwt` client for `client_credentials`, with the keys in a file.
    fn add_key_client(&self, keys: &str) -> String {
        let file = self
            .setup
            .dir
            .path()
            .join(format!("jwks-{}.json", sigil_core::secret::random_token(6)));
        std::fs::write(&file, keys).expect("write jwks");
        let file = file.display().to_string();
        self.add_client(&[
            "--name",
            "Key service",
            "--grant-types",
            "client_credentials",
            "--audience",
            "https://api.example.com",
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            &file,
        ])
        .0
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base())).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.expect("post");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `client_credentials` with an assertion.
    async fn token_with(&self, assertion: &str) -> (u16, Value) {
        self.post(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion),
            ],
            None,
        )
        .await
    }
}

/// A refusal: `invalid_client` (401) whose description contains `words`, and never the
/// assertion itself.
fn assert_refused(answer: &(u16, Value), words: &str, assertion: &str) {
    let (status, body) = answer;
    assert_eq!(*status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains(words),
        "{words:?} not in {description:?}"
    );
    assert!(!description.contains(assertion), "the assertion is echoed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_inline_keys_and_every_refusal() {
    let env = Env::start(TestDb::sqlite());
    let rsa = rsa_key("rsa-1", Algorithm::RS256);
    let ec = ec_key("ec-1");
    let ed = ed_key("ed-1");
    let id = env.add_key_client(&key_set(&[&rsa, &ec, &ed]));
    let issuer = env.base().to_string();

    let metadata: Value = env
        .http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    for field in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        let methods = metadata[field].as_array().expect(field);
        assert!(methods.contains(&json!("private_key_jwt")), "{field}");
    }
    let algs = metadata["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .expect("algs");
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&json!(alg)), "{alg}");
    }
    assert!(!algs.contains(&json!("none")) && !algs.contains(&json!("HS256")));

    // Every key and algorithm, the token endpoint's URL as aud too.
    // The registered RSA key signs PS256 as well (its JWK names no alg).
    let rsa_ps = TestKey {
        encoding: rsa.encoding.clone(),
        alg: Algorithm::PS256,
        kid: rsa.kid.clone(),
        jwk: rsa.jwk.clone(),
    };
    for (key, aud) in [
        (&rsa, issuer.clone()),
        (&rsa_ps, issuer.clone()),
        (&ec, format!("{issuer}/token")),
        (&ed, issuer.clone()),
    ] {
        let assertion = sign(key, &claims(&id, &aud));
        let (status, body) = env.token_with(&assertion).await;
        assert_eq!(status, 200, "{:?}: {body}", key.alg);
        assert_eq!(body["token_type"], "Bearer");
        let access = common::jwt_claims(body["access_token"].as_str().expect("token"));
        assert_eq!(access["client_id"], id.as_str());
        assert_eq!(access["aud"], "https://api.example.com");
    }

    // A replay of an assertion that worked.
    let assertion = sign(&rsa, &claims(&id, &issuer));
    assert_eq!(env.token_with(&assertion).await.0, 200);
    assert_refused(&env.token_with(&assertion).await, "used before", &assertion);

    // Claims.
    let mut wrong_aud = claims(&id, "https://elsewhere.example");
    let bad = sign(&rsa, &wrong_aud);
    assert_refused(&env.token_with(&bad).await, "aud must name", &bad);
    wrong_aud["aud"] = json!(format!("{issuer}/introspect"));
    let bad = sign(&rsa, &wrong_aud);
    assert_refused(&env.token_with(&bad).await, "aud must name", &bad);
    let mut expired = claims(&id, &issuer);
    expired["iat"] = json!(unix_now() - 600);
    expired["exp"] = json!(unix_now() - 300);
    let bad = sign(&rsa, &expired);
    assert_refused(&env.token_with(&bad).await, "expired", &bad);
    let mut far = claims(&id, &issuer);
    far["exp"] = json!(unix_now() + 3600);
    let bad = sign(&rsa, &far);
    assert_refused(&env.token_with(&bad).await, "too far ahead", &bad);
    let mut no_jti = claims(&id, &issuer);
    no_jti.as_object_mut().expect("object").remove("jti");
    let bad = sign(&rsa, &no_jti);
    assert_refused(&env.token_with(&bad).await, "no jti", &bad);
    let mut other_iss = claims(&id, &issuer);
    other_iss["iss"] = json!("someone-else");
    let bad = sign(&rsa, &other_iss);
    assert_refused(&env.token_with(&bad).await, "iss and sub", &bad);

    // Algorithms and keys.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(&id, &issuer).to_string().as_bytes())
    );
    assert_refused(&env.token_with(&unsigned).await, "alg none", &unsigned);
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&id, &issuer),
        &EncodingKey::from_secret(b"some key the attacker picked, 32+ bytes"),
    )
    .expect("hs256");
    assert_refused(&env.token_with(&hmac).await, "shared secret", &hmac);
    let stranger = rsa_key("rsa-1", Algorithm::RS256);
    let bad = sign(&stranger, &claims(&id, &issuer));
    assert_refused(&env.token_with(&bad).await, "does not verify", &bad);
    let stranger = rsa_key("rsa-9", Algorithm::RS256);
    let bad = sign(&stranger, &claims(&id, &issuer));
    assert_refused(&env.token_with(&bad).await, "has not registered", &bad);

    // The key client with a secret, or its id alone.
    let (status, body) = env
        .post(
            "/token",
            &[("grant_type", "client_credentials")],
            Some((&id, "a guessed secret")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains("private_key_jwt"));
    let (status, _) = env
        .post(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", "a guessed secret"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 401);

    // A secret client sending an assertion signed with a key it never registered.
    let (secret_id, secret) = env.add_client(&["--name", "Secret service"]);
    let secret = secret.expect("a secret client");
    let bad = sign(&rsa, &claims(&secret_id, &issuer));
    assert_refused(
        &env.token_with(&bad).await,
        "does not authenticate with a client assertion",
        &bad,
    );

    // Two methods at once, or a client_id that is not the assertion's.
    let assertion = sign(&rsa, &claims(&id, &issuer));
    let with_assertion = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_assertion_type", ASSERTION_TYPE.to_string()),
            ("client_assertion", assertion.clone()),
        ];
        form.extend(extra);
        form
    };
    for (form, basic) in [
        (
            with_assertion(vec![]),
            Some((secret_id.as_str(), secret.as_str())),
        ),
        (
            with_assertion(vec![("client_secret", secret.clone())]),
            None,
        ),
        (with_assertion(vec![("client_id", secret_id.clone())]), None),
        (
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_assertion", assertion.clone()),
            ],
            None,
        ),
        (
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_assertion_type", "urn:example:saml".to_string()),
                ("client_assertion", assertion.clone()),
            ],
            None,
        ),
    ] {
        let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = env.post("/token", &borrowed, basic).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
    }
    // None of those used it up: with its own client_id beside it, it still works.
    let form = with_assertion(vec![("client_id", id.clone())]);
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = env.post("/token", &borrowed, None).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().expect("token").to_string();

    // Introspection and revocation, each with a fresh assertion (aud: the issuer, or the
    // endpoint's own URL).
    let mut at_introspection = claims(&id, &issuer);
    at_introspection["aud"] = json!(format!("{issuer}/introspect"));
    let introspect = |assertion: String| {
        let token = access_token.clone();
        let env = &env;
        async move {
            env.post(
                "/introspect",
                &[
                    ("token", token.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ],
                None,
            )
            .await
        }
    };
    let (status, body) = introspect(sign(&ec, &at_introspection)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["active"], true, "{body}");
    let (status, body) = env
        .post(
            "/revoke",
            &[
                ("token", access_token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                (
                    "client_assertion",
                    sign(&ed, &claims(&id, &issuer)).as_str(),
                ),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = introspect(sign(&rsa, &claims(&id, &issuer))).await;
    assert_eq!((status, &body["active"]), (200, &json!(false)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_at_a_jwks_uri_are_fetched_once_and_again_for_a_new_kid() {
    let env = Env::start(TestDb::sqlite());
    let first = rsa_key("2026-01", Algorithm::RS256);
    let second = ec_key("2026-02");
    let keys = KeyServer::start(key_set(&[&first])).await;
    let (id, secret) = env.add_client(&[
        "--name",
        "Published keys",
        "--grant-types",
        "client_credentials",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        &keys.url,
    ]);
    assert!(secret.is_none(), "a key client gets no secret");
    let issuer = env.base().to_string();
    assert_eq!(keys.requests(), 0, "nothing is fetched before it is needed");

    let (status, body) = env.token_with(&sign(&first, &claims(&id, &issuer))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests(), 1);
    let (status, body) = env.token_with(&sign(&first, &claims(&id, &issuer))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests(), 1, "the set is kept: no second fetch");

    // The client publishes a second key and signs with it: one fetch for the new kid.
    *keys.document.lock().expect("lock") = key_set(&[&first, &second]);
    let (status, body) = env.token_with(&sign(&second, &claims(&id, &issuer))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        keys.requests(),
        2,
        "an unknown kid fetches the set again, once"
    );
    let (status, body) = env.token_with(&sign(&second, &claims(&id, &issuer))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.requests(), 2);

    // A kid the set has never had, right after: refused, and no fetch within the cool-down.
    let stranger = rsa_key("2026-03", Algorithm::RS256);
    let bad = sign(&stranger, &claims(&id, &issuer));
    assert_refused(&env.token_with(&bad).await, "has not registered", &bad);
    let bad = sign(&rsa_key("2026-04", Algorithm::RS256), &claims(&id, &issuer));
    assert_refused(&env.token_with(&bad).await, "has not registered", &bad);
    assert_eq!(keys.requests(), 2, "unknown kids fetch at most every 30 s");
}

/// The callback URL the browser reaches once carol has signed in from `authorize_url`
/// (a first-party app: no consent page).
async fn sign_in(base: &str, authorize_url: &str) -> String {
    sign_in_first_party(base, authorize_url, CALLBACK, "carol", PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_and_refresh_with_the_openidconnect_crate() {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{
        AuthType, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
        PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };
    let env = Env::start(TestDb::sqlite());
    env.setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let key = ec_key("web-1");
    let keys = KeyServer::start(key_set(&[&key])).await;
    let (id, _) = env.add_client(&[
        "--name",
        "Key web app",
        "--redirect-uri",
        CALLBACK,
        "--first-party",
        "--token-endpoint-auth-method",
        "private_key_jwt",
        "--jwks-uri",
        &keys.url,
    ]);
    let issuer = env.base().to_string();
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(issuer.clone()).expect("issuer"),
        &env.http,
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(id.clone()), None)
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect"))
        .set_auth_type(AuthType::RequestBody);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let callback = sign_in(&issuer, url.as_str()).await;
    let query: std::collections::HashMap<String, String> = url::Url::parse(&callback)
        .expect("callback")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query.get("state"), Some(state.secret()));
    let code = query.get("code").expect("code").clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", sign(&key, &claims(&id, &issuer)))
        .request_async(&env.http)
        .await
        .expect("the code exchanged with a client assertion");
    let id_token = tokens.id_token().expect("an ID token");
    let id_claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the library validates the ID token");
    assert_eq!(id_claims.audiences()[0].as_str(), id);
    assert_eq!(keys.requests(), 1);

    // The refresh token, with a new assertion (aud: the token endpoint).
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("a refresh token"))
        .expect("token endpoint")
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param(
            "client_assertion",
            sign(&key, &claims(&id, &format!("{issuer}/token"))),
        )
        .request_async(&env.http)
        .await
        .expect("refreshed with a client assertion");
    assert!(!refreshed.access_token().secret().is_empty());
    // Without one, the key client cannot refresh.
    let refused = client
        .exchange_refresh_token(refreshed.refresh_token().expect("rotated"))
        .expect("token endpoint")
        .request_async(&env.http)
        .await;
    assert!(
        refused.is_err(),
        "a key client without its assertion is refused"
    );
    assert_eq!(
        keys.requests(),
        1,
        "the set was fetched once for the whole flow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_refused_by_another_replica_sharing_postgres() {
    let Some(db) =
        TestDb::postgres("a_replay_is_refused_by_another_replica_sharing_postgres").await
    else {
        return;
    };
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let issuer = "http://sigil.replicas.test";
    let replica = |port| Server::start_on(&setup, &[], &["--issuer", issuer], port, &[]);
    let (a, b) = (replica(free_port()), replica(free_port()));
    let key = rsa_key("shared", Algorithm::PS256);
    let file = setup.dir.path().join("jwks.json");
    std::fs::write(&file, key_set(&[&key])).expect("write");
    let out: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--json",
            "--name",
            "Replicated key client",
            "--grant-types",
            "client_credentials",
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            &file.display().to_string(),
        ],
        None,
    ))
    .expect("json");
    let id = out["client_id"].as_str().expect("id");
    let http = reqwest::Client::new();
    let assertion = sign(&key, &claims(id, issuer));
    let send = |base: String| {
        let http = http.clone();
        let assertion = assertion.clone();
        async move {
            let response = http
                .post(format!("{base}/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .expect("post");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = send(a.base.clone()).await;
    assert_eq!(status, 200, "{body}");
    let answer = send(b.base.clone()).await;
    assert_refused(&answer, "used before", &assertion);
    // And back on the first replica.
    assert_refused(&send(a.base.clone()).await, "used before", &assertion);
}
