//! Pushed authorization requests (RFC 9126) end to end against the real binary, over HTTP:
//! push → `/authorize?client_id&request_uri` → sign-in → consent → code → token, for a
//! confidential client (HTTP Basic) and a public one (PKCE, `client_id` only), and driven by
//! a real client library (openid-client v6, from npm, in `par_client/`). Negative cases: a reused, expired,
//! unknown or another client's `request_uri`; missing or wrong client authentication and
//! invalid parameters at `/par` (JSON 400/401 with the right codes, never a redirect); a
//! `request_uri` inside a push; a client that must push, and the server-wide flag; CORS.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::process::{free_port, Server, Setup};
use common::{hidden, jwt_claims, TestDb};
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, LOCATION, ORIGIN, WWW_AUTHENTICATE,
};
use reqwest::redirect::Policy;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sigil_core::par::REQUEST_URI_PREFIX;
use sigil_core::secret::{hash_for_storage, random_token};
use sigil_core::store::PushedRequest;
use std::collections::HashMap;

const PASSWORD: &str = "pushed correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const APP_ORIGIN: &str = "http://127.0.0.1:9";

struct Env {
    db: TestDb,
    _setup: Setup,
    server: Server,
    /// A confidential client and its secret.
    confidential: (String, String),
    /// A public client (PKCE, no secret), which lists `APP_ORIGIN` for CORS.
    public: String,
    /// A public client registered with --require-pushed-authorization-requests.
    must_push: String,
}

async fn env(serve: &[&str], server_env: &[(&str, &str)]) -> Env {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], serve, free_port(), server_env);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let add = |name: &str, extra: &[&str]| -> Value {
        let mut args = vec![
            "client",
            "add",
            "--name",
            name,
            "--redirect-uri",
            CALLBACK,
            "--scopes",
            "openid,profile,email",
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&setup.sigil(&args, None)).expect("json")
    };
    let confidential = add("Photo Printer", &[]);
    let public = add("Pocket App", &["--public", "--allowed-origin", APP_ORIGIN]);
    let must_push = add(
        "Strict App",
        &["--public", "--require-pushed-authorization-requests"],
    );
    let id = |v: &Value| v["client_id"].as_str().expect("client_id").to_string();
    Env {
        confidential: (
            id(&confidential),
            confidential["client_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        ),
        public: id(&public),
        must_push: id(&must_push),
        db,
        _setup: setup,
        server,
    }
}

/// A browser: keeps cookies, does not follow redirects on its own.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location on {}", response.status()))
        .to_str()
        .expect("ascii")
        .to_string()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// How a push authenticates.
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Body,
}

/// The answer of a push: status, headers, JSON body.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

impl Env {
    fn base(&self) -> &str {
        &self.server.base
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base())
        } else {
            location.to_string()
        }
    }

    async fn push(&self, auth: Auth<'_>, form: &[(&str, &str)]) -> Reply {
        let request = reqwest::Client::new()
            .post(format!("{}/par", self.base()))
            .form(form);
        let request = match auth {
            Auth::Basic(id, secret) => request.basic_auth(id, Some(secret)),
            Auth::Body => request,
        };
        let response = request.send().await.expect("push");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            json: response.json().await.expect("a JSON answer"),
        }
    }

    /// A valid push of the code flow for `client_id` (add its authentication yourself),
    /// with `extra` parameters beside the usual ones.
    fn request<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid profile email"),
            ("state", "pushed-state"),
            ("nonce", "pushed-nonce"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
    }

    /// Pushes a valid request for the public client; its `request_uri`.
    async fn push_public(&self, challenge: &str) -> String {
        let reply = self
            .push(Auth::Body, &Self::request(&self.public, challenge))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.json);
        reply.json["request_uri"]
            .as_str()
            .expect("request_uri")
            .to_string()
    }

    fn authorize_url(&self, client_id: &str, request_uri: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.base())).expect("url");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", client_id)
                .append_pair("request_uri", request_uri);
            for (name, value) in extra {
                query.append_pair(name, value);
            }
        }
        url.to_string()
    }

    /// Follows the browser from `next` through the sign-in and consent forms to the
    /// client's callback; returns the callback URL.
    async fn sign_in(&self, browser: &reqwest::Client, mut next: String) -> String {
        for _ in 0..8 {
            if next.starts_with(APP_ORIGIN) {
                return next;
            }
            let response = browser.get(&next).send().await.expect("get");
            if response.status().is_redirection() {
                next = self.absolute(&location(&response));
                continue;
            }
            let url = response.url().clone();
            let status = response.status();
            let html = response.text().await.expect("html");
            assert_eq!(status, 200, "{url}: {html}");
            let mut form = vec![
                ("csrf".to_string(), hidden(&html, "csrf")),
                ("req".to_string(), hidden(&html, "req")),
            ];
            match url.path() {
                "/login" => {
                    form.push(("username".into(), "alice".into()));
                    form.push(("password".into(), PASSWORD.into()));
                }
                "/consent" => form.push(("decision".into(), "allow".into())),
                other => panic!("unexpected page {other}: {html}"),
            }
            let response = browser
                .post(format!("{}{}", self.base(), url.path()))
                .form(&form)
                .send()
                .await
                .expect("post");
            assert!(response.status().is_redirection(), "{}", response.status());
            next = self.absolute(&location(&response));
        }
        panic!("the flow did not reach the client");
    }

    /// `GET` in `browser`: an error page (400, HTML, no redirect); its text.
    async fn error_page(&self, browser: &reqwest::Client, url: &str) -> String {
        let response = browser.get(url).send().await.expect("authorize");
        assert_eq!(response.status(), 400, "an error page");
        assert!(
            response.headers().get(LOCATION).is_none(),
            "never a redirect"
        );
        response.text().await.expect("html")
    }

    async fn exchange(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Value {
        let request = reqwest::Client::new()
            .post(format!("{}/token", self.base()))
            .form(form);
        let request = match basic {
            Some((id, secret)) => request.basic_auth(id, Some(secret)),
            None => request,
        };
        let response = request.send().await.expect("token");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }

    /// Makes a pushed request look a minute old: it is taken from the database (as the
    /// authorization endpoint would) and put back with its expiry passed.
    async fn expire(&self, client_id: &str, request_uri: &str) {
        let database = sigil_server::store::Database::open(self.db.url(), &Default::default())
            .await
            .expect("database");
        let store = database.store();
        let reference = request_uri.strip_prefix(REQUEST_URI_PREFIX).expect("urn");
        let now = common::unix_now() as i64;
        let pushed = store
            .take_pushed_request(&hash_for_storage(reference), client_id, now)
            .await
            .expect("store")
            .expect("the pushed request");
        store
            .create_pushed_request(&PushedRequest {
                expires_at: now - 1,
                ..pushed
            })
            .await
            .expect("store");
        database.close().await;
    }
}

fn is_refusal(reply: &Reply, error: &str) -> bool {
    reply.json["error"] == error
        && reply.headers.get(LOCATION).is_none()
        && reply
            .headers
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_client_pushes_and_finishes_the_flow() {
    let env = env(&[], &[]).await;
    let (id, secret) = env.confidential.clone();
    let (verifier, challenge) = pkce();
    let reply = env
        .push(Auth::Basic(&id, &secret), &Env::request(&id, &challenge))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    assert_eq!(reply.json["expires_in"], 60);
    assert_eq!(
        reply
            .headers
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let request_uri = reply.json["request_uri"].as_str().expect("request_uri");
    let reference = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .expect("urn:ietf:params:oauth:request_uri:");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(reference).expect("base64url").len(),
        32
    );

    // The request is taken once: a reload of /authorize in the middle of signing in fails,
    // and the sign-in started goes on with the request kept in the session.
    let browser = browser();
    let authorize = env.authorize_url(&id, request_uri, &[]);
    let first = browser.get(&authorize).send().await.expect("authorize");
    let login = env.absolute(&location(&first));
    assert!(login.contains("/login?req="), "{login}");
    let reload = env.error_page(&browser, &authorize).await;
    assert!(reload.contains("invalid_request_uri"), "{reload}");
    let callback = env.sign_in(&browser, login).await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    let params = query_of(&callback);
    assert_eq!(params["state"], "pushed-state");
    assert_eq!(params["iss"], env.base());

    let tokens = env
        .exchange(
            &[
                ("grant_type", "authorization_code"),
                ("code", &params["code"]),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
            Some((&id, &secret)),
        )
        .await;
    let claims = jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["aud"], id.as_str());
    assert_eq!(claims["nonce"], "pushed-nonce");
    assert!(tokens["access_token"].is_string());

    // Reused in another browser: refused, on a page.
    let page = env.error_page(&self::browser(), &authorize).await;
    assert!(page.contains("invalid_request_uri"), "{page}");
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_pushes_with_its_id_alone() {
    let env = env(&[], &[]).await;
    let (verifier, challenge) = pkce();
    let request_uri = env.push_public(&challenge).await;
    // §4: beside client_id and request_uri, the query counts for nothing.
    let authorize = env.authorize_url(
        &env.public,
        &request_uri,
        &[
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ("scope", "openid"),
            ("state", "forged"),
            ("code_challenge", "forged"),
        ],
    );
    let browser = browser();
    let callback = env.sign_in(&browser, authorize).await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    let params = query_of(&callback);
    assert_eq!(params["state"], "pushed-state");
    let tokens = env
        .exchange(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &env.public),
                ("code", &params["code"]),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
    assert_eq!(tokens["scope"], "email openid profile");
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_request_uris_end_on_an_error_page() {
    let env = env(&[], &[]).await;
    let (_, challenge) = pkce();
    let browser = browser();

    let unknown = format!("{REQUEST_URI_PREFIX}{}", random_token(32));
    let page = env
        .error_page(&browser, &env.authorize_url(&env.public, &unknown, &[]))
        .await;
    assert!(page.contains("invalid_request_uri"), "{page}");

    // Another client's: refused, and not used up for its own client.
    let request_uri = env.push_public(&challenge).await;
    let page = env
        .error_page(
            &browser,
            &env.authorize_url(&env.confidential.0, &request_uri, &[]),
        )
        .await;
    assert!(page.contains("invalid_request_uri"), "{page}");
    let own = browser
        .get(env.authorize_url(&env.public, &request_uri, &[]))
        .send()
        .await
        .expect("authorize");
    assert!(location(&own).starts_with("/login?req="));

    // Expired.
    let request_uri = env.push_public(&challenge).await;
    env.expire(&env.public, &request_uri).await;
    let page = env
        .error_page(&browser, &env.authorize_url(&env.public, &request_uri, &[]))
        .await;
    assert!(page.contains("invalid_request_uri"), "{page}");

    // Any other request_uri is a request object by reference: not supported, redirected.
    let mut url = url::Url::parse(&format!("{}/authorize", env.base())).expect("url");
    url.query_pairs_mut()
        .extend_pairs(Env::request(&env.public, &challenge))
        .append_pair("request_uri", "https://app.example.com/request.jwt");
    let response = browser.get(url.as_str()).send().await.expect("authorize");
    let to = location(&response);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert_eq!(query_of(&to)["error"], "request_uri_not_supported");
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pushes_get_json_errors() {
    let env = env(&[], &[]).await;
    let (id, secret) = env.confidential.clone();
    let (_, challenge) = pkce();
    let valid = Env::request(&id, &challenge);
    let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
        let mut form: Vec<(&str, &str)> =
            valid.iter().filter(|(n, _)| *n != name).copied().collect();
        if !value.is_empty() {
            form.push((name, value));
        }
        form
    };

    // Client authentication, as at /token.
    let reply = env.push(Auth::Body, &with("client_id", "")).await;
    assert_eq!(reply.status, 401);
    assert!(is_refusal(&reply, "invalid_client"), "{}", reply.json);
    assert!(reply.headers.contains_key(WWW_AUTHENTICATE));
    let reply = env.push(Auth::Basic(&id, "wrong secret"), &valid).await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let reply = env.push(Auth::Body, &valid).await;
    assert_eq!(
        (reply.status, reply.json["error"].as_str()),
        (401, Some("invalid_client")),
        "a confidential client must authenticate"
    );
    let reply = env
        .push(
            Auth::Basic(&id, &secret),
            &with("client_id", "someone-else"),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(is_refusal(&reply, "invalid_request"), "{}", reply.json);

    // The parameters, as /authorize checks them; errors come back, never redirected.
    for (form, status, error) in [
        (
            with("redirect_uri", "http://127.0.0.1:9/not-registered"),
            400,
            "invalid_request",
        ),
        (with("code_challenge", ""), 400, "invalid_request"),
        (
            with("code_challenge_method", "plain"),
            400,
            "invalid_request",
        ),
        (with("scope", "openid admin"), 400, "invalid_scope"),
        (
            with("response_type", "token"),
            400,
            "unsupported_response_type",
        ),
        (
            with("request", "eyJhbGciOiJub25lIn0.e30."),
            400,
            "request_not_supported",
        ),
        (
            with("request_uri", "urn:ietf:params:oauth:request_uri:abc"),
            400,
            "invalid_request",
        ),
        (
            with("resource", "https://elsewhere.example.com/"),
            400,
            "invalid_target",
        ),
    ] {
        let reply = env.push(Auth::Basic(&id, &secret), &form).await;
        assert_eq!(reply.status, status, "{form:?}: {}", reply.json);
        assert!(is_refusal(&reply, error), "{form:?}: {}", reply.json);
    }
    let mut repeated = valid.clone();
    repeated.push(("scope", "openid"));
    let reply = env.push(Auth::Basic(&id, &secret), &repeated).await;
    assert!(is_refusal(&reply, "invalid_request"), "{}", reply.json);

    // The form limits of every OAuth endpoint.
    let http = reqwest::Client::new();
    let large = "x".repeat(70 * 1024);
    let response = http
        .post(format!("{}/par", env.base()))
        .basic_auth(&id, Some(&secret))
        .form(&[("state", large.as_str())])
        .send()
        .await
        .expect("push");
    assert_eq!(response.status(), 413);
    let response = http
        .post(format!("{}/par", env.base()))
        .basic_auth(&id, Some(&secret))
        .json(&serde_json::json!({"client_id": id}))
        .send()
        .await
        .expect("push");
    assert_eq!(response.status(), 400);
    let response = http
        .get(format!("{}/par", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 405);
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_must_push_is_refused_a_plain_request() {
    let env = env(&[], &[]).await;
    let (_, challenge) = pkce();
    let browser = browser();
    let mut url = url::Url::parse(&format!("{}/authorize", env.base())).expect("url");
    url.query_pairs_mut()
        .extend_pairs(Env::request(&env.must_push, &challenge));
    let response = browser.get(url.as_str()).send().await.expect("authorize");
    let to = location(&response);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert_eq!(query_of(&to)["error"], "invalid_request");
    assert_eq!(query_of(&to)["state"], "pushed-state");

    let reply = env
        .push(Auth::Body, &Env::request(&env.must_push, &challenge))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let request_uri = reply.json["request_uri"].as_str().expect("request_uri");
    let callback = env
        .sign_in(
            &browser,
            env.authorize_url(&env.must_push, request_uri, &[]),
        )
        .await;
    assert!(query_of(&callback).contains_key("code"), "{callback}");

    // Other clients need not push on this server.
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", env.base()))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(
        discovery["pushed_authorization_request_endpoint"],
        format!("{}/par", env.base())
    );
    assert_eq!(discovery["require_pushed_authorization_requests"], false);
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_can_require_every_client_to_push() {
    // Through the environment variable, which stands for the flag.
    let env = env(
        &[],
        &[("SIGIL_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", "true")],
    )
    .await;
    let (_, challenge) = pkce();
    let browser = browser();
    let mut url = url::Url::parse(&format!("{}/authorize", env.base())).expect("url");
    url.query_pairs_mut()
        .extend_pairs(Env::request(&env.public, &challenge));
    let response = browser.get(url.as_str()).send().await.expect("authorize");
    let to = location(&response);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert_eq!(query_of(&to)["error"], "invalid_request");

    let request_uri = env.push_public(&challenge).await;
    let callback = env
        .sign_in(&browser, env.authorize_url(&env.public, &request_uri, &[]))
        .await;
    assert!(query_of(&callback).contains_key("code"), "{callback}");
    for path in ["openid-configuration", "oauth-authorization-server"] {
        let discovery: Value = reqwest::get(format!("{}/.well-known/{path}", env.base()))
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(discovery["require_pushed_authorization_requests"], true);
    }
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_apps_push_from_their_own_origin() {
    let env = env(&["--pushed-requests-max-per-client", "3"], &[]).await;
    let (_, challenge) = pkce();
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/par", env.base()))
        .header(ORIGIN, APP_ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight
            .headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok()),
        Some(APP_ORIGIN)
    );
    let push_from = |origin: &'static str, client_id: String| {
        let form: Vec<(String, String)> = Env::request(&client_id, &challenge)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        http.post(format!("{}/par", env.base()))
            .header(ORIGIN, origin)
            .form(&form)
            .send()
    };
    let response = push_from(APP_ORIGIN, env.public.clone())
        .await
        .expect("push");
    assert_eq!(response.status(), 201);
    assert_eq!(
        response
            .headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok()),
        Some(APP_ORIGIN)
    );
    // Another client does not list the origin: the browser may not read its answer.
    let response = push_from(APP_ORIGIN, env.must_push.clone())
        .await
        .expect("push");
    assert_eq!(response.status(), 201);
    assert!(response
        .headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());

    // The cap on one client's pushes in a minute (3 here): the fourth waits.
    push_from(APP_ORIGIN, env.public.clone())
        .await
        .expect("push");
    push_from(APP_ORIGIN, env.public.clone())
        .await
        .expect("push");
    let response = push_from(APP_ORIGIN, env.public.clone())
        .await
        .expect("push");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    env.server.stop();
}

/// openid-client (v6, npm) pushes the request itself (`buildAuthorizationUrlWithPAR`,
/// found through discovery), and redeems the code with its own checks (state, `iss`, ID
/// token and nonce). Skipped without npm, except under CI=true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_drives_a_pushed_request() {
    let Some(dir) = common::npm::install(
        "openid-client",
        "openid-client@6",
        "node_modules/openid-client/package.json",
        "the openid-client PAR test",
    ) else {
        return;
    };
    let env = env(&[], &[]).await;
    let (id, secret) = env.confidential.clone();
    let mut node = Node::run(
        &dir,
        include_str!("par_client/openid_client.mjs"),
        &[env.base(), &id, &secret, CALLBACK],
    );
    let started: Value = serde_json::from_str(&node.read_line()).expect("json");
    let authorize = started["authorize"].as_str().expect("authorize URL");
    let query = query_of(authorize);
    assert_eq!(
        query
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        ["client_id", "request_uri"].into(),
        "the library sends only the reference: {authorize}"
    );
    let callback = env.sign_in(&browser(), authorize.to_string()).await;
    node.write_line(&callback);
    let done: Value = serde_json::from_str(&node.read_line()).expect("json");
    assert_eq!(done["iss"], env.base());
    assert_eq!(done["aud"], id.as_str());
    assert_eq!(done["email"], "alice@example.com");
    assert_eq!(done["token_type"], "bearer");
    node.finish();
    env.server.stop();
}

/// A Node script run beside the npm packages it imports (written into their directory under
/// a name of its own, so that its imports resolve), spoken to a line at a time; killed and
/// removed when dropped.
struct Node {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    script: std::path::PathBuf,
}

impl Node {
    fn run(dir: &std::path::Path, text: &str, args: &[&str]) -> Self {
        use std::process::{Command, Stdio};
        let script = dir.join(format!(
            "run-{}.mjs",
            random_token(6).replace(['-', '_'], "x")
        ));
        std::fs::write(&script, text).expect("write the script");
        let mut child = Command::new("node")
            .arg(&script)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        Self {
            stdin: child.stdin.take(),
            stdout: std::io::BufReader::new(child.stdout.take().expect("stdout")),
            child,
            script,
        }
    }

    /// The next line the script prints; fails with its error output when it ends first.
    fn read_line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).expect("read from node") == 0 {
            let _ = self.child.wait();
            let mut errors = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut errors);
            }
            panic!("the Node script ended early: {errors}");
        }
        line.trim_end().to_string()
    }

    fn write_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to node");
        stdin.flush().expect("flush");
    }

    /// Closes the script's input and checks that it exits 0.
    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for node");
        assert!(status.success(), "the Node script exited with {status}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}
