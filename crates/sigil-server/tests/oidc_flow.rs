//! The browser flow end to end against the real binary: the `openidconnect` crate is the
//! client (discovery, PKCE, ID-token validation with nonce and at_hash, userinfo, refresh),
//! and a cookie-keeping HTTP client plays the browser through the real HTML forms.
//! Negative cases: PKCE missing, plain or wrong; replayed codes; unregistered redirect
//! URIs; CSRF; prompt=none; state echoed exactly. Native apps: a loopback redirect on any
//! port (RFC 8252 §7.3); OIDC rules: redirect_uri required with openid, id_token_hint,
//! request / request_uri refused (OIDC Core §3.1.2.1, §6).

mod common;

use common::process::{Server, Setup};
use common::{hidden, TestDb};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::Value;

const PASSWORD: &str = "browser correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const BYE: &str = "http://127.0.0.1:9/signed-out";

struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    client_id: String,
    client_secret: String,
}

async fn env(first_party: bool) -> Env {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--name",
            "Alice Example",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let mut args = vec![
        "client",
        "add",
        "--name",
        "Photo Printer",
        "--redirect-uri",
        CALLBACK,
        "--post-logout-redirect-uri",
        BYE,
        "--scopes",
        "openid,profile,email,offline_access",
        "--json",
    ];
    if first_party {
        args.push("--first-party");
    }
    let out: Value = serde_json::from_str(&setup.sigil(&args, None)).expect("json");
    Env {
        _db: db,
        setup,
        client_id: out["client_id"].as_str().expect("id").into(),
        client_secret: out["client_secret"].as_str().expect("secret").into(),
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

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
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

    /// Follows the browser flow from an authorize URL to the client's callback URL:
    /// the login form (and the consent form when shown), answering `allow`.
    async fn sign_in(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        decision: &str,
    ) -> String {
        self.sign_in_as(browser, authorize_url, decision, "alice")
            .await
    }

    /// [`Env::sign_in`] as `username` (whose password is `PASSWORD`). The flow ends at any
    /// loopback URL that is not this server: the client's callback, on whatever port.
    async fn sign_in_as(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        decision: &str,
        username: &str,
    ) -> String {
        let mut next = authorize_url.to_string();
        for _ in 0..8 {
            let is_this_server = next.starts_with(&format!("{}/", self.base()));
            if next.starts_with("http://127.0.0.1:") && !is_this_server {
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
            let form: Vec<(String, String)> = if url.path() == "/login" {
                assert!(
                    html.contains("Photo Printer"),
                    "the login page names the client"
                );
                vec![
                    ("csrf".into(), hidden(&html, "csrf")),
                    ("req".into(), hidden(&html, "req")),
                    ("username".into(), username.into()),
                    ("password".into(), PASSWORD.into()),
                ]
            } else if url.path() == "/consent" {
                assert!(
                    html.contains("Photo Printer") && html.contains("See your email address"),
                    "{html}"
                );
                vec![
                    ("csrf".into(), hidden(&html, "csrf")),
                    ("req".into(), hidden(&html, "req")),
                    ("decision".into(), decision.into()),
                ]
            } else {
                panic!("unexpected page {url}: {html}");
            };
            let response = browser
                .post(format!("{}{}", self.base(), url.path()))
                .form(&form)
                .send()
                .await
                .expect("post");
            assert!(
                response.status().is_redirection(),
                "{}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
            next = self.absolute(&location(&response));
        }
        panic!("the flow did not reach the client");
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.base())).expect("url");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", CALLBACK)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile email");
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_code_flow_with_a_real_client_library() {
    let env = env(false).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(env.base().to_string()).expect("issuer"),
        &http,
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(env.client_id.clone()),
        Some(ClientSecret::new(env.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = browser();
    let callback = env.sign_in(&browser, auth_url.as_str(), "allow").await;
    let params = query_of(&callback);
    assert_eq!(
        params.get("state"),
        Some(csrf_state.secret()),
        "state echoed exactly"
    );
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(env.base()),
        "RFC 9207 iss"
    );
    let code = params.get("code").expect("code").clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("the library validates the ID token");
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(&actual_hash, expected_hash);
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert!(claims.auth_time().is_some());

    let userinfo: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().to_owned(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );

    let refresh = tokens
        .refresh_token()
        .expect("offline_access: a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh");
    let new_id = refreshed.id_token().expect("a fresh ID token on refresh");
    let new_claims = new_id
        .claims(&verifier, |_: Option<&Nonce>| Ok(()))
        .expect("the refreshed ID token validates");
    assert_eq!(new_claims.subject(), claims.subject());
    assert_eq!(
        new_claims.auth_time(),
        claims.auth_time(),
        "auth_time is the original sign-in"
    );

    // Consent is remembered: a second authorization goes straight back with a code.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let again = env.authorize_url(&[
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "again"),
    ]);
    let response = browser.get(&again).send().await.expect("authorize");
    assert!(
        location(&response).starts_with(CALLBACK),
        "no login, no consent the second time"
    );

    // RP-initiated logout with id_token_hint ends the session and returns to the client.
    let hint = id_token.to_string();
    let mut logout = url::Url::parse(&format!("{}/logout", env.base())).expect("url");
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", &hint)
        .append_pair("post_logout_redirect_uri", BYE)
        .append_pair("state", "s t/&é");
    let response = browser.get(logout.as_str()).send().await.expect("logout");
    let back = location(&response);
    assert!(back.starts_with(BYE), "{back}");
    assert_eq!(
        query_of(&back).get("state").map(String::as_str),
        Some("s t/&é")
    );
    // Signed out: prompt=none now fails with login_required.
    let silent = env.authorize_url(&[
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
        ("state", "x"),
    ]);
    let response = browser.get(&silent).send().await.expect("authorize");
    assert_eq!(
        query_of(&location(&response))
            .get("error")
            .map(String::as_str),
        Some("login_required")
    );
    env.server.stop();
}

async fn code_for(env: &Env, browser: &reqwest::Client, challenge: &str) -> String {
    let url = env.authorize_url(&[
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("nonce", "n1"),
        ("state", "st"),
    ]);
    let callback = env.sign_in(browser, &url, "allow").await;
    query_of(&callback).get("code").expect("code").clone()
}

async fn exchange(env: &Env, code: &str, verifier: Option<&str>) -> (u16, Value) {
    exchange_at(env, code, verifier, CALLBACK).await
}

/// The code exchange, naming `redirect_uri` as the authorization request did.
async fn exchange_at(
    env: &Env,
    code: &str,
    verifier: Option<&str>,
    redirect_uri: &str,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let response = reqwest::Client::new()
        .post(format!("{}/token", env.base()))
        .basic_auth(&env.client_id, Some(&env.client_secret))
        .form(&form)
        .send()
        .await
        .expect("token");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_and_code_replay() {
    let env = env(true).await;
    let browser = browser();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();

    // Wrong verifier.
    let code = code_for(&env, &browser, challenge.as_str()).await;
    let (status, body) = exchange(
        &env,
        &code,
        Some("wrong-verifier-wrong-verifier-wrong-verifier-1234"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // No verifier.
    let (status, body) = exchange(&env, &code, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The right one, then a replay: refused, and the first exchange's tokens revoked.
    let (status, tokens) = exchange(&env, &code, Some(verifier.secret())).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = exchange(&env, &code, Some(verifier.secret())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let introspection: Value = reqwest::Client::new()
        .post(format!("{}/introspect", env.base()))
        .basic_auth(&env.client_id, Some(&env.client_secret))
        .form(&[("token", tokens["access_token"].as_str().expect("at"))])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(
        introspection["active"], false,
        "a replayed code revokes the tokens of the first exchange"
    );

    // Missing PKCE and plain PKCE are refused at the authorization endpoint.
    for extra in [
        vec![("state", "a&b")],
        vec![
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "plain"),
            ("state", "a&b"),
        ],
    ] {
        let response = browser
            .get(env.authorize_url(&extra))
            .send()
            .await
            .expect("authorize");
        let params = query_of(&location(&response));
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("invalid_request")
        );
        assert_eq!(params.get("state").map(String::as_str), Some("a&b"));
        assert_eq!(params.get("iss").map(String::as_str), Some(env.base()));
    }
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_redirects_csrf_and_prompt_none() {
    let env = env(false).await;
    let browser = browser();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();

    // An unregistered redirect URI: an error page, never a redirect.
    let mut url = url::Url::parse(&format!("{}/authorize", env.base())).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", &env.client_id)
        .append_pair("redirect_uri", "https://evil.example.com/cb")
        .append_pair("response_type", "code")
        .append_pair("scope", "openid")
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256");
    let response = browser.get(url.as_str()).send().await.expect("authorize");
    assert_eq!(response.status(), 400);
    assert!(response.headers().get(LOCATION).is_none());
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");

    // prompt=none without a session: login_required, state echoed exactly.
    let state = "xyz ü/?&=%";
    let silent = env.authorize_url(&[
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
        ("state", state),
    ]);
    let response = browser.get(&silent).send().await.expect("authorize");
    let params = query_of(&location(&response));
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("login_required")
    );
    assert_eq!(params.get("state").map(String::as_str), Some(state));

    // Login POST without a CSRF token, or with a wrong one: refused, nobody signed in.
    let url = env.authorize_url(&[
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let response = browser.get(&url).send().await.expect("authorize");
    let login = env.absolute(&location(&response));
    let html = browser
        .get(&login)
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    let req = hidden(&html, "req");
    for csrf in [None, Some("forged")] {
        let mut form = vec![
            ("req", req.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        if let Some(token) = csrf {
            form.push(("csrf", token));
        }
        let response = browser
            .post(format!("{}/login", env.base()))
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 403);
    }
    let response = browser.get(&silent).send().await.expect("authorize");
    assert_eq!(
        query_of(&location(&response))
            .get("error")
            .map(String::as_str),
        Some("login_required"),
        "still signed out"
    );

    // A wrong password: a generic message, the form again.
    let form = [
        ("csrf", hidden(&html, "csrf")),
        ("req", req.clone()),
        ("username", "alice".into()),
        ("password", "nope".into()),
    ];
    let response = browser
        .post(format!("{}/login", env.base()))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("Incorrect user name or password."));

    // Denying consent: access_denied back at the client.
    let callback = env.sign_in(&browser, &url, "deny").await;
    assert_eq!(
        query_of(&callback).get("error").map(String::as_str),
        Some("access_denied")
    );

    // Logout not tied to the session by an id_token_hint: a confirmation page first.
    let mut logout = url::Url::parse(&format!("{}/logout", env.base())).expect("url");
    logout
        .query_pairs_mut()
        .append_pair("client_id", &env.client_id)
        .append_pair("post_logout_redirect_uri", BYE)
        .append_pair("state", "bye");
    let response = browser.get(logout.as_str()).send().await.expect("logout");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("Sign out?"), "{html}");
    let response = browser.get(&silent).send().await.expect("authorize");
    assert_eq!(
        query_of(&location(&response))
            .get("error")
            .map(String::as_str),
        Some("consent_required"),
        "still signed in (consent was denied, so no code) until the sign-out is confirmed"
    );
    let form = [
        ("csrf", hidden(&html, "csrf")),
        ("client_id", hidden(&html, "client_id")),
        (
            "post_logout_redirect_uri",
            hidden(&html, "post_logout_redirect_uri"),
        ),
        ("state", hidden(&html, "state")),
    ];
    let response = browser
        .post(format!("{}/logout/confirm", env.base()))
        .form(&form)
        .send()
        .await
        .expect("confirm");
    assert_eq!(location(&response), format!("{BYE}?state=bye"));
    let response = browser.get(&silent).send().await.expect("authorize");
    assert_eq!(
        query_of(&location(&response))
            .get("error")
            .map(String::as_str),
        Some("login_required")
    );
    // An unregistered post-logout URI: an error page.
    let response = browser
        .get(format!(
            "{}/logout?client_id={}&post_logout_redirect_uri=https://evil.example.com/",
            env.base(),
            env.client_id
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 400);
    assert!(response.headers().get(LOCATION).is_none());

    // The session cookie is HttpOnly and SameSite=Lax.
    let response = self::browser().get(&url).send().await.expect("authorize");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.starts_with("sigil_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let _ = &env.setup;
    env.server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart() {
    let env = env(true).await;
    let browser = browser();
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    code_for(&env, &browser, challenge.as_str()).await;
    let Env {
        _db,
        setup,
        server,
        client_id,
        client_secret,
    } = env;
    server.stop();
    // A new process on the same database: the browser's session is still signed in.
    let server = Server::start(&setup);
    let env = Env {
        _db,
        setup,
        server,
        client_id,
        client_secret,
    };
    let silent = env.authorize_url(&[
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
    ]);
    let response = browser.get(&silent).send().await.expect("authorize");
    assert!(
        query_of(&location(&response)).contains_key("code"),
        "the session outlived the process: {}",
        location(&response)
    );
    env.server.stop();
}

/// An authorize URL for `env`'s client with PKCE, `state=st`, and `params` (which may hold
/// the `redirect_uri`, or leave it out).
fn authorize_with(env: &Env, challenge: &str, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", env.base())).expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &env.client_id)
            .append_pair("response_type", "code")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "st");
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// Signs `username` in through a loopback redirect on another port than the registered
/// one, exchanges the code and returns the ID token.
async fn id_token_via_port(env: &Env, browser: &reqwest::Client, username: &str) -> String {
    let port_used = "http://127.0.0.1:51004/callback";
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = authorize_with(
        env,
        challenge.as_str(),
        &[("redirect_uri", port_used), ("scope", "openid profile")],
    );
    let callback = env.sign_in_as(browser, &url, "allow", username).await;
    assert!(callback.starts_with(&format!("{port_used}?")), "{callback}");
    let code = query_of(&callback).get("code").expect("code").clone();
    // RFC 6749 §4.1.3: the token request repeats the URI used, port and all.
    let (status, body) = exchange_at(env, &code, Some(verifier.secret()), CALLBACK).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the registered URI is not the one the code was issued for"
    );
    let (status, tokens) = exchange_at(env, &code, Some(verifier.secret()), port_used).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["id_token"].as_str().expect("id token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_loopback_ports_and_openid_request_rules() {
    let env = env(true).await;
    setup_bob(&env);
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let challenge = challenge.as_str().to_string();
    let page = |response: &reqwest::Response| {
        (
            response.status().as_u16(),
            response.headers().get(LOCATION).is_some(),
        )
    };

    // RFC 8252 §7.3: the registered http://127.0.0.1:9/callback on any port; the rest of
    // a loopback URI still has to match exactly.
    let alice = browser();
    let alice_id_token = id_token_via_port(&env, &alice, "alice").await;
    let bob = browser();
    let bob_id_token = id_token_via_port(&env, &bob, "bob").await;
    for refused in [
        "http://127.0.0.1:51004/other",
        "http://127.0.0.1:51004/callback/",
        "http://127.0.0.1:51004/callback?x=1",
        "https://127.0.0.1:51004/callback",
        "http://[::1]:51004/callback",
        "http://localhost:51004/callback",
        "http://127.0.0.1:51004@evil.example.com/callback",
    ] {
        let url = authorize_with(
            &env,
            &challenge,
            &[("redirect_uri", refused), ("scope", "openid")],
        );
        let response = alice.get(&url).send().await.expect("authorize");
        assert_eq!(page(&response), (400, false), "{refused}");
    }

    // OIDC Core §3.1.2.1: redirect_uri is required with openid, even with one registered;
    // without it there is nowhere safe to send the error, so it is a page.
    let url = authorize_with(&env, &challenge, &[("scope", "openid profile")]);
    let response = alice.get(&url).send().await.expect("authorize");
    assert_eq!(page(&response), (400, false));
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("redirect_uri"));

    // OIDC Core §6: request objects are refused with their own error codes, redirected.
    let redirected_error = |response: &reqwest::Response| {
        let to = location(response);
        assert!(to.starts_with(CALLBACK), "{to}");
        let params = query_of(&to);
        assert_eq!(params.get("state").map(String::as_str), Some("st"));
        params.get("error").cloned().unwrap_or_default()
    };
    for (name, value, error) in [
        (
            "request",
            "eyJhbGciOiJub25lIn0.e30.",
            "request_not_supported",
        ),
        (
            "request_uri",
            "https://app.example.com/request.jwt",
            "request_uri_not_supported",
        ),
    ] {
        let url = authorize_with(
            &env,
            &challenge,
            &[
                ("redirect_uri", CALLBACK),
                ("scope", "openid"),
                (name, value),
            ],
        );
        let response = alice.get(&url).send().await.expect("authorize");
        assert_eq!(redirected_error(&response), error, "{name}");
    }
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", env.base()))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["request_parameter_supported"], false);
    assert_eq!(discovery["request_uri_parameter_supported"], false);

    // id_token_hint: alice is signed in in this browser.
    let with_hint = |hint: &str, prompt: Option<&str>| {
        let mut params = vec![
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("id_token_hint", hint),
        ];
        if let Some(prompt) = prompt {
            params.push(("prompt", prompt));
        }
        authorize_with(&env, &challenge, &params)
    };
    let response = alice
        .get(with_hint(&alice_id_token, Some("none")))
        .send()
        .await
        .expect("authorize");
    assert!(
        query_of(&location(&response)).contains_key("code"),
        "her own hint: a code, silently: {}",
        location(&response)
    );
    let response = alice
        .get(with_hint(&bob_id_token, Some("none")))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        redirected_error(&response),
        "login_required",
        "prompt=none with bob's hint while alice is signed in"
    );
    let response = alice
        .get(with_hint(&bob_id_token, None))
        .send()
        .await
        .expect("authorize");
    assert!(
        location(&response).starts_with("/login?"),
        "bob's hint without prompt=none: sign in again: {}",
        location(&response)
    );
    let response = alice
        .get(with_hint("not.an.idtoken", Some("none")))
        .send()
        .await
        .expect("authorize");
    assert_eq!(redirected_error(&response), "invalid_request");
    env.server.stop();
}

/// A second user, bob, with the same password as alice.
fn setup_bob(env: &Env) {
    env.setup.sigil(
        &["user", "add", "--username", "bob", "--password-stdin"],
        Some(PASSWORD),
    );
}
