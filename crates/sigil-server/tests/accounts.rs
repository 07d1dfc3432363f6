//! Accounts people run themselves, end to end against the real binary on SQLite and
//! PostgreSQL, over plain HTTP: sign-up through an app's authorization request, the
//! verification mail (an `.eml` file: the transport used without SMTP), back in the app
//! with a code, exchanged by the `openidconnect` crate; forgot-password, reset, the old
//! refresh token refused; the account page's connected apps and sessions; invitations.
//! Abuse: CSRF-less posts, used, expired and tampered links, a reset link after a password
//! change, sign-up floods, duplicate names racing, enumeration by the reset form.

mod common;

use common::process::{Server, Setup};
use common::{hidden, TestDb};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const CALLBACK: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "a pass phrase of my own";
const NEW_PASSWORD: &str = "another pass phrase, later";

struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    client_id: String,
    client_secret: String,
}

async fn env(db: TestDb, sign_up: &str) -> Env {
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(
        &setup,
        &[],
        &["--sign-up", sign_up],
        common::process::free_port(),
        &[],
    );
    let out: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Todo App",
            "--redirect-uri",
            CALLBACK,
            "--scopes",
            "openid,profile,email,offline_access",
            "--json",
        ],
        None,
    ))
    .expect("json");
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

/// A message as written to the mail directory, its transfer encoding undone enough to
/// read links (quoted-printable soft breaks and `=3D`).
struct Mail {
    raw: String,
}

impl Mail {
    /// The first link in the message that starts with `prefix`.
    fn link(&self, prefix: &str) -> String {
        let start = self
            .raw
            .find(prefix)
            .unwrap_or_else(|| panic!("no {prefix} link in {}", self.raw));
        self.raw[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .next()
            .expect("link")
            .to_string()
    }
}

/// The messages in a mail directory, oldest first.
fn read_mail(dir: &Path) -> Vec<(std::time::SystemTime, Mail)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, Mail)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            let raw = std::fs::read_to_string(e.path()).ok()?;
            let raw = raw
                .replace("=\r\n", "")
                .replace("=\n", "")
                .replace("=3D", "=");
            Some((modified, Mail { raw }))
        })
        .collect();
    found.sort_by_key(|(modified, _)| *modified);
    found
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

    /// Waits for the `n`th message (counting from 1) to `to` whose text contains `marker`.
    async fn mail_to(&self, to: &str, marker: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut matching: Vec<Mail> = read_mail(&self.setup.mail_dir())
                .into_iter()
                .map(|(_, m)| m)
                .filter(|m| {
                    m.raw
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to))
                        && m.raw.contains(marker)
                })
                .collect();
            if matching.len() >= n {
                return matching.swap_remove(n - 1);
            }
            assert!(
                Instant::now() < deadline,
                "no mail {n} to {to} with {marker:?}; the log: {}",
                std::fs::read_to_string(self.setup.log_path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn form_page(&self, browser: &reqwest::Client, path: &str) -> String {
        let response = browser
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .expect("get");
        let status = response.status();
        let html = response.text().await.expect("html");
        assert_eq!(status, 200, "{path}: {html}");
        html
    }

    async fn post(
        &self,
        browser: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        browser
            .post(format!("{}{path}", self.base()))
            .form(form)
            .send()
            .await
            .expect("post")
    }

    async fn sign_up(
        &self,
        browser: &reqwest::Client,
        req: &str,
        username: &str,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let path = if req.is_empty() {
            "/signup".to_string()
        } else {
            format!("/signup?req={req}")
        };
        let html = self.form_page(browser, &path).await;
        let csrf = hidden(&html, "csrf");
        self.post(
            browser,
            "/signup",
            &[
                ("csrf", &csrf),
                ("req", req),
                ("username", username),
                ("email", email),
                ("name", "Dana Example"),
                ("password", password),
            ],
        )
        .await
    }

    /// Signs in on the login page (a new browser, or one with a pending request `req`).
    async fn sign_in(
        &self,
        browser: &reqwest::Client,
        req: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let path = if req.is_empty() {
            "/login".to_string()
        } else {
            format!("/login?req={req}")
        };
        let html = self.form_page(browser, &path).await;
        self.post(
            browser,
            "/login",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("req", req),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// From a location on the way back to the app, through the consent page (allowing),
    /// to the app's callback URL.
    async fn to_callback(&self, browser: &reqwest::Client, location: &str) -> String {
        let mut next = self.absolute(location);
        for _ in 0..4 {
            if next.starts_with(CALLBACK) {
                return next;
            }
            let path = next.trim_start_matches(self.base()).to_string();
            if path.starts_with("/consent") {
                let html = self.form_page(browser, &path).await;
                let response = self
                    .post(
                        browser,
                        "/consent",
                        &[
                            ("csrf", &hidden(&html, "csrf")),
                            ("req", &hidden(&html, "req")),
                            ("decision", "allow"),
                        ],
                    )
                    .await;
                next = self.absolute(&crate::location(&response));
            } else {
                let response = browser.get(&next).send().await.expect("get");
                next = self.absolute(&crate::location(&response));
            }
        }
        panic!("did not reach the app: {next}");
    }

    async fn oidc(
        &self,
    ) -> (
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        reqwest::Client,
    ) {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client");
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(self.base().to_string()).expect("issuer"),
            &http,
        )
        .await
        .expect("discovery");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect"));
        (client, http)
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Sign-up through an app's authorization request, the verification mail, back in the
/// app with a code; then forgot-password, reset, the old refresh token refused; and the
/// account page's connected apps.
async fn sign_up_verify_reset_and_revoke(db: TestDb) {
    let env = env(db, "open").await;
    let (client, http) = env.oidc().await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = browser();
    let response = browser
        .get(auth_url.as_str())
        .send()
        .await
        .expect("authorize");
    let login = env.absolute(&location(&response));
    let req = query_param(&login, "req").expect("the login page holds the request");
    let html = env.form_page(&browser, &format!("/login?req={req}")).await;
    assert!(
        html.contains(&format!("/signup?req={req}")),
        "the sign-in page links to sign-up, with the request: {html}"
    );
    assert!(html.contains("/forgot-password"));

    // A CSRF-less post is refused and makes nothing.
    let response = env
        .post(
            &browser,
            "/signup",
            &[
                ("username", "dana"),
                ("email", "dana@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);

    // Each field says what is wrong, and the form keeps what was typed.
    let response = env
        .sign_up(&browser, &req, "dana!", "not an address", "password123")
        .await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.expect("html");
    assert!(html.contains("value=\"dana!\""), "{html}");
    assert!(html.contains("value=\"not an address\""), "{html}");
    assert!(html.contains("username-error") && html.contains("email-error"));
    assert!(html.contains("password-error"), "{html}");
    assert!(
        !html.contains("password123"),
        "the password is not sent back"
    );
    let response = env
        .sign_up(&browser, &req, "dana", "dana@example.com", "qwertyuiop")
        .await;
    assert_eq!(response.status(), 422);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("commonly used"));
    let response = env
        .sign_up(
            &browser,
            &req,
            "dana",
            "dana@example.com",
            "dana's long password",
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.expect("html").contains("user name"));

    let response = env
        .sign_up(&browser, &req, "Dana", " Dana@Example.COM ", PASSWORD)
        .await;
    let status = response.status();
    let html = response.text().await.expect("html");
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Check your mail"), "{html}");

    // Names and addresses are unique case-insensitively.
    let other = crate::browser();
    let response = env
        .sign_up(&other, "", "dANA", "someone@example.com", PASSWORD)
        .await;
    assert_eq!(response.status(), 422);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("user name is taken"));
    // A taken address is not told to the form (no enumeration): the same answer as a new
    // account, and its owner is mailed instead.
    let response = env
        .sign_up(&other, "", "dana2", "DANA@example.com", PASSWORD)
        .await;
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("Check your mail"));

    // Until the address is verified, the right password does not sign in.
    let response = env.sign_in(&other, "", "dana", PASSWORD).await;
    assert_eq!(response.status(), 403);
    let html = response.text().await.expect("html");
    assert!(html.contains("Send the link again"), "{html}");
    let token_response = http
        .post(format!("{}/token", env.base()))
        .basic_auth(&env.client_id, Some(&env.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "dana"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(token_response.status(), 400, "no password grant either");

    // The mails: to the address as typed (domain lowercased): the link, and the notice that
    // someone tried to sign up with it again (which holds no link token).
    let mail = env
        .mail_to("Dana@example.com", "/verify-email?token=", 1)
        .await;
    let notice = env.mail_to("Dana@example.com", "/forgot-password", 1).await;
    assert!(!notice.raw.contains("token="), "{}", notice.raw);
    let link = mail.link(&format!("{}/verify-email?token=", env.base()));
    let token = query_param(&link, "token").expect("token");
    // A tampered link changes nothing.
    let mut tampered = token.clone();
    tampered.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
    let response = browser
        .get(format!("{}/verify-email?token={tampered}", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 400);
    // The link, in the browser that signed up: straight back to the app with a code.
    // Opening the link (what a mail scanner does too) changes nothing: it asks for a click.
    let html = env
        .form_page(&browser, link.trim_start_matches(env.base()))
        .await;
    assert!(
        html.contains("Dana@example.com") && html.contains("Confirm"),
        "{html}"
    );
    let response = env.sign_in(&other, "", "dana", PASSWORD).await;
    assert_eq!(
        response.status(),
        403,
        "still unverified after a GET of the link"
    );
    let response = env
        .post(&browser, "/verify-email", &[("token", &token)])
        .await;
    assert_eq!(response.status(), 403, "the click needs the CSRF token");
    let response = env
        .post(
            &browser,
            "/verify-email",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("token", &hidden(&html, "token")),
            ],
        )
        .await;
    let callback = env.to_callback(&browser, &location(&response)).await;
    let code = query_param(&callback, "code").expect("a code");
    // Used once only.
    let response = browser.get(&link).send().await.expect("again");
    assert_eq!(response.status(), 400);

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_verifier = client.id_token_verifier();
    let claims = tokens
        .id_token()
        .expect("id token")
        .claims(&id_verifier, &nonce)
        .expect("valid ID token");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("Dana@example.com"));
    assert_eq!(claims.email_verified(), Some(true));
    let refresh = tokens.refresh_token().expect("refresh token").clone();

    // The account page lists the app; the token still refreshes.
    let html = env.form_page(&browser, "/account/apps").await;
    assert!(html.contains("Todo App"), "{html}");
    assert!(
        html.contains("last used"),
        "the app's last use is shown: {html}"
    );
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh works");
    let refresh = refreshed.refresh_token().expect("rotated").clone();

    // Forgot-password answers the same for an unknown address and for a known one.
    let stranger = crate::browser();
    let html = env.form_page(&stranger, "/forgot-password").await;
    let response = env
        .post(
            &stranger,
            "/forgot-password",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("email", "nobody@example.com"),
            ],
        )
        .await;
    let unknown = (response.status(), response.text().await.expect("html"));
    let html = env.form_page(&stranger, "/forgot-password").await;
    let response = env
        .post(
            &stranger,
            "/forgot-password",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("email", "dana@EXAMPLE.com"),
            ],
        )
        .await;
    let known = (response.status(), response.text().await.expect("html"));
    assert_eq!(unknown.0, 200);
    assert_eq!(
        unknown.1.replace(&hidden(&unknown.1, "csrf"), ""),
        known.1.replace(&hidden(&known.1, "csrf"), ""),
        "the same page whether or not an account has the address"
    );
    let mail = env
        .mail_to("Dana@example.com", "/reset-password?token=", 1)
        .await;
    let reset_link = mail.link(&format!("{}/reset-password?token=", env.base()));
    let html = env
        .form_page(&stranger, reset_link.trim_start_matches(env.base()))
        .await;
    assert!(html.contains("Dana"), "{html}");
    let csrf = hidden(&html, "csrf");
    let reset_token = hidden(&html, "token");
    // The rules hold here too: a refused password leaves the link usable.
    let response = env
        .post(
            &stranger,
            "/reset-password",
            &[
                ("csrf", &csrf),
                ("token", &reset_token),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = env
        .post(
            &stranger,
            "/reset-password",
            &[
                ("csrf", &csrf),
                ("token", &reset_token),
                ("password", NEW_PASSWORD),
                ("repeat_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    // Replayed: refused, nothing changes.
    let html = env.form_page(&stranger, "/login").await;
    let response = env
        .post(
            &stranger,
            "/reset-password",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("token", &reset_token),
                ("password", "a third pass phrase here"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    // The old refresh token is refused; the old session is over; the new password works.
    let refused = client
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await;
    assert!(refused.is_err(), "the reset revoked every refresh family");
    let response = browser
        .get(format!("{}/account", env.base()))
        .send()
        .await
        .expect("account");
    assert_eq!(response.status(), 303, "the reset ended the session");
    let response = env.sign_in(&stranger, "", "dana", PASSWORD).await;
    assert_eq!(response.status(), 401, "the old password is gone");
    let response = env.sign_in(&stranger, "", "dana", NEW_PASSWORD).await;
    assert_eq!(response.status(), 200);
    // And the user is told.
    env.mail_to("Dana@example.com", "password", 3).await;

    // Connected apps: revoke one, and its refresh token is refused.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let response = stranger
        .get(auth_url.as_str())
        .send()
        .await
        .expect("authorize");
    let next = env.to_callback(&stranger, &location(&response)).await;
    let code = query_param(&next, "code").unwrap_or_else(|| panic!("a code: {next}"));
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("exchange");
    let refresh: RefreshToken = tokens.refresh_token().expect("refresh").clone();
    let html = env.form_page(&stranger, "/account/apps").await;
    let response = env
        .post(
            &stranger,
            "/account/apps",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("client_id", &env.client_id),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let html = env
        .form_page(&stranger, "/account/apps?notice=app-removed")
        .await;
    assert!(!html.contains("Todo App"), "{html}");
    let refused = client
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await;
    assert!(
        refused.is_err(),
        "revoking the app revoked its refresh tokens"
    );

    // No link token in the log or, in clear, in the database.
    let log = std::fs::read_to_string(env.setup.log_path()).expect("log");
    for secret in [&token, &reset_token] {
        assert!(!log.contains(secret.as_str()), "a link token in the log");
    }
    if let Some(path) = env._db.sqlite_path() {
        let bytes = std::fs::read(&path).expect("database file");
        let text = String::from_utf8_lossy(&bytes);
        for secret in [&token, &reset_token] {
            assert!(
                !text.contains(secret.as_str()),
                "a link token in the database"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_verify_reset_and_revoke_on_sqlite() {
    sign_up_verify_reset_and_revoke(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_verify_reset_and_revoke_on_postgres() {
    let Some(db) = TestDb::postgres("accounts_flow").await else {
        return;
    };
    sign_up_verify_reset_and_revoke(db).await;
}

/// Of sign-ups racing for one user name, exactly one wins; a flood from one address is
/// throttled.
async fn races_and_floods(db: TestDb) {
    let env = std::sync::Arc::new(env(db, "open").await);
    let tasks: Vec<_> = (0..4)
        .map(|n| {
            let env = env.clone();
            tokio::spawn(async move {
                let browser = browser();
                let response = env
                    .sign_up(
                        &browser,
                        "",
                        if n % 2 == 0 { "erin" } else { "ERIN" },
                        &format!("erin{n}@example.com"),
                        PASSWORD,
                    )
                    .await;
                response.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("join"));
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 422, 422, 422], "exactly one wins");
    // Four sign-ups from this address so far (each counts, taken or not)… the fifth is
    // free, the next ones wait.
    let browser = browser();
    let first = env
        .sign_up(&browser, "", "frank", "frank@example.com", PASSWORD)
        .await;
    assert_eq!(first.status(), 200);
    let flood = env
        .sign_up(&browser, "", "grace", "grace@example.com", PASSWORD)
        .await;
    assert_eq!(
        flood.status(),
        429,
        "the sixth sign-up from one address waits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_and_floods_on_sqlite() {
    races_and_floods(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn races_and_floods_on_postgres() {
    let Some(db) = TestDb::postgres("accounts_races").await else {
        return;
    };
    races_and_floods(db).await;
}

/// Sign-up closed by default; by invitation only with `--sign-up invite`, the invited
/// address verified by the link; sessions listed and ended from the account page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_and_sessions() {
    let closed = env(TestDb::sqlite(), "closed").await;
    let response = browser()
        .get(format!("{}/signup", closed.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 403, "sign-up is closed by default");
    let html = closed.form_page(&browser(), "/login").await;
    assert!(!html.contains("/signup"), "no sign-up link when closed");
    drop(closed);

    let env = env(TestDb::sqlite(), "invite").await;
    let response = browser()
        .get(format!("{}/signup", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 403, "no invitation, no sign-up");
    let link = env.setup.sigil(
        &[
            "user",
            "invite",
            "--email",
            "heidi@example.com",
            "--issuer",
            env.base(),
        ],
        None,
    );
    let link = link.trim().to_string();
    assert!(link.contains("/signup?invite="), "{link}");
    let mail = env.mail_to("heidi@example.com", "/signup?invite=", 1).await;
    assert!(mail.raw.contains(&link), "the mail holds the printed link");
    let path = link.trim_start_matches(env.base()).to_string();
    let browser = browser();
    let html = env.form_page(&browser, &path).await;
    assert!(
        html.contains("heidi@example.com"),
        "the invited address is filled in"
    );
    let response = env
        .post(
            &browser,
            "/signup",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("invite", &hidden(&html, "invite")),
                ("username", "heidi"),
                ("email", "heidi@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        303,
        "signed in at once: the invitation proved the address"
    );
    // The invitation is used up.
    let response = browser
        .get(format!("{}{path}", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 400);

    // Two browsers; the first lists both and signs the other out.
    let other = crate::browser();
    let response = env.sign_in(&other, "", "heidi", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let html = env.form_page(&browser, "/account/sessions").await;
    assert_eq!(html.matches("<li>").count(), 2, "{html}");
    assert!(html.contains("this browser"));
    let other_id = hidden(&html, "session");
    let response = env
        .post(
            &browser,
            "/account/sessions",
            &[("csrf", &hidden(&html, "csrf")), ("session", &other_id)],
        )
        .await;
    assert_eq!(response.status(), 303);
    let response = other
        .get(format!("{}/account", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 303, "the other browser is signed out");
    let response = browser
        .get(format!("{}/account", env.base()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200, "this one is not");
    // An address change needs the password, and waits for the new address's link; the old
    // address is told once it is done.
    let html = env.form_page(&browser, "/account").await;
    let csrf = hidden(&html, "csrf");
    let response = env
        .post(
            &browser,
            "/account/email",
            &[
                ("csrf", &csrf),
                ("email", "heidi@new.example"),
                ("current_password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422, "a wrong password changes nothing");
    let response = env
        .post(
            &browser,
            "/account/email",
            &[
                ("csrf", &csrf),
                ("email", "heidi@new.example"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let mail = env
        .mail_to("heidi@new.example", "/verify-email?token=", 1)
        .await;
    let link = mail.link(&format!("{}/verify-email?token=", env.base()));
    let html = env
        .form_page(&browser, link.trim_start_matches(env.base()))
        .await;
    let response = env
        .post(
            &browser,
            "/verify-email",
            &[
                ("csrf", &hidden(&html, "csrf")),
                ("token", &hidden(&html, "token")),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let html = env
        .form_page(&browser, "/account?notice=email-changed")
        .await;
    assert!(html.contains("value=\"heidi@new.example\""), "{html}");
    env.mail_to("heidi@example.com", "heidi@new.example", 1)
        .await;

    // A forged session id is refused.
    let html = env.form_page(&browser, "/account/sessions").await;
    let response = env
        .post(
            &browser,
            "/account/sessions",
            &[("csrf", &hidden(&html, "csrf")), ("session", "../../etc")],
        )
        .await;
    assert_eq!(response.status(), 422);
}
