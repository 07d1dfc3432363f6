//! Second factors over real HTTP against the real binary: an authenticator app enrolled
//! through the account pages (the test reads the secret off the page and computes codes
//! with the `totp-rs` crate), the sign-in's second step, `amr`, `acr` and `auth_time`
//! checked by the `openidconnect` crate as a relying party; a replayed code and a flood of
//! wrong ones refused; recovery codes, each good once and mailed about; a session that
//! signed in before the factor existed stepping up; `--mfa required` walking a user
//! through enrolment before any code is issued; the password grant refused.

mod common;

use common::process::{free_port, Server, Setup};
use common::{hidden, jwt_claims, totp_code as code_at, unix_now as now, TestDb};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, RedirectUrl, TokenResponse,
};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::Value;

const PASSWORD: &str = "second factor correct horse";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const ACR_1FA: &str = "urn:sigil:acr:1fa";
/// The audience of the todo API the access tokens are for.
const API: &str = "https://api.example.com";
const ACR_2FA: &str = "urn:sigil:acr:2fa";

struct Env {
    _db: TestDb,
    setup: Setup,
    server: Server,
    client_id: String,
    client_secret: String,
}

fn env(serve: &[&str]) -> Env {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], serve, free_port(), &[]);
    for name in ["alice", "bob"] {
        setup.sigil(
            &[
                "user",
                "add",
                "--username",
                name,
                "--email",
                &format!("{name}@example.com"),
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
    }
    let out: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Bank",
            "--redirect-uri",
            CALLBACK,
            "--scopes",
            "openid,profile,email,todos:read,todos:write",
            "--audience",
            API,
            "--first-party",
            "--grant-types",
            "authorization_code,refresh_token,password",
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
struct Browser {
    http: reqwest::Client,
    base: String,
}

/// One answer: its status, where it redirects to (absolute), and its body.
struct Answer {
    status: u16,
    location: Option<String>,
    url: String,
    body: String,
}

impl Browser {
    fn new(env: &Env) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .expect("client"),
            base: env.server.base.clone(),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        }
    }

    async fn answer(&self, response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let url = response.url().to_string();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| self.absolute(v.to_str().expect("ascii")));
        Answer {
            status,
            location,
            url,
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&self, url: &str) -> Answer {
        let url = self.absolute(url);
        self.answer(self.http.get(&url).send().await.expect("get"))
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let url = self.absolute(path);
        self.answer(self.http.post(&url).form(form).send().await.expect("post"))
            .await
    }

    /// Follows redirects within Sigil from `url` until a page (returned) or a URL outside
    /// Sigil (returned as the answer's `location`).
    async fn follow(&self, url: &str) -> Answer {
        let mut next = self.absolute(url);
        for _ in 0..10 {
            if !next.starts_with(&self.base) {
                return Answer {
                    status: 302,
                    location: Some(next.clone()),
                    url: next,
                    body: String::new(),
                };
            }
            let answer = self.get(&next).await;
            match &answer.location {
                Some(location) if (300..400).contains(&answer.status) => next = location.clone(),
                _ => return answer,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// A POST, then the redirects it starts.
    async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let answer = self.post(path, form).await;
        match &answer.location {
            Some(location) if (300..400).contains(&answer.status) => {
                let location = location.clone();
                self.follow(&location).await
            }
            _ => answer,
        }
    }

    /// Types the password on the sign-in page `page` (for `req`, or none).
    async fn password(&self, page: &Answer, username: &str) -> Answer {
        assert!(page.url.contains("/login"), "a sign-in page: {}", page.url);
        let req = hidden(&page.body, "req");
        let csrf = hidden(&page.body, "csrf");
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("username", username),
            ("password", PASSWORD),
        ];
        let next;
        if page.body.contains("name=\"next\"") {
            next = hidden(&page.body, "next");
            form.push(("next", next.as_str()));
        }
        self.submit("/login", &form).await
    }

    /// Types `code` on the second-step page `page`.
    async fn second_factor(&self, page: &Answer, code: &str) -> Answer {
        assert!(
            page.url.contains("/login/second-factor"),
            "the second step: {} {}",
            page.url,
            page.body
        );
        let csrf = hidden(&page.body, "csrf");
        let req = hidden(&page.body, "req");
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("req", req.as_str()),
            ("code", code),
        ];
        let next;
        if page.body.contains("name=\"next\"") {
            next = hidden(&page.body, "next");
            form.push(("next", next.as_str()));
        }
        self.submit("/login/second-factor", &form).await
    }

    /// Signs in without a pending request, to the account's security page.
    async fn sign_in(&self, username: &str) -> Answer {
        let page = self.follow("/login?next=/account/security").await;
        self.password(&page, username).await
    }

    /// Adds an authenticator app from the security page `page`: reads its secret off the
    /// QR code page and confirms it with the current code. Returns the secret, the time
    /// the confirming code was for, and the page after (the recovery codes).
    async fn add_app(&self, page: &Answer, name: &str) -> (String, u64, Answer) {
        assert!(
            page.url.contains("/account/security"),
            "the security page: {} {}",
            page.url,
            page.body
        );
        let csrf = hidden(&page.body, "csrf");
        let req = hidden(&page.body, "req");
        let qr = self
            .submit("/account/security/totp", &[("csrf", &csrf), ("req", &req)])
            .await;
        assert_eq!(qr.status, 200, "{}", qr.body);
        assert!(qr.url.contains("/account/security/totp"), "{}", qr.url);
        assert!(qr.body.contains("<svg"), "a QR code drawn as SVG");
        assert!(
            !qr.body.contains("<?xml"),
            "the SVG is an element of the page"
        );
        let secret = between(&qr.body, "<code id=\"totp-secret\">", "</code>");
        assert_eq!(secret.len(), 32, "a 160-bit secret in base32: {secret}");
        let uri = between(&qr.body, "<code id=\"totp-uri\" class=\"wrap\">", "</code>");
        assert!(
            uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
            "{uri}"
        );
        let wrong = self
            .post(
                "/account/security/totp/confirm",
                &[
                    ("csrf", &csrf),
                    ("req", &req),
                    ("name", name),
                    ("code", "000000"),
                ],
            )
            .await;
        let is_wrong = code_at(&secret, now()) != "000000";
        if is_wrong {
            assert_eq!(wrong.status, 422, "a wrong code does not confirm it");
            assert!(wrong.body.contains("That code is not right"));
        }
        let at = now();
        let done = self
            .post(
                "/account/security/totp/confirm",
                &[
                    ("csrf", &csrf),
                    ("req", &req),
                    ("name", name),
                    ("code", &code_at(&secret, at)),
                ],
            )
            .await;
        (secret, at, done)
    }
}

/// Waits (20 s at most) for a mail to `to` holding `text` among the server's `.eml` files.
async fn wait_for_mail(env: &Env, to: &str, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(env.setup.mail_dir())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
            .any(|mail| mail.contains(&format!("To: {to}")) && mail.contains(text));
        if found {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no mail to {to} about {text:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The text between `start` and `end` in `html`.
fn between(html: &str, start: &str, end: &str) -> String {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"))
        + start.len();
    html[from..].split(end).next().expect("end").to_string()
}

/// The recovery codes on a page that shows them.
fn recovery_codes(html: &str) -> Vec<String> {
    let list = between(html, "<ul class=\"codes\" id=\"recovery-codes\">", "</ul>");
    list.split("<code>")
        .skip(1)
        .filter_map(|part| part.split("</code>").next())
        .map(str::to_string)
        .collect()
}

fn query_of(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

/// A relying party built by the `openidconnect` crate from discovery.
struct RelyingParty {
    client: CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    http: reqwest::Client,
}

/// What a finished sign-in gave the relying party.
struct SignedIn {
    /// The access token itself, for calling an API with.
    access_token_text: String,
    acr: Option<String>,
    amr: Vec<String>,
    auth_time: Option<i64>,
    access_token: Value,
}

impl RelyingParty {
    async fn discover(env: &Env) -> Self {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client");
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(env.server.base.clone()).expect("issuer"),
            &http,
        )
        .await
        .expect("discovery");
        let supported: Vec<String> = metadata
            .acr_values_supported()
            .expect("acr_values_supported")
            .iter()
            .map(|acr| acr.to_string())
            .collect();
        assert!(
            supported.contains(&ACR_2FA.to_string()),
            "discovery lists {supported:?}"
        );
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(env.client_id.clone()),
            Some(ClientSecret::new(env.client_secret.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect"));
        Self { client, http }
    }

    /// An authorization request (PKCE, nonce), optionally with `acr_values` and `max_age`;
    /// `walk` takes the browser from it to the callback; then the code is exchanged and
    /// the ID token validated by the library.
    async fn sign_in<F, Fut>(&self, acr: Option<&str>, max_age: Option<u64>, walk: F) -> SignedIn
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = String>,
    {
        self.sign_in_with_scopes(acr, max_age, &[], walk).await
    }

    /// [`RelyingParty::sign_in`] asking for `scopes` besides `openid`.
    async fn sign_in_with_scopes<F, Fut>(
        &self,
        acr: Option<&str>,
        max_age: Option<u64>,
        scopes: &[&str],
        walk: F,
    ) -> SignedIn
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = String>,
    {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in scopes {
            request = request.add_scope(openidconnect::Scope::new(scope.to_string()));
        }
        if let Some(acr) = acr {
            request = request.add_auth_context_value(AuthenticationContextClass::new(acr.into()));
        }
        if let Some(max_age) = max_age {
            request = request.set_max_age(std::time::Duration::from_secs(max_age));
        }
        let (url, state, nonce) = request.url();
        let callback = walk(url.to_string()).await;
        assert!(
            callback.starts_with(CALLBACK),
            "back at the app: {callback}"
        );
        let params = query_of(&callback);
        assert_eq!(params.get("state"), Some(state.secret()), "{callback}");
        let code = params.get("code").expect("code").clone();
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .expect("token endpoint")
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .expect("code exchange");
        let id_token = tokens.id_token().expect("an ID token");
        let claims = id_token
            .claims(&self.client.id_token_verifier(), &nonce)
            .expect("the library validates the ID token");
        SignedIn {
            access_token_text: openidconnect::OAuth2TokenResponse::access_token(&tokens)
                .secret()
                .clone(),
            acr: claims.auth_context_ref().map(|acr| acr.to_string()),
            amr: claims
                .auth_method_refs()
                .map(|values| values.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default(),
            auth_time: claims.auth_time().map(|t| t.timestamp()),
            access_token: jwt_claims(
                openidconnect::OAuth2TokenResponse::access_token(&tokens).secret(),
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_app_signs_in_with_amr_and_acr_a_client_library_reads() {
    let env = env(&[]);
    let rp = RelyingParty::discover(&env).await;
    let started = now() as i64;

    // Enrolment, from the account's security page.
    let browser = &Browser::new(&env);
    let security = browser.sign_in("alice").await;
    let (secret, enrolled_at, codes_page) = browser.add_app(&security, "Phone").await;
    assert_eq!(codes_page.status, 200, "{}", codes_page.body);
    let codes = recovery_codes(&codes_page.body);
    assert_eq!(codes.len(), 10, "{codes:?}");
    assert!(codes
        .iter()
        .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
    let listed = browser.get("/account/security").await;
    assert!(
        listed.body.contains("Phone")
            && listed
                .body
                .contains("<strong id=\"codes-left\">10</strong>"),
        "{}",
        listed.body
    );
    wait_for_mail(&env, "alice@example.com", "authenticator app").await;

    // A new browser: password, then the app's code; the relying party sees both.
    let browser = &Browser::new(&env);
    let next_code = code_at(&secret, enrolled_at + 30);
    let signed_in = rp
        .sign_in(None, None, |url| async move {
            let login = browser.follow(&url).await;
            let step = browser.password(&login, "alice").await;
            assert_eq!(step.status, 200, "{}", step.body);
            assert!(
                step.url.contains("/login/second-factor?req="),
                "{}",
                step.url
            );
            // Nothing is signed in between the two steps.
            let account = browser.get("/account").await;
            assert!(
                account
                    .location
                    .as_deref()
                    .is_some_and(|l| l.contains("/login")),
                "the account page is not open after the password alone"
            );
            let done = browser.second_factor(&step, &next_code).await;
            done.location.expect("a redirect to the app")
        })
        .await;
    assert_eq!(signed_in.acr.as_deref(), Some(ACR_2FA));
    let mut amr = signed_in.amr.clone();
    amr.sort();
    assert_eq!(amr, ["mfa", "otp", "pwd"]);
    let auth_time = signed_in.auth_time.expect("auth_time");
    assert!(auth_time >= started && auth_time <= now() as i64 + 1);
    assert_eq!(signed_in.access_token["acr"], ACR_2FA);
    assert_eq!(signed_in.access_token["auth_time"], auth_time);
    assert!(signed_in.access_token["amr"]
        .as_array()
        .is_some_and(|a| a.contains(&Value::from("otp"))));

    // bob, without a factor, signs in with the password alone: 1fa, pwd.
    let browser = &Browser::new(&env);
    let bob = rp
        .sign_in(None, None, |url| async move {
            let login = browser.follow(&url).await;
            let done = browser.password(&login, "bob").await;
            done.location.expect("a redirect to the app")
        })
        .await;
    assert_eq!(bob.acr.as_deref(), Some(ACR_1FA));
    assert_eq!(bob.amr, ["pwd"]);
    assert_eq!(bob.access_token["acr"], ACR_1FA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_guessed_codes_are_refused_and_recovery_codes_work_once() {
    let env = env(&[]);
    let browser = &Browser::new(&env);
    let security = browser.sign_in("alice").await;
    let (secret, enrolled_at, codes_page) = browser.add_app(&security, "Phone").await;
    let codes = recovery_codes(&codes_page.body);

    // The code that confirmed the app cannot also sign in.
    let browser = &Browser::new(&env);
    let step = browser.sign_in("alice").await;
    let replay = browser
        .second_factor(&step, &code_at(&secret, enrolled_at))
        .await;
    assert_eq!(
        replay.status, 422,
        "the enrolment's code is used: {}",
        replay.body
    );
    assert!(replay.body.contains("used already"));
    let next = code_at(&secret, enrolled_at + 30);
    let done = browser.second_factor(&replay, &next).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.url.ends_with("/account/security"), "{}", done.url);

    // The same code again, in another browser: refused (each step once).
    let other = &Browser::new(&env);
    let step = other.sign_in("alice").await;
    let replay = other.second_factor(&step, &next).await;
    assert_eq!(replay.status, 422, "a replayed code: {}", replay.body);

    // A recovery code signs in once; it is mailed about, and one fewer is left.
    let done = other.second_factor(&replay, &codes[0].to_uppercase()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("<strong id=\"codes-left\">9</strong>"),
        "{}",
        done.body
    );
    wait_for_mail(&env, "alice@example.com", "recovery code").await;
    let third = &Browser::new(&env);
    let step = third.sign_in("alice").await;
    let again = third.second_factor(&step, &codes[0]).await;
    assert_eq!(again.status, 422, "a recovery code works once");

    // A flood of wrong codes: a few are answered as wrong, then the account waits, and
    // not even the right code gets through meanwhile.
    let mut statuses = Vec::new();
    for guess in 0..12 {
        let answer = third
            .second_factor(&step, &format!("{:06}", 100_000 + guess))
            .await;
        statuses.push(answer.status);
    }
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "the flood is throttled: {statuses:?}"
    );
    let right = code_at(&secret, now());
    let blocked = third.second_factor(&step, &right).await;
    assert_eq!(blocked.status, 429, "throttled means throttled");
    assert!(!blocked.body.contains(&right));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_before_the_factor_steps_up_and_acr_values_ask_for_it() {
    let env = env(&[]);
    let rp = RelyingParty::discover(&env).await;
    // Browser A signs bob in before bob has a factor: 1fa.
    let a = &Browser::new(&env);
    let first = rp
        .sign_in(None, None, |url| async move {
            let login = a.follow(&url).await;
            a.password(&login, "bob")
                .await
                .location
                .expect("to the app")
        })
        .await;
    assert_eq!(first.acr.as_deref(), Some(ACR_1FA));

    // The app asks for 2fa: bob has no factor, so he adds one on the way, in this
    // session, and the request goes on once it is confirmed.
    let secret = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = secret.clone();
    let stepped = rp
        .sign_in(Some(ACR_2FA), None, |url| async move {
            let page = a.follow(&url).await;
            assert!(
                page.url.contains("/account/security?req="),
                "enrolment first: {}",
                page.url
            );
            assert!(page.body.contains("Add an authenticator app"));
            let (secret, _, codes) = a.add_app(&page, "Phone").await;
            *kept.lock().expect("lock") = secret;
            assert_eq!(recovery_codes(&codes.body).len(), 10);
            let resume = between(
                &codes.body,
                "<a class=\"button primary\" href=\"",
                "\" id=\"codes-saved\"",
            );
            assert!(resume.starts_with("/authorize/resume?req="), "{resume}");
            a.follow(&resume).await.location.expect("to the app")
        })
        .await;
    assert_eq!(stepped.acr.as_deref(), Some(ACR_2FA));
    let secret = secret.lock().expect("lock").clone();

    // Browser C signs alice in with her password alone, before she has a factor; then
    // she adds one in browser D. C's session is 1fa for a user who now has a factor.
    let c = &Browser::new(&env);
    let page = c.follow("/login").await;
    let signed = c.password(&page, "alice").await;
    assert!(
        signed.body.contains("You are signed in as alice"),
        "{}",
        signed.body
    );
    let d = &Browser::new(&env);
    let security = d.sign_in("alice").await;
    let (alice_secret, alice_at, _) = d.add_app(&security, "Phone").await;
    // C's 1fa session may not change the factors: it steps up first.
    let csrf = hidden(&c.get("/account/security").await.body, "csrf");
    let refused = c
        .post("/account/security/totp", &[("csrf", &csrf), ("req", "")])
        .await;
    assert_eq!(refused.status, 303);
    assert!(
        refused
            .location
            .as_deref()
            .is_some_and(|l| l.ends_with("/login/second-factor")),
        "{:?}",
        refused.location
    );
    let code = code_at(&alice_secret, alice_at + 30);
    let stepped = rp
        .sign_in(None, None, |url| async move {
            let step = c.follow(&url).await;
            assert!(
                step.body.contains("Confirm it is you"),
                "a step-up: {}",
                step.body
            );
            c.second_factor(&step, &code)
                .await
                .location
                .expect("to the app")
        })
        .await;
    assert_eq!(stepped.acr.as_deref(), Some(ACR_2FA));
    let mut amr = stepped.amr.clone();
    amr.sort();
    assert_eq!(amr, ["mfa", "otp", "pwd"]);

    // max_age=0 asks bob's 2fa session for the whole sign-in again: password, then the
    // factor.
    let code = code_at(&secret, now() + 30);
    let again = rp
        .sign_in(None, Some(0), |url| async move {
            let login = a.follow(&url).await;
            assert!(login.url.contains("/login?req="), "{}", login.url);
            let step = a.password(&login, "bob").await;
            a.second_factor(&step, &code)
                .await
                .location
                .expect("to the app")
        })
        .await;
    assert_eq!(again.acr.as_deref(), Some(ACR_2FA));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_second_factor_is_added_before_any_code_and_the_password_grant_refuses() {
    let env = env(&["--mfa", "required"]);
    let rp = RelyingParty::discover(&env).await;
    let browser = &Browser::new(&env);
    let signed_in = rp
        .sign_in(None, None, |url| async move {
            let login = browser.follow(&url).await;
            let page = browser.password(&login, "alice").await;
            assert!(page.url.contains("/account/security?req="), "{}", page.url);
            assert!(page.body.contains("Your account needs a second factor"));
            let (_, _, codes) = browser.add_app(&page, "Phone").await;
            let resume = between(
                &codes.body,
                "<a class=\"button primary\" href=\"",
                "\" id=\"codes-saved\"",
            );
            browser.follow(&resume).await.location.expect("to the app")
        })
        .await;
    assert_eq!(signed_in.acr.as_deref(), Some(ACR_2FA));

    // The last factor of a user who must have one stays.
    let page = browser.get("/account/security").await;
    let factor = between(&page.body, "<li data-factor=\"", "\"");
    let csrf = hidden(&page.body, "csrf");
    let refused = browser
        .post(
            "/account/security/factor",
            &[
                ("csrf", &csrf),
                ("factor", &factor),
                ("action", "remove"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("must have a second factor"));

    // The password grant cannot sign in a user with a second factor.
    let token = reqwest::Client::new()
        .post(format!("{}/token", env.server.base))
        .basic_auth(&env.client_id, Some(&env.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 400);
    let body: Value = token.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("authorization code")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_requires_a_factor_resets_factors_and_needs_one_for_the_console() {
    let env = env(&[]);
    env.setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "root",
            "--admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let rp = RelyingParty::discover(&env).await;

    // An admin with a factor whose session did not prove it is sent to prove it first.
    let admin = &Browser::new(&env);
    let before = admin.follow("/login?next=/admin").await;
    let console = admin.password(&before, "root").await;
    assert!(console.url.ends_with("/admin"), "{}", console.url);
    let other = &Browser::new(&env);
    let security = other.sign_in("root").await;
    let (root_secret, root_at, _) = other.add_app(&security, "Phone").await;
    let gated = admin.get("/admin/users").await;
    assert_eq!(gated.status, 303);
    let location = gated.location.clone().expect("location");
    assert!(
        location.contains("/login/second-factor?next=%2Fadmin%2Fusers"),
        "{location}"
    );
    let step = admin.follow(&location).await;
    let users = admin
        .second_factor(&step, &code_at(&root_secret, root_at + 30))
        .await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert!(
        users.url.ends_with("/admin/users"),
        "back where it was: {}",
        users.url
    );

    // The admin requires a second factor of bob.
    let listed: Value =
        serde_json::from_str(&env.setup.sigil(&["user", "list", "--json"], None)).expect("json");
    let bob_id = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|user| user["username"] == "bob")
        .and_then(|user| user["user_id"].as_str())
        .expect("bob")
        .to_string();
    let page = admin.get(&format!("/admin/users/{bob_id}")).await;
    assert!(page.body.contains("bob"), "{}", page.body);
    assert!(page.body.contains("No second factor."));
    let csrf = hidden(&page.body, "csrf");
    let saved = admin
        .submit(
            &format!("/admin/users/{bob_id}/second-factor"),
            &[("csrf", &csrf), ("requires_second_factor", "1")],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved
        .body
        .contains("name=\"requires_second_factor\" value=\"1\" checked"));

    // bob's next sign-in walks him through adding one before the app gets a code.
    let bob = &Browser::new(&env);
    let secret = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = secret.clone();
    let signed_in = rp
        .sign_in(None, None, |url| async move {
            let login = bob.follow(&url).await;
            let page = bob.password(&login, "bob").await;
            assert!(page.url.contains("/account/security?req="), "{}", page.url);
            let (secret, _, codes) = bob.add_app(&page, "Phone").await;
            *kept.lock().expect("lock") = secret;
            let resume = between(
                &codes.body,
                "<a class=\"button primary\" href=\"",
                "\" id=\"codes-saved\"",
            );
            bob.follow(&resume).await.location.expect("to the app")
        })
        .await;
    assert_eq!(signed_in.acr.as_deref(), Some(ACR_2FA));

    // The admin resets bob's factors: gone, audited, mailed; bob enrols again next time.
    let page = admin.get(&format!("/admin/users/{bob_id}")).await;
    assert!(
        page.body.contains("Phone"),
        "bob's app is listed: {}",
        page.body
    );
    let confirm = admin
        .get(&format!("/admin/users/{bob_id}/factors/reset"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let csrf = hidden(&confirm.body, "csrf");
    let reset = admin
        .submit(
            &format!("/admin/users/{bob_id}/factors/reset"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert!(reset.body.contains("No second factor."), "{}", reset.body);
    wait_for_mail(&env, "bob@example.com", "reset").await;
    let audit = admin.get("/admin/audit").await;
    assert!(audit.body.contains("user.factors_reset"), "{}", audit.body);
    assert!(audit.body.contains("user.second_factor_required"));
    let bob = &Browser::new(&env);
    let login = bob.follow("/login").await;
    let page = bob.password(&login, "bob").await;
    assert!(
        page.url.contains("/account/security") && page.body.contains("needs a second factor"),
        "{} {}",
        page.url,
        page.body
    );
    let old = secret.lock().expect("lock").clone();
    assert!(!old.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_api_asks_a_one_factor_token_to_step_up_and_takes_a_two_factor_one() {
    use common::process::{todo_api_binary, Background};
    let env = env(&[]);
    let rp = RelyingParty::discover(&env).await;
    let todo_port = free_port();
    let todo_dir = tempfile::tempdir().expect("tempdir");
    let _todo = Background(
        std::process::Command::new(todo_api_binary())
            .args(["--issuer", &env.server.base, "--audience", API])
            .args(["--bind", &format!("127.0.0.1:{todo_port}")])
            .arg("--database-url")
            .arg(format!("sqlite://{}/todo.db", todo_dir.path().display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("todo-api"),
    );
    let todos = format!("http://127.0.0.1:{todo_port}/api/todos");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http
        .get(format!("http://127.0.0.1:{todo_port}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "todo-api did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let scopes = ["todos:read", "todos:write"];

    // bob signs in with his password alone: his todo stays when he asks to delete all.
    let bob = &Browser::new(&env);
    let one_factor = rp
        .sign_in_with_scopes(None, None, &scopes, |url| async move {
            let login = bob.follow(&url).await;
            bob.password(&login, "bob")
                .await
                .location
                .expect("to the app")
        })
        .await;
    assert_eq!(one_factor.acr.as_deref(), Some(ACR_1FA));
    let created = http
        .post(&todos)
        .bearer_auth(&one_factor.access_token_text)
        .json(&serde_json::json!({ "title": "keep me" }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let refused = http
        .delete(&todos)
        .bearer_auth(&one_factor.access_token_text)
        .send()
        .await
        .expect("delete");
    assert_eq!(refused.status(), 401);
    let challenge = refused
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"urn:sigil:acr:2fa phr\"")
            && challenge.contains("max_age=\"300\""),
        "RFC 9470 challenge: {challenge}"
    );
    let listed: Value = http
        .get(&todos)
        .bearer_auth(&one_factor.access_token_text)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "untouched: {listed}"
    );

    // The app does what the challenge says: acr_values at /authorize. bob adds a factor
    // on the way, and the new token is taken.
    let two_factor = rp
        .sign_in_with_scopes(Some(ACR_2FA), Some(300), &scopes, |url| async move {
            let page = bob.follow(&url).await;
            let (_, _, codes) = bob.add_app(&page, "Phone").await;
            let resume = between(
                &codes.body,
                "<a class=\"button primary\" href=\"",
                "\" id=\"codes-saved\"",
            );
            bob.follow(&resume).await.location.expect("to the app")
        })
        .await;
    assert_eq!(two_factor.acr.as_deref(), Some(ACR_2FA));
    let deleted = http
        .delete(&todos)
        .bearer_auth(&two_factor.access_token_text)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let listed: Value = http
        .get(&todos)
        .bearer_auth(&two_factor.access_token_text)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_done_sign_in_dies_with_a_sign_out_everywhere_and_needs_its_own_csrf() {
    let env = env(&[]);
    let browser = &Browser::new(&env);
    let security = browser.sign_in("alice").await;
    let (secret, enrolled_at, _) = browser.add_app(&security, "Phone").await;

    // The password is right; before the second step, alice is signed out everywhere
    // (say she reset her password): the right code no longer finishes that sign-in.
    let other = &Browser::new(&env);
    let step = other.sign_in("alice").await;
    assert!(step.url.contains("/login/second-factor"), "{}", step.url);
    let forged = other
        .post(
            "/login/second-factor",
            &[
                ("csrf", "not-the-token"),
                ("code", &code_at(&secret, enrolled_at + 30)),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "CSRF is checked: {}", forged.body);
    env.setup
        .sigil(&["user", "sign-out", "--username", "alice"], None);
    let late = other
        .second_factor(&step, &code_at(&secret, enrolled_at + 30))
        .await;
    assert!(
        late.url.ends_with("/login"),
        "back to the sign-in page: {} {}",
        late.url,
        late.body
    );
    let account = other.get("/account").await;
    assert_eq!(account.status, 303, "nobody is signed in");
}
