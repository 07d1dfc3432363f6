//! "Sign in with …" end to end: two real `sigil` servers, one the upstream OpenID Connect
//! provider of the other (and the same one again as a plain OAuth 2.0 provider through its
//! userinfo). The app is a relying party of the downstream Sigil built with the
//! `openidconnect` crate; the browser is a cookie-keeping reqwest client that follows
//! redirects across both servers. Two servers on one host share cookies across ports, so
//! each gets its own `--session-cookie-name`.
//!
//! A hostile provider (a small axum server in this test, with its own RSA key) answers
//! what no honest Sigil would: an ID token with another nonce, one from another issuer, a
//! mix-up `iss` in the authorization response. The same provider answering correctly signs
//! in, so each refusal is for the one thing that was wrong.

mod common;

use common::process::{free_port, Server, Setup};
use common::{hidden, TestDb};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    RedirectUrl, TokenResponse,
};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "federation correct horse";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// One Sigil in the test: its database, directory and process.
struct Sigil {
    _db: TestDb,
    setup: Setup,
    server: Server,
}

impl Sigil {
    fn start(cookie: &str, port: u16) -> Self {
        Self::start_with(cookie, port, &[])
    }

    fn start_with(cookie: &str, port: u16, serve: &[&str]) -> Self {
        let db = TestDb::sqlite();
        let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
        setup.sigil(&["migrate"], None);
        let mut options = vec!["--session-cookie-name", cookie];
        options.extend_from_slice(serve);
        let server = Server::start_on(&setup, &[], &options, port, &[]);
        Self {
            _db: db,
            setup,
            server,
        }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    fn add_user(&self, name: &str, email: &str) {
        self.setup.sigil(
            &[
                "user",
                "add",
                "--username",
                name,
                "--email",
                email,
                "--password-stdin",
            ],
            Some(PASSWORD),
        );
    }

    /// Registers a first-party client; returns its id and secret.
    fn add_client(&self, name: &str, redirect_uris: &[String], scopes: &str) -> (String, String) {
        let mut args = vec!["client", "add", "--name", name];
        for uri in redirect_uris {
            args.extend(["--redirect-uri", uri.as_str()]);
        }
        args.extend([
            "--scopes",
            scopes,
            "--first-party",
            "--grant-types",
            "authorization_code,refresh_token",
            "--json",
        ]);
        let out: Value = serde_json::from_str(&self.setup.sigil(&args, None)).expect("json");
        (
            out["client_id"].as_str().expect("id").into(),
            out["client_secret"].as_str().expect("secret").into(),
        )
    }

    fn users(&self) -> Vec<Value> {
        serde_json::from_str(&self.setup.sigil(&["user", "list", "--json"], None)).expect("json")
    }

    fn usernames(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .users()
            .iter()
            .map(|u| u["username"].as_str().expect("name").to_string())
            // The bootstrap admin of each server.
            .filter(|name| name != "admin")
            .collect();
        names.sort();
        names
    }

    fn audit_actions(&self, prefix: &str) -> Vec<Value> {
        self.setup
            .sigil(&["audit", "list", "--action", prefix, "--json"], None)
            .lines()
            .map(|line| serde_json::from_str(line).expect("json line"))
            .collect()
    }
}

/// The upstream Sigil, the downstream one (whose sign-in page offers the upstream), and
/// the app's client at the downstream one.
struct World {
    up: Sigil,
    down: Sigil,
    app: (String, String),
}

fn callback_of(down_port: u16, provider: &str) -> String {
    format!("http://127.0.0.1:{down_port}/login/provider/{provider}/callback")
}

fn world() -> World {
    world_with(&[])
}

/// The world with extra `serve` options for the downstream Sigil.
fn world_with(down_options: &[&str]) -> World {
    let up = Sigil::start("up_session", free_port());
    let down_port = free_port();
    up.add_user("ada", "ada@example.com");
    up.add_user("grace", "grace@example.com");
    up.add_user("lin", "lin@example.com");
    let (up_id, up_secret) = up.add_client(
        "Downstream Sigil",
        &[
            callback_of(down_port, "up"),
            callback_of(down_port, "up-oauth2"),
            callback_of(down_port, "up-bad-scope"),
        ],
        "openid,profile,email",
    );
    let down = Sigil::start_with("down_session", down_port, down_options);
    // grace has an account of her own downstream, with the same address.
    down.add_user("grace", "grace@example.com");
    let app = down.add_client("App", &[CALLBACK.to_string()], "openid,profile,email");
    // Added while the downstream server runs: it needs no restart.
    for (id, extra) in [
        ("up", vec![]),
        (
            "up-oauth2",
            vec![
                "--kind".to_string(),
                "oauth2".to_string(),
                "--authorize-url".to_string(),
                format!("{}/authorize", up.base()),
                "--token-url".to_string(),
                format!("{}/token", up.base()),
                "--userinfo-url".to_string(),
                format!("{}/userinfo", up.base()),
                "--subject-claim".to_string(),
                "sub".to_string(),
                "--scopes".to_string(),
                "openid,profile,email".to_string(),
            ],
        ),
        (
            "up-bad-scope",
            vec!["--scopes".to_string(), "openid,profile,admin".to_string()],
        ),
    ] {
        let name = match id {
            "up" => "Upstream",
            "up-oauth2" => "Upstream OAuth",
            _ => "Upstream Broken",
        };
        let mut args = vec![
            "provider",
            "add",
            "--id",
            id,
            "--name",
            name,
            "--issuer",
            up.base(),
            "--client-id",
            up_id.as_str(),
            "--client-secret-stdin",
            "--create-users",
            "--trust-email",
            "--allow-http",
        ];
        args.extend(extra.iter().map(String::as_str));
        let out = down.setup.sigil(&args, Some(&up_secret));
        assert!(
            out.contains(&format!("/login/provider/{id}/callback")),
            "the redirect URI to register is printed: {out}"
        );
    }
    World { up, down, app }
}

/// One answer: its status, its URL, where it redirects to (absolute), and its body.
struct Answer {
    status: u16,
    url: String,
    location: Option<String>,
    body: String,
}

/// A browser: keeps cookies (per host, as browsers do, so both servers see each other's
/// unless the names differ), follows redirects itself across both servers.
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .expect("client"),
        }
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let url = response.url().clone();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| url.join(l).expect("location").to_string());
        Answer {
            status,
            url: url.to_string(),
            location,
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&self, url: &str) -> Answer {
        Self::answer(self.http.get(url).send().await.expect("get")).await
    }

    /// Follows redirects from `url` until a page (returned) or the app's callback
    /// (returned with the callback as its `location`).
    async fn follow(&self, url: &str) -> Answer {
        let mut next = url.to_string();
        for _ in 0..15 {
            if next.starts_with(CALLBACK) {
                return Answer {
                    status: 302,
                    url: next.clone(),
                    location: Some(next),
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

    async fn submit(&self, url: &str, form: &[(&str, &str)]) -> Answer {
        let answer = Self::answer(self.http.post(url).form(form).send().await.expect("post")).await;
        match &answer.location {
            Some(location) if (300..400).contains(&answer.status) => {
                let location = location.clone();
                self.follow(&location).await
            }
            _ => answer,
        }
    }

    /// Types a password on the sign-in page `page` (of either server).
    async fn password(&self, page: &Answer, username: &str, password: &str) -> Answer {
        assert!(
            page.url.contains("/login"),
            "a sign-in page: {} {}",
            page.url,
            page.body
        );
        let action = url::Url::parse(&page.url)
            .expect("url")
            .join("/login")
            .expect("join")
            .to_string();
        let csrf = hidden(&page.body, "csrf");
        let req = hidden(&page.body, "req");
        let next = if page.body.contains("name=\"next\"") {
            hidden(&page.body, "next")
        } else {
            String::new()
        };
        self.submit(
            &action,
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("next", &next),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

/// The `href` of the sign-in page's "Sign in with NAME" link, absolute.
fn provider_link(page: &Answer, name: &str) -> String {
    let label = format!(">Sign in with {name}</a>");
    let end = page
        .body
        .find(&label)
        .unwrap_or_else(|| panic!("no {label} on {}", page.body));
    let start = page.body[..end].rfind("href=\"").expect("href") + "href=\"".len();
    let href = page.body[start..end]
        .split('"')
        .next()
        .expect("href")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/");
    url::Url::parse(&page.url)
        .expect("url")
        .join(&href)
        .expect("join")
        .to_string()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect()
}

/// The app: a relying party of the downstream Sigil.
struct App {
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

/// An authorization request of the app, and what its callback needs.
struct Request {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: openidconnect::PkceCodeVerifier,
}

/// What the app learnt from the ID token (validated by the library).
#[derive(Debug)]
struct Signed {
    subject: String,
    username: Option<String>,
    amr: Vec<String>,
}

impl App {
    async fn discover(world: &World) -> Self {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client");
        let metadata = CoreProviderMetadata::discover_async(
            IssuerUrl::new(world.down.base().to_string()).expect("issuer"),
            &http,
        )
        .await
        .expect("discovery");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(world.app.0.clone()),
            Some(ClientSecret::new(world.app.1.clone())),
        )
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect"));
        Self { client, http }
    }

    fn request(&self) -> Request {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(openidconnect::Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Request {
            url: url.to_string(),
            state,
            nonce,
            verifier,
        }
    }

    async fn finish(&self, request: Request, callback: &Answer) -> Signed {
        let location = callback
            .location
            .as_deref()
            .filter(|l| l.starts_with(CALLBACK))
            .unwrap_or_else(|| {
                panic!(
                    "back at the app, not {} {}: {}",
                    callback.status, callback.url, callback.body
                )
            });
        let params = query_of(location);
        assert_eq!(params.get("state"), Some(request.state.secret()));
        let code = params
            .get("code")
            .unwrap_or_else(|| panic!("a code: {location}"));
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .expect("token endpoint")
            .set_pkce_verifier(request.verifier)
            .request_async(&self.http)
            .await
            .expect("code exchange");
        let claims = tokens
            .id_token()
            .expect("an ID token")
            .claims(&self.client.id_token_verifier(), &request.nonce)
            .expect("the library validates the ID token");
        Signed {
            subject: claims.subject().to_string(),
            username: claims.preferred_username().map(|u| u.to_string()),
            amr: claims
                .auth_method_refs()
                .map(|values| values.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default(),
        }
    }
}

/// From the app's authorization request, through "Sign in with NAME", to the upstream's
/// sign-in page.
async fn to_upstream(browser: &Browser, request: &Request, name: &str) -> Answer {
    let page = browser.follow(&request.url).await;
    assert_eq!(
        page.status, 200,
        "the downstream sign-in page: {}",
        page.body
    );
    browser.follow(&provider_link(&page, name)).await
}

/// The whole round trip for `upstream_user`, ending back at the app or on a page.
async fn via_upstream(browser: &Browser, request: &Request, name: &str, user: &str) -> Answer {
    let upstream_page = to_upstream(browser, request, name).await;
    assert!(
        upstream_page.url.contains("/login"),
        "the upstream's sign-in page: {} {}",
        upstream_page.url,
        upstream_page.body
    );
    browser.password(&upstream_page, user, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openid_connect_upstream_creates_signs_in_and_links_only_with_the_password() {
    let world = world();
    let app = App::discover(&world).await;

    // First sign-in: a new account, made from the upstream's claims.
    let browser = Browser::new();
    let request = app.request();
    let upstream_page = to_upstream(&browser, &request, "Upstream").await;
    assert!(
        upstream_page.url.starts_with(world.up.base()),
        "the browser is at the upstream: {}",
        upstream_page.url
    );
    let back = browser.password(&upstream_page, "ada", PASSWORD).await;
    let first = app.finish(request, &back).await;
    assert_eq!(first.username.as_deref(), Some("ada"));
    assert!(
        first.amr.contains(&"fed".to_string()),
        "amr {:?}",
        first.amr
    );
    assert!(
        !first.amr.contains(&"pwd".to_string()),
        "amr {:?}",
        first.amr
    );
    let ada = world
        .down
        .users()
        .into_iter()
        .find(|u| u["username"] == "ada")
        .expect("ada was made downstream");
    assert_eq!(ada["email"], "ada@example.com");
    assert_eq!(ada["email_verified"], true, "the provider vouches for it");
    assert_eq!(ada["user_id"].as_str(), Some(first.subject.as_str()));

    // Second sign-in, in another browser: the same account.
    let again = app.request();
    let back = via_upstream(&Browser::new(), &again, "Upstream", "ada").await;
    let second = app.finish(again, &back).await;
    assert_eq!(second.subject, first.subject);
    assert_eq!(world.down.usernames(), vec!["ada", "grace"]);

    // The account page lists the link; ada has no password, so it cannot be unlinked.
    let page = browser
        .follow(&format!("{}/account/providers", world.down.base()))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<strong>Upstream</strong>"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf");
    let issuer = hidden(&page.body, "issuer");
    let subject = hidden(&page.body, "subject");
    let refused = browser
        .submit(
            &format!("{}/account/providers/unlink", world.down.base()),
            &[("csrf", &csrf), ("issuer", &issuer), ("subject", &subject)],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("only way you can sign in"));
    // Without the CSRF token nothing happens either.
    let forged = browser
        .submit(
            &format!("{}/account/providers/unlink", world.down.base()),
            &[
                ("csrf", "forged"),
                ("issuer", &issuer),
                ("subject", &subject),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);

    // grace upstream has the address of grace downstream: nothing links until she signs
    // in to the downstream account with its own password.
    let browser = Browser::new();
    let request = app.request();
    let asked = via_upstream(&browser, &request, "Upstream", "grace").await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(
        asked.body.contains("Sign in to link your account"),
        "{}",
        asked.body
    );
    assert_eq!(
        world.down.usernames(),
        vec!["ada", "grace"],
        "no account made"
    );
    assert!(
        world.down.audit_actions("federation.linked").is_empty(),
        "nothing linked yet"
    );
    let back_link = hidden_link(&asked.body);
    let login = browser
        .follow(&format!("{}{back_link}", world.down.base()))
        .await;
    let wrong = browser.password(&login, "grace", "not her password").await;
    assert_eq!(wrong.status, 401);
    assert!(world.down.audit_actions("federation.linked").is_empty());
    let confirm = browser.password(&login, "grace", PASSWORD).await;
    // The account is proven; the link is made once she says so.
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("Link your Upstream account?")
            && confirm.body.contains("grace@example.com"),
        "{}",
        confirm.body
    );
    assert!(world.down.audit_actions("federation.linked").is_empty());
    let back = decide(&browser, &confirm, "link").await;
    let proven = app.finish(request, &back).await;
    assert!(proven.amr.contains(&"pwd".to_string()), "{:?}", proven.amr);
    let linked = world.down.audit_actions("federation.linked");
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!(linked[0]["actor"], "grace");
    // From now on the upstream sign-in is grace's own account.
    let request = app.request();
    let back = via_upstream(&Browser::new(), &request, "Upstream", "grace").await;
    let federated = app.finish(request, &back).await;
    assert_eq!(federated.subject, proven.subject);
    assert_eq!(federated.username.as_deref(), Some("grace"));
    assert!(federated.amr.contains(&"fed".to_string()));
    assert_eq!(world.down.usernames(), vec!["ada", "grace"]);

    // grace has a password: she may unlink it, and then it asks for the password again.
    let page = browser
        .follow(&format!("{}/account/providers", world.down.base()))
        .await;
    let csrf = hidden(&page.body, "csrf");
    let issuer = hidden(&page.body, "issuer");
    let subject = hidden(&page.body, "subject");
    let unlinked = browser
        .submit(
            &format!("{}/account/providers/unlink", world.down.base()),
            &[("csrf", &csrf), ("issuer", &issuer), ("subject", &subject)],
        )
        .await;
    assert_eq!(unlinked.status, 200, "{}", unlinked.body);
    assert!(unlinked.body.contains("None linked"), "{}", unlinked.body);
    assert_eq!(world.down.audit_actions("federation.unlinked").len(), 1);
    let request = app.request();
    let browser = Browser::new();
    let asked = via_upstream(&browser, &request, "Upstream", "grace").await;
    assert!(asked.body.contains("Sign in to link your account"));
    // This time she declines: signed in with her password, nothing linked.
    let login = browser
        .follow(&format!(
            "{}{}",
            world.down.base(),
            hidden_link(&asked.body)
        ))
        .await;
    let confirm = browser.password(&login, "grace", PASSWORD).await;
    let back = decide(&browser, &confirm, "skip").await;
    let declined = app.finish(request, &back).await;
    assert_eq!(declined.subject, proven.subject);
    assert!(declined.amr.contains(&"pwd".to_string()));
    assert_eq!(world.down.audit_actions("federation.linked").len(), 1);
    let page = browser
        .follow(&format!("{}/account/providers", world.down.base()))
        .await;
    assert!(page.body.contains("None linked"), "{}", page.body);

    // Every sign-in through the provider is audited.
    assert_eq!(world.down.audit_actions("federation.sign_in").len(), 2);
    assert_eq!(world.down.audit_actions("federation.user_created").len(), 1);

    // A provider removed while the server runs is gone from the sign-in page at once.
    world
        .down
        .setup
        .sigil(&["provider", "remove", "--id", "up"], None);
    let page = Browser::new().follow(&app.request().url).await;
    assert!(
        !page.body.contains(">Sign in with Upstream</a>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(">Sign in with Upstream OAuth</a>"));
    let list = world
        .down
        .setup
        .sigil(&["provider", "list", "--json"], None);
    let list: Value = serde_json::from_str(&list).expect("json");
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        !list.to_string().contains("secret"),
        "no secret listed: {list}"
    );
}

/// Answers the "Link your … account?" page `page` with `decision` (`link` or `skip`).
async fn decide(browser: &Browser, page: &Answer, decision: &str) -> Answer {
    assert!(
        page.url.contains("/login/link-provider"),
        "{} {}",
        page.url,
        page.body
    );
    let action = url::Url::parse(&page.url)
        .expect("url")
        .join("/login/link-provider")
        .expect("join")
        .to_string();
    let csrf = hidden(&page.body, "csrf");
    let req = hidden(&page.body, "req");
    browser
        .submit(
            &action,
            &[("csrf", &csrf), ("req", &req), ("decision", decision)],
        )
        .await
}

/// The sign-in link of a "sign in to link" page.
fn hidden_link(body: &str) -> String {
    let start = body.find("<p class=\"links\"><a href=\"").expect("a link")
        + "<p class=\"links\"><a href=\"".len();
    body[start..]
        .split('"')
        .next()
        .expect("href")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_oauth2_upstream_signs_in_through_its_userinfo() {
    let world = world();
    let app = App::discover(&world).await;
    let request = app.request();
    let back = via_upstream(&Browser::new(), &request, "Upstream OAuth", "lin").await;
    if back.status == 400 {
        let log = std::fs::read_to_string(world.down.setup.log_path()).unwrap_or_default();
        let failures: Vec<&str> = log.lines().filter(|l| l.contains("upstream")).collect();
        panic!("refused: {failures:?}");
    }
    let first = app.finish(request, &back).await;
    assert_eq!(first.username.as_deref(), Some("lin"));
    assert!(first.amr.contains(&"fed".to_string()));
    let lin = world
        .down
        .users()
        .into_iter()
        .find(|u| u["username"] == "lin")
        .expect("lin was made");
    assert_eq!(lin["email"], "lin@example.com");
    let request = app.request();
    let back = via_upstream(&Browser::new(), &request, "Upstream OAuth", "lin").await;
    assert_eq!(app.finish(request, &back).await.subject, first.subject);
    // The OAuth 2.0 provider keeps identities under the same issuer: the OpenID Connect
    // provider of the same upstream finds the same account.
    let request = app.request();
    let back = via_upstream(&Browser::new(), &request, "Upstream", "lin").await;
    assert_eq!(app.finish(request, &back).await.subject, first.subject);
    assert_eq!(world.down.usernames(), vec!["grace", "lin"]);
}

/// How the hostile provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// An ID token whose nonce is not the one asked for.
    WrongNonce,
    /// An ID token whose issuer is another provider's.
    OtherIssuer,
    /// An authorization response carrying another provider's `iss` (RFC 9207).
    MixUp,
    /// Everything right.
    Honest,
}

struct HostileState {
    mode: Mutex<Hostile>,
    nonce: Mutex<String>,
    issuer: String,
    other_issuer: String,
    key_pem: Vec<u8>,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serves a provider that signs what the test tells it to, on this test's runtime.
async fn hostile_provider(other_issuer: &str) -> Arc<HostileState> {
    let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state = Arc::new(HostileState {
        mode: Mutex::new(Hostile::Honest),
        nonce: Mutex::new(String::new()),
        issuer: format!("http://127.0.0.1:{port}"),
        other_issuer: other_issuer.to_string(),
        key_pem: rsa.private_key_to_pem().expect("pem"),
        jwk: json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "hostile-1",
            "n": b64(&rsa.n().to_vec()), "e": b64(&rsa.e().to_vec()),
        }),
    });
    tokio::spawn(serve_hostile(listener, state.clone()));
    state
}

async fn serve_hostile(listener: tokio::net::TcpListener, state: Arc<HostileState>) {
    use axum::extract::{Query, State};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    use axum::Json;
    type Shared = State<Arc<HostileState>>;
    async fn discovery(State(s): Shared) -> Json<Value> {
        Json(json!({
            "issuer": s.issuer,
            "authorization_endpoint": format!("{}/authorize", s.issuer),
            "token_endpoint": format!("{}/token", s.issuer),
            "jwks_uri": format!("{}/jwks", s.issuer),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }))
    }
    async fn jwks(State(s): Shared) -> Json<Value> {
        Json(json!({ "keys": [s.jwk] }))
    }
    async fn authorize(
        State(s): Shared,
        Query(q): Query<HashMap<String, String>>,
    ) -> impl IntoResponse {
        *s.nonce.lock().expect("lock") = q.get("nonce").cloned().unwrap_or_default();
        let mut target =
            url::Url::parse(q.get("redirect_uri").expect("redirect_uri")).expect("redirect uri");
        target
            .query_pairs_mut()
            .append_pair("code", "hostile-code")
            .append_pair("state", q.get("state").expect("state"));
        if *s.mode.lock().expect("lock") == Hostile::MixUp {
            target.query_pairs_mut().append_pair("iss", &s.other_issuer);
        }
        Redirect::to(target.as_str())
    }
    async fn token(State(s): Shared) -> Json<Value> {
        let mode = *s.mode.lock().expect("lock");
        let now = common::unix_now();
        let claims = json!({
            "iss": if mode == Hostile::OtherIssuer { s.other_issuer.clone() } else { s.issuer.clone() },
            "sub": "mallory-1",
            "aud": "sigil-at-hostile",
            "exp": now + 300,
            "iat": now,
            "nonce": if mode == Hostile::WrongNonce { "not-the-nonce".to_string() } else { s.nonce.lock().expect("lock").clone() },
            "email": "mallory@example.com",
            "email_verified": true,
            "preferred_username": "mallory",
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("hostile-1".into());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&s.key_pem).expect("key");
        let id_token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
        Json(json!({
            "access_token": "hostile-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }))
    }
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(state);
    axum::serve(listener, app).await.expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_state_wrong_nonce_other_issuer_and_upstream_errors_end_on_a_page() {
    let world = world();
    let app = App::discover(&world).await;
    let hostile = hostile_provider(world.up.base()).await;
    world.down.setup.sigil(
        &[
            "provider",
            "add",
            "--id",
            "hostile",
            "--name",
            "Hostile",
            "--issuer",
            &hostile.issuer,
            "--client-id",
            "sigil-at-hostile",
            "--client-secret-stdin",
            "--create-users",
            "--trust-email",
            "--allow-http",
        ],
        Some("hostile secret"),
    );
    let users_before = world.down.usernames();
    let refused_page = |answer: &Answer, what: &str| {
        assert_eq!(answer.status, 400, "{what}: {} {}", answer.url, answer.body);
        assert!(
            answer.url.starts_with(world.down.base()),
            "{what}: a page at Sigil, not a redirect to the app: {}",
            answer.url
        );
        assert!(
            answer.body.contains("href=\"/login"),
            "{what}: leads back to sign-in: {}",
            answer.body
        );
    };

    // A callback nobody started here: refused, whatever it carries.
    let browser = Browser::new();
    let forged = browser
        .follow(&format!(
            "{}/login/provider/up/callback?code=stolen&state=forged",
            world.down.base()
        ))
        .await;
    refused_page(&forged, "forged state");
    assert!(forged.body.contains("does not belong"), "{}", forged.body);
    // A real state replayed: the first use consumed it.
    let request = app.request();
    let page = browser.follow(&request.url).await;
    let started = browser
        .get(&provider_link(&page, "Upstream"))
        .await
        .location
        .expect("to the upstream");
    let state = query_of(&started)["state"].clone();
    let stale = browser
        .follow(&format!(
            "{}/login/provider/up-oauth2/callback?code=x&state={state}",
            world.down.base()
        ))
        .await;
    refused_page(&stale, "a state of another provider");
    let replay = browser
        .follow(&format!(
            "{}/login/provider/up/callback?code=x&state={state}",
            world.down.base()
        ))
        .await;
    refused_page(&replay, "a used state");

    for (mode, what) in [
        (Hostile::WrongNonce, "wrong nonce"),
        (Hostile::OtherIssuer, "an ID token from another issuer"),
        (Hostile::MixUp, "a mix-up iss"),
    ] {
        *hostile.mode.lock().expect("lock") = mode;
        let request = app.request();
        let browser = Browser::new();
        let page = browser.follow(&request.url).await;
        let answer = browser.follow(&provider_link(&page, "Hostile")).await;
        refused_page(&answer, what);
        assert!(
            answer.body.contains("could not be accepted"),
            "{what}: {}",
            answer.body
        );
        assert_eq!(world.down.usernames(), users_before, "{what}: no account");
    }
    let refusals = world.down.audit_actions("federation.refused");
    assert!(refusals.len() >= 3, "{refusals:?}");
    let details: Vec<String> = refusals
        .iter()
        .map(|r| r["detail"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert!(details.iter().any(|d| d.contains("nonce")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("issuer")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("9207")), "{details:?}");

    // An upstream error (the upstream refuses a scope): a page, nothing made.
    let request = app.request();
    let browser = Browser::new();
    let page = browser.follow(&request.url).await;
    let answer = browser
        .follow(&provider_link(&page, "Upstream Broken"))
        .await;
    refused_page(&answer, "an upstream error");
    assert!(answer.body.contains("invalid_scope"), "{}", answer.body);
    assert_eq!(world.down.usernames(), users_before);

    // The same hostile provider answering right does sign in: each refusal above was
    // for the one thing that was wrong.
    *hostile.mode.lock().expect("lock") = Hostile::Honest;
    let request = app.request();
    let browser = Browser::new();
    let page = browser.follow(&request.url).await;
    let back = browser.follow(&provider_link(&page, "Hostile")).await;
    let signed = app.finish(request, &back).await;
    assert_eq!(signed.username.as_deref(), Some("mallory"));

    // --allow-http is for loopback issuers only.
    use std::io::Write;
    let mut refused = std::process::Command::new(common::process::SIGIL)
        .args([
            "--database-url",
            &world.down.setup.database_url,
            "--keys-dir",
        ])
        .arg(world.down.setup.keys())
        .args([
            "provider",
            "add",
            "--id",
            "remote",
            "--name",
            "Remote",
            "--issuer",
            "http://idp.example.com",
            "--client-id",
            "x",
            "--client-secret-stdin",
            "--allow-http",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    refused
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a secret")
        .expect("write");
    let refused = refused.wait_with_output().expect("wait");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("loopback"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_second_factor_policy_still_applies_after_an_upstream_sign_in() {
    let world = world_with(&["--mfa", "required"]);
    let app = App::discover(&world).await;
    let request = app.request();
    let answer = via_upstream(&Browser::new(), &request, "Upstream", "ada").await;
    // No code for the app yet: the new account adds a second factor first.
    assert!(
        answer.location.is_none() && answer.url.contains("/account/security"),
        "enrolment first: {} {}",
        answer.url,
        answer.body
    );
    assert!(answer.body.contains("authenticator app"), "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_links_another_identity_from_its_page() {
    let world = world();
    let app = App::discover(&world).await;
    let down = world.down.base();
    // grace signs in downstream with her password and links the upstream account "lin".
    let browser = Browser::new();
    let login = browser
        .follow(&format!("{down}/login?next=/account/providers"))
        .await;
    let page = browser.password(&login, "grace", PASSWORD).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("None linked"), "{}", page.body);
    let csrf = hidden(&page.body, "csrf");
    // The form needs the session's CSRF token.
    let forged = browser
        .submit(
            &format!("{down}/account/providers/link"),
            &[("csrf", "forged"), ("provider", "up")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let upstream_page = browser
        .submit(
            &format!("{down}/account/providers/link"),
            &[("csrf", &csrf), ("provider", "up")],
        )
        .await;
    assert!(
        upstream_page.url.starts_with(world.up.base()),
        "{}",
        upstream_page.url
    );
    let linked = browser.password(&upstream_page, "lin", PASSWORD).await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    assert!(linked.url.contains("notice=linked"), "{}", linked.url);
    assert!(linked.body.contains("<strong>Upstream</strong>"));
    assert!(linked.body.contains("lin@example.com"));
    // Signing in as lin upstream is now grace downstream; no account "lin" was made.
    let request = app.request();
    let back = via_upstream(&Browser::new(), &request, "Upstream", "lin").await;
    let signed = app.finish(request, &back).await;
    assert_eq!(signed.username.as_deref(), Some("grace"));
    assert_eq!(world.down.usernames(), vec!["grace"]);

    // ada (made through the provider) cannot take lin's identity: it is linked already.
    let browser = Browser::new();
    let request = app.request();
    let back = via_upstream(&browser, &request, "Upstream", "ada").await;
    app.finish(request, &back).await;
    let page = browser.follow(&format!("{down}/account/providers")).await;
    let csrf = hidden(&page.body, "csrf");
    let upstream_page = browser
        .submit(
            &format!("{down}/account/providers/link"),
            &[("csrf", &csrf), ("provider", "up")],
        )
        .await;
    // Still signed in upstream as ada, the browser comes straight back with ada's own
    // identity, which is linked already (to ada): refused, nothing changed.
    assert_eq!(
        upstream_page.status, 409,
        "{} {}",
        upstream_page.url, upstream_page.body
    );
    assert!(upstream_page.body.contains("Already linked"));
    assert_eq!(world.down.audit_actions("federation.linked").len(), 1);
    let unknown = browser
        .submit(
            &format!("{down}/account/providers/link"),
            &[("csrf", &csrf), ("provider", "no-such")],
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgresql_sign_in_through_a_provider_added_while_they_run() {
    let Some(db) = TestDb::postgres("federation_replicas").await else {
        return;
    };
    let up = Sigil::start("up_session", free_port());
    up.add_user("ada", "ada@example.com");
    // Two replicas behind one issuer share the database and the keys directory.
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let one = Server::start_on(
        &setup,
        &[],
        &["--issuer", &issuer, "--session-cookie-name", "down_session"],
        port,
        &[],
    );
    let two = Server::start_on(
        &setup,
        &[],
        &["--issuer", &issuer, "--session-cookie-name", "down_session"],
        free_port(),
        &[],
    );
    let (up_id, up_secret) = up.add_client(
        "Downstream",
        &[format!("{issuer}/login/provider/up/callback")],
        "openid,profile,email",
    );
    for server in [&one, &two] {
        let page = Browser::new()
            .follow(&format!("{}/login", server.base))
            .await;
        assert!(!page.body.contains("Sign in with Upstream"));
    }
    setup.sigil(
        &[
            "provider",
            "add",
            "--id",
            "up",
            "--name",
            "Upstream",
            "--issuer",
            up.base(),
            "--client-id",
            &up_id,
            "--client-secret-stdin",
            "--create-users",
            "--allow-http",
        ],
        Some(&up_secret),
    );
    // Both replicas offer it at once, and the second one (whose keys directory is shared,
    // so it opens the sealed secret) completes a sign-in through it.
    for server in [&one, &two] {
        let page = Browser::new()
            .follow(&format!("{}/login", server.base))
            .await;
        assert!(
            page.body.contains(">Sign in with Upstream</a>"),
            "{}",
            page.body
        );
    }
    let browser = Browser::new();
    let start = browser
        .get(&format!("{}/login/provider/up", two.base))
        .await
        .location
        .expect("to the upstream");
    assert!(start.starts_with(up.base()), "{start}");
    let page = browser.follow(&start).await;
    // The upstream sends the browser to the issuer's address: the first replica takes
    // the callback of a sign-in the second one started (the session is in the database).
    let done = browser.password(&page, "ada", PASSWORD).await;
    assert_eq!(done.status, 200, "{} {}", done.url, done.body);
    assert!(
        done.body.contains("You are signed in as ada"),
        "{}",
        done.body
    );
    drop((one, two));
}
