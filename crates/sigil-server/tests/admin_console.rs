//! The admin console in process (tower `oneshot`, real SQLite, a cookie jar by hand):
//! who gets in, CSRF on every form, validation shown on the form, the secret shown once,
//! disabling a user, identity providers (their client secret sealed), the audit log; and
//! `sigil audit verify` (the real binary) finding an edited or deleted row.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::process::{Server, Setup, ADMIN_PASSWORD, SIGIL};
use common::{hidden, TestApp, TestDb};
use http_body_util::BodyExt;
use sigil_core::audit::AuditFilter;
use sigil_core::client::ClientRegistration;
use sigil_core::secret::Secret;
use std::collections::HashMap;
use std::net::SocketAddr;
use tower::ServiceExt;

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A browser's worth of state: cookies, and the address it comes from.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Page {
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse().expect("cookie header"));
        }
        let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = self
            .app
            .router()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("request"),
        )
        .await
    }

    /// Signs in through the real form, coming from `/admin`.
    async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let login = self.get("/login?next=%2Fadmin").await;
        assert_eq!(login.status, StatusCode::OK);
        let csrf = hidden(&login.body, "csrf");
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
                ("next", "/admin"),
            ],
        )
        .await
    }

    /// The CSRF token of a page's forms.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        hidden(&page.body, "csrf")
    }
}

/// The value of a hidden input in a page.
/// The value of the element with an id (the secret field).
fn value_of_id(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let value = rest.find("value=\"")? + "value=\"".len();
    Some(rest[value..].split('"').next()?.to_string())
}

async fn app_with_admin() -> TestApp {
    let app = TestApp::start(TestDb::sqlite(), &[]).await;
    let admin = app.add_user("root", "topmost pass phrase 1").await;
    let mut admin = admin.clone();
    admin.is_admin = true;
    app.state
        .database
        .store()
        .update_user(&admin)
        .await
        .expect("make admin");
    app
}

async fn token_request(
    app: &TestApp,
    body: &str,
    basic: (&str, &str),
) -> (StatusCode, serde_json::Value) {
    let credentials = STANDARD.encode(format!("{}:{}", basic.0, basic.1));
    let response = app
        .router()
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {credentials}"))
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn only_admins_get_in() {
    let app = app_with_admin().await;
    app.add_user("pat", "third pass phrase 1").await;

    // Anonymous: sent to sign in, and back afterwards.
    let mut anonymous = Browser::new(&app);
    let page = anonymous.get("/admin/clients?q=x").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fadmin%2Fclients%3Fq%3Dx");
    let page = anonymous.post("/admin/clients/new", &[("name", "x")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
    assert!(app
        .state
        .database
        .store()
        .list_clients(None, 10)
        .await
        .expect("list")
        .is_empty());

    // Signed in without the role: 403, for pages and for actions.
    let mut pat = Browser::new(&app);
    let page = pat.sign_in("pat", "third pass phrase 1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    for path in [
        "/admin",
        "/admin/users",
        "/admin/keys",
        "/admin/audit",
        "/admin/providers",
        "/admin/providers/new",
    ] {
        let page = pat.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    let page = pat.post("/admin/keys/rotate", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    // An admin signs in and lands on the page asked for.
    let mut root = Browser::new(&app);
    let page = root.sign_in("root", "topmost pass phrase 1").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/admin");
    let page = root.get("/admin").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Overview"));
    let csp = page
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(
        page.headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );

    // `next` only ever leads into the admin console.
    let mut other = Browser::new(&app);
    let login = other.get("/login").await;
    let csrf = hidden(&login.body, "csrf");
    let page = other
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", "root"),
                ("password", "topmost pass phrase 1"),
                ("next", "https://evil.example.com/"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "no redirect off-site");
    assert!(page.location().is_empty());
}

#[tokio::test]
async fn every_form_needs_the_csrf_token() {
    let app = app_with_admin().await;
    let victim = app.add_user("victim", "target's pass phrase").await;
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf("/admin/clients/new").await;
    let disable = format!("/admin/users/{}/disable", victim.id);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/admin/clients/new", vec![("name", "Forged")]),
        (
            "/admin/clients/new",
            vec![("name", "Forged"), ("csrf", "wrong")],
        ),
        (&disable, vec![]),
        (&disable, vec![("csrf", "0000")]),
        ("/admin/keys/rotate", vec![("csrf", "")]),
    ];
    for (path, fields) in cases {
        let page = root.post(path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {fields:?}");
        assert!(page.body.contains("This form has expired"));
    }
    let store = app.state.database.store();
    assert!(store.list_clients(None, 10).await.expect("list").is_empty());
    let victim = store
        .find_user(&victim.id)
        .await
        .expect("find")
        .expect("user");
    assert!(!victim.is_disabled);
    assert_eq!(app.state.authority.keys().current().keys().len(), 1);

    // With the token, the same action works.
    let page = root.post(&disable, &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let victim = store
        .find_user(&victim.id)
        .await
        .expect("find")
        .expect("user");
    assert!(victim.is_disabled);
}

#[tokio::test]
async fn bad_client_input_is_explained_on_the_form() {
    let app = app_with_admin().await;
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf("/admin/clients/new").await;
    let cases = [
        ("http://app.example.com/cb", "must use https"),
        (
            "https://app.example.com/cb#top",
            "must not contain a fragment",
        ),
        ("/relative/cb", "must be an absolute URI"),
        ("javascript:alert(1)", "this scheme is not allowed"),
        ("myapp:/cb", "reverse domain name"),
        // RFC 8252 §8.3: the loopback IP literal, not localhost.
        ("http://localhost:8000/cb", "must not use localhost"),
    ];
    for (uri, message) in cases {
        let page = root
            .post(
                "/admin/clients/new",
                &[
                    ("csrf", &csrf),
                    ("name", "Shop"),
                    ("client_type", "confidential"),
                    ("redirect_uris", uri),
                    ("grant_types", "authorization_code"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert!(page.body.contains(message), "{uri}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""));
        assert!(
            page.body.contains("value=\"Shop\""),
            "the form keeps what was typed"
        );
    }
    let page = root
        .post(
            "/admin/clients/new",
            &[
                ("csrf", &csrf),
                ("name", "Shop"),
                ("client_type", "public"),
                ("grant_types", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page
        .body
        .contains("a public client cannot use the client_credentials grant"));
    let page = root
        .post(
            "/admin/clients/new",
            &[
                ("csrf", &csrf),
                ("name", "Shop"),
                ("access_token_ttl", "ten"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("whole number of seconds"));
    assert!(app
        .state
        .database
        .store()
        .list_clients(None, 10)
        .await
        .expect("list")
        .is_empty());

    let page = root
        .post(
            "/admin/users/new",
            &[
                ("csrf", &csrf),
                ("username", "has space"),
                ("password", "long enough 1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("user name may contain"));
    let page = root
        .post(
            "/admin/users/new",
            &[
                ("csrf", &csrf),
                ("username", "short"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("at least 8 characters"));
}

#[tokio::test]
async fn browser_origins_and_back_channel_logout_are_set_on_the_client_form() {
    let app = app_with_admin().await;
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf("/admin/clients/new").await;
    for (field, value, message) in [
        ("allowed_origins", "*", "not a wildcard"),
        (
            "allowed_origins",
            "https://spa.example.com/app",
            "without a path",
        ),
        (
            "allowed_origins",
            "http://spa.example.com",
            "must use https",
        ),
        (
            "backchannel_logout_uri",
            "http://rp.example.com/bcl",
            "must use https",
        ),
        (
            "backchannel_logout_uri",
            "https://rp.example.com/bcl#x",
            "fragment",
        ),
    ] {
        let page = root
            .post(
                "/admin/clients/new",
                &[
                    ("csrf", &csrf),
                    ("name", "Spa"),
                    ("client_type", "public"),
                    ("redirect_uris", "https://spa.example.com/cb"),
                    (field, value),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
        assert!(page.body.contains(message), "{value}: {}", page.body);
    }
    let page = root
        .post(
            "/admin/clients/new",
            &[
                ("csrf", &csrf),
                ("name", "Spa"),
                ("client_type", "public"),
                ("redirect_uris", "https://spa.example.com/cb"),
                (
                    "allowed_origins",
                    "HTTPS://Spa.Example.com\nhttp://127.0.0.1:5173\nhttps://spa.example.com",
                ),
                ("backchannel_logout_uri", "https://spa.example.com/bcl"),
                ("backchannel_logout_session_required", "1"),
                ("dpop_bound_access_tokens", "1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let clients = app
        .state
        .database
        .store()
        .list_clients(None, 10)
        .await
        .expect("list");
    let client = clients.first().expect("created");
    assert_eq!(
        client.allowed_origins,
        ["https://spa.example.com", "http://127.0.0.1:5173"],
        "normalised as browsers send them, each once"
    );
    assert_eq!(
        client.backchannel_logout_uri.as_deref(),
        Some("https://spa.example.com/bcl")
    );
    assert!(client.backchannel_logout_session_required);
    assert!(client.dpop_bound_access_tokens, "RFC 9449: DPoP required");
    let page = root.get(&format!("/admin/clients/{}", client.id)).await;
    assert!(page.body.contains("http://127.0.0.1:5173"));
    assert!(page.body.contains("sid required"));
    assert!(page.body.contains("its tokens are DPoP-bound"));
    let edit = root
        .get(&format!("/admin/clients/{}/edit", client.id))
        .await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    assert!(edit.body.contains("https://spa.example.com/bcl"));
    assert!(edit
        .body
        .contains("name=\"dpop_bound_access_tokens\" value=\"1\" checked"));
}

#[tokio::test]
async fn a_client_secret_is_shown_once_and_works() {
    let app = app_with_admin().await;
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf("/admin/clients/new").await;
    let page = root
        .post(
            "/admin/clients/new",
            &[
                ("csrf", &csrf),
                ("name", "Billing worker"),
                ("client_type", "confidential"),
                ("grant_types", "client_credentials"),
                ("scopes", "billing:read"),
                ("audiences", "https://billing.example.com"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let secret = value_of_id(&page.body, "client-secret").expect("the secret is shown");
    let client_id = page
        .body
        .split("id=\"client-id\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("client id")
        .to_string();
    assert!(page.body.contains("only time it is shown"));
    assert!(page.body.contains("/.well-known/openid-configuration"));

    let (status, body) = token_request(
        &app,
        "grant_type=client_credentials&scope=billing%3Aread",
        (&client_id, &secret),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Never again: not on the client's page, not in the database, not in the audit log.
    let page = root.get(&format!("/admin/clients/{client_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&secret));
    assert!(value_of_id(&page.body, "client-secret").is_none());
    let stored = app
        .state
        .database
        .store()
        .find_client(&client_id)
        .await
        .expect("find")
        .expect("client");
    assert_eq!(
        stored.secret_hash,
        Some(Secret::new(secret.clone()).storage_hash())
    );
    let audit = app
        .state
        .database
        .store()
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(audit.iter().all(|e| !format!("{e:?}").contains(&secret)));

    // Rotation: a new secret once; the old one stops working at once.
    let csrf = root
        .csrf(&format!("/admin/clients/{client_id}/rotate-secret"))
        .await;
    let page = root
        .post(
            &format!("/admin/clients/{client_id}/rotate-secret"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let new_secret = value_of_id(&page.body, "client-secret").expect("new secret");
    assert_ne!(new_secret, secret);
    let (status, _) =
        token_request(&app, "grant_type=client_credentials", (&client_id, &secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = token_request(
        &app,
        "grant_type=client_credentials",
        (&client_id, &new_secret),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Edit keeps id and secret; delete ends it.
    let page = root
        .post(
            &format!("/admin/clients/{client_id}/edit"),
            &[
                ("csrf", &csrf),
                ("name", "Billing worker v2"),
                ("grant_types", "client_credentials"),
                ("scopes", "billing:read billing:write"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (status, _) = token_request(
        &app,
        "grant_type=client_credentials&scope=billing%3Awrite",
        (&client_id, &new_secret),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the edit took effect at once");
    let list = root.get("/admin/clients?q=v2").await;
    assert!(list.body.contains("Billing worker v2"));
    let page = root
        .post(
            &format!("/admin/clients/{client_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let (status, _) = token_request(
        &app,
        "grant_type=client_credentials",
        (&client_id, &new_secret),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn disabling_a_user_ends_sessions_and_refresh_tokens() {
    let app = app_with_admin().await;
    let (client, secret) = app
        .add_client(ClientRegistration {
            name: "First-party app".into(),
            grant_types: Some(vec!["password".into(), "refresh_token".into()]),
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let sam = app.add_user("sam", "fourth pass phrase 1").await;
    let (status, tokens) = token_request(
        &app,
        "grant_type=password&username=sam&password=fourth%20pass%20phrase%201&scope=openid%20offline_access",
        (&client.id, secret.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    // A second admin, signed in elsewhere, to show their session ends too.
    let mut deputy_user = app.add_user("deputy", "second-in-command phrase").await;
    deputy_user.is_admin = true;
    app.state
        .database
        .store()
        .update_user(&deputy_user)
        .await
        .expect("admin");
    let mut deputy = Browser::new(&app);
    deputy.sign_in("deputy", "second-in-command phrase").await;
    assert_eq!(deputy.get("/admin").await.status, StatusCode::OK);

    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let user_page = root.get(&format!("/admin/users/{}", sam.id)).await;
    assert!(
        user_page.body.contains("First-party app"),
        "the live grant is listed"
    );
    let csrf = hidden(&user_page.body, "csrf");
    for user in [&sam.id, &deputy_user.id] {
        let page = root
            .post(&format!("/admin/users/{user}/disable"), &[("csrf", &csrf)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
    let refresh_body = format!(
        "grant_type=refresh_token&refresh_token={}",
        form_urlencoded::byte_serialize(refresh.as_bytes()).collect::<String>()
    );
    let (status, body) = token_request(&app, &refresh_body, (&client.id, secret.expose())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let page = deputy.get("/admin").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the deputy's session is over"
    );
    assert!(page.location().starts_with("/login"));

    // Re-enabling does not bring old sessions back.
    let page = root
        .post(
            &format!("/admin/users/{}/enable", deputy_user.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(deputy.get("/admin").await.status, StatusCode::SEE_OTHER);

    // An admin cannot disable themselves.
    let root_id = app
        .state
        .database
        .store()
        .find_user_by_username("root")
        .await
        .expect("find")
        .expect("root")
        .id;
    let page = root
        .post(
            &format!("/admin/users/{root_id}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("you cannot disable yourself"));
}

#[tokio::test]
async fn a_one_time_password_must_be_changed_first() {
    let app = TestApp::start(TestDb::sqlite(), &["--admin-password", "one time pass 1"]).await;
    sigil_server::serve::bootstrap_admin(&app.state, None)
        .await
        .expect("bootstrap");
    // The generated password is unknown here: set a known one-time password the same way
    // an admin reset would.
    let admin = app
        .state
        .database
        .store()
        .find_user_by_username("admin")
        .await
        .expect("find")
        .expect("admin");
    app.state
        .admin
        .reset_password(
            &sigil_core::audit::Caller::cli(),
            &admin.id,
            Secret::new("one time pass 1"),
            true,
        )
        .await
        .expect("reset");
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", "one time pass 1").await;
    let page = browser.get("/admin/clients").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/admin/password");
    let csrf = browser.csrf("/admin/password").await;
    let page = browser
        .post(
            "/admin/password",
            &[
                ("csrf", &csrf),
                ("current_password", "one time pass 1"),
                ("new_password", "my own password 2"),
                ("repeat_password", "my own password 3"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("differ"));
    let page = browser
        .post(
            "/admin/password",
            &[
                ("csrf", &csrf),
                ("current_password", "one time pass 1"),
                ("new_password", "my own password 2"),
                ("repeat_password", "my own password 2"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = browser.get("/admin/clients").await;
    assert_eq!(page.status, StatusCode::OK, "this session continues");
}

#[tokio::test]
async fn the_audit_log_records_who_what_and_from_where() {
    let app = app_with_admin().await;
    let mut root = Browser::new(&app);
    let page = root.sign_in("root", "Tr0ub4dor guess").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    root.sign_in("nobody-here", "whatever pw").await;
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf("/admin/keys").await;
    let page = root.post("/admin/keys/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.state.authority.keys().current().keys().len(),
        2,
        "published at once"
    );
    let keys = root.get("/admin/keys").await;
    assert!(keys.body.contains("next") && keys.body.contains("active"));

    let entries = app
        .state
        .database
        .store()
        .list_audit(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|e| e.record.action.as_str())
        .collect();
    assert_eq!(
        actions,
        vec![
            "sign_in.failure",
            "sign_in.failure",
            "sign_in.success",
            "key.rotated"
        ]
    );
    let failure = &entries[3].record;
    assert_eq!(
        failure.target.as_deref(),
        Some("root"),
        "a known user is named"
    );
    assert_eq!(
        entries[2].record.target, None,
        "an unknown name is not recorded"
    );
    assert!(entries
        .iter()
        .all(|e| e.record.address.as_deref() == Some("127.0.0.1")));
    assert_eq!(entries[0].record.actor, "root");
    assert!(entries
        .iter()
        .all(|e| !format!("{e:?}").contains("Tr0ub4dor")));

    let page = root.get("/admin/audit?action=sign_in.failure").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body
            .matches("<td><span class=\"tag\">sign_in.failure")
            .count(),
        2
    );
    assert!(!page.body.contains("<td><span class=\"tag\">key.rotated"));
    let page = root.get("/admin/audit?before=3").await;
    assert_eq!(
        page.body.matches("<tr>").count(),
        1 + 2,
        "header and entries 2 and 1"
    );

    // Exports: the filtered log, oldest first, with the hashes; each export is recorded.
    let page = root.get("/admin/audit?action=sign_in.failure").await;
    assert!(page
        .body
        .contains("href=\"/admin/audit.csv?action=sign_in.failure\""));
    let csv = root.get("/admin/audit.csv?action=sign_in.failure").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"]
        .to_str()
        .expect("ascii")
        .starts_with("attachment"));
    assert_eq!(csv.headers["cache-control"], "no-store");
    let lines: Vec<&str> = csv.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "seq,time,actor,action,target,detail,address,prev_hash,hash"
    );
    assert_eq!(lines.len(), 1 + 2, "{}", csv.body);
    assert!(lines[1].starts_with("1,") && lines[2].starts_with("2,"));
    assert!(lines
        .iter()
        .skip(1)
        .all(|l| l.contains(",sign_in.failure,")));
    let ndjson = root.get("/admin/audit.ndjson").await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    let rows: Vec<serde_json::Value> = ndjson
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    // The four above, the CSV export's own entry, and this export's.
    let actions: Vec<&str> = rows
        .iter()
        .map(|r| r["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        [
            "sign_in.failure",
            "sign_in.failure",
            "sign_in.success",
            "key.rotated",
            "audit.exported",
            "audit.exported"
        ]
    );
    for pair in rows.windows(2) {
        assert_eq!(
            pair[1]["prev_hash"], pair[0]["hash"],
            "the chain, as stored"
        );
    }
    assert_eq!(rows[4]["actor"], "root");
    assert!(rows[4]["detail"]
        .as_str()
        .is_some_and(|d| d.contains("CSV") && d.contains("sign_in.failure")));
    // Not for anybody else.
    let mut stranger = Browser::new(&app);
    let page = stranger.get("/admin/audit.csv").await;
    assert_ne!(page.status, StatusCode::OK);
    assert!(!page.body.contains("sign_in.failure"));

    // The activity export answers the same way, and refuses what it cannot read.
    let csv = root.get("/admin/activity.csv?grain=minute").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.headers["content-disposition"],
        "attachment; filename=\"sigil-activity.csv\""
    );
    assert_eq!(csv.headers["cache-control"], "no-store");
    assert!(csv
        .body
        .starts_with("time,bucket,grain,metric,label,client_id,count\r\n"));
    let ndjson = root.get("/admin/activity.ndjson").await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    for bad in [
        "/admin/activity.csv?grain=second",
        "/admin/activity.ndjson?from=100&to=50",
    ] {
        let page = root.get(bad).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    for bad in ["/admin/activity.csv?from=yesterday", "/admin?range=1y"] {
        let page = root.get(bad).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let page = stranger.get("/admin/activity.csv").await;
    assert_ne!(page.status, StatusCode::OK);
    assert!(!page.body.contains("grain"));
}

#[test]
fn csv_fields_cannot_become_formulas() {
    // The export's escaping, through a detail an attacker could choose (a user name).
    for (value, expected) in [
        ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("a,b", "\"a,b\""),
        ("line\nbreak", "\"line\nbreak\""),
        ("plain", "plain"),
    ] {
        assert_eq!(sigil_server::http::admin::audit::csv_field(value), expected);
    }
}

#[tokio::test]
async fn audit_verify_finds_the_first_broken_entry() {
    let db = TestDb::sqlite();
    let url = db.url().to_string();
    let app = TestApp::start(db, &[]).await;
    for n in 0..5 {
        app.state
            .admin
            .record_key_action(
                &sigil_core::audit::Caller::cli(),
                "client.updated",
                &format!("c{n}"),
                &format!("change {n}"),
            )
            .await;
    }
    let verify = || {
        std::process::Command::new(SIGIL)
            .args(["--database-url", &url, "audit", "verify"])
            .output()
            .expect("run sigil")
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit log intact: 5 entries"));

    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3")
        .execute(&pool)
        .await
        .expect("tamper");
    let out = verify();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken at entry #3"), "{stderr}");
    assert!(stderr.contains("edited"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");

    // Restore it, then remove an entry instead.
    sqlx::query("UPDATE audit_log SET detail = 'change 2' WHERE seq = 3")
        .execute(&pool)
        .await
        .expect("restore");
    assert!(verify().status.success());
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("delete");
    let out = verify();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at entry #2"));
    pool.close().await;
}

/// Runs `sigil` expecting failure; returns its standard error.
fn sigil_fails(setup: &common::process::Setup, args: &[&str]) -> String {
    let out = std::process::Command::new(SIGIL)
        .args(["--database-url", &setup.database_url])
        .args(args)
        .output()
        .expect("run sigil");
    assert!(!out.status.success(), "sigil {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_command_line_does_the_same() {
    let db = TestDb::sqlite();
    let setup = common::process::Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    setup.sigil(
        &["user", "add", "--username", "quinn", "--password-stdin"],
        Some("fifth pass phrase 1"),
    );
    let created: serde_json::Value = serde_json::from_str(&setup.sigil(
        &[
            "client", "add", "--name", "Cron job", "--scopes", "jobs", "--json",
        ],
        None,
    ))
    .expect("json");
    let id = created["client_id"].as_str().expect("id").to_string();

    let list: serde_json::Value =
        serde_json::from_str(&setup.sigil(&["client", "list", "--search", "CRON", "--json"], None))
            .expect("json");
    assert_eq!(list[0]["client_id"], id.as_str());
    let shown: serde_json::Value =
        serde_json::from_str(&setup.sigil(&["client", "show", "--client-id", &id, "--json"], None))
            .expect("json");
    assert_eq!(shown["scopes"], serde_json::json!(["jobs"]));
    assert!(shown.get("client_secret").is_none() && !shown.to_string().contains("secret_hash"));
    let updated: serde_json::Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "update",
            "--client-id",
            &id,
            "--name",
            "Cron job v2",
            "--scopes",
            "jobs,reports",
            "--access-token-ttl",
            "5m",
        ],
        None,
    ))
    .expect("json");
    assert_eq!(updated["name"], "Cron job v2");
    assert_eq!(updated["access_token_ttl"], 300);
    let err = sigil_fails(
        &setup,
        &[
            "client",
            "update",
            "--client-id",
            &id,
            "--name",
            "x",
            "--redirect-uri",
            "http://evil.example.com/",
        ],
    );
    assert!(err.contains("must use https"), "{err}");
    let err = sigil_fails(
        &setup,
        &[
            "client",
            "add",
            "--name",
            "Native",
            "--public",
            "--redirect-uri",
            "http://localhost:8000/cb",
        ],
    );
    assert!(
        err.contains("must not use localhost") && err.contains("http://127.0.0.1:PORT"),
        "{err}"
    );
    let rotated: serde_json::Value = serde_json::from_str(&setup.sigil(
        &["client", "rotate-secret", "--client-id", &id, "--json"],
        None,
    ))
    .expect("json");
    assert_ne!(rotated["client_secret"], created["client_secret"]);

    let users = setup.sigil(&["user", "list", "--search", "quin"], None);
    assert!(users.contains("quinn") && users.contains("active"));
    let user: serde_json::Value = serde_json::from_str(&setup.sigil(
        &[
            "user",
            "update",
            "--username",
            "quinn",
            "--email",
            "q@example.com",
            "--admin",
            "true",
        ],
        None,
    ))
    .expect("json");
    assert_eq!(user["email"], "q@example.com");
    assert_eq!(user["is_admin"], true);
    setup.sigil(
        &[
            "user",
            "set-password",
            "--username",
            "quinn",
            "--password-stdin",
            "--must-change",
        ],
        Some("a fresh password 9"),
    );
    setup.sigil(&["user", "disable", "--username", "quinn"], None);
    let users: serde_json::Value =
        serde_json::from_str(&setup.sigil(&["user", "list", "--json"], None)).expect("json");
    assert_eq!(users[0]["is_disabled"], true);
    setup.sigil(&["user", "enable", "--username", "quinn"], None);
    setup.sigil(
        &[
            "user",
            "revoke-grant",
            "--username",
            "quinn",
            "--client-id",
            &id,
        ],
        None,
    );
    let err = sigil_fails(&setup, &["user", "disable", "--username", "nobody"]);
    assert!(err.contains("no user named"), "{err}");
    setup.sigil(&["client", "delete", "--client-id", &id], None);
    let err = sigil_fails(&setup, &["client", "show", "--client-id", &id]);
    assert!(err.contains("no client"), "{err}");

    let log = setup.sigil(&["audit", "list", "--actor", "cli", "--json"], None);
    let actions: Vec<String> = log
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("json line");
            entry["action"].as_str().expect("action").to_string()
        })
        .rev()
        .collect();
    assert_eq!(
        actions,
        vec![
            "user.created",
            "client.created",
            "client.updated",
            "client.secret_rotated",
            "user.updated",
            "user.admin_granted",
            "user.password_reset",
            "user.disabled",
            "user.enabled",
            "grant.revoked",
            "client.deleted",
        ]
    );
    for secret in [&created["client_secret"], &rotated["client_secret"]] {
        assert!(!log.contains(secret.as_str().expect("secret")));
    }
    assert!(setup
        .sigil(&["audit", "verify"], None)
        .contains("audit log intact: 11 entries"));
}

/// Every file of a SQLite test database (the database, its write-ahead log and index),
/// as bytes: what someone holding a copy of them would read.
fn sqlite_bytes(db: &TestDb) -> Vec<u8> {
    let path = db.sqlite_path().expect("a SQLite database");
    let dir = path.parent().expect("its directory");
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    bytes
}

#[tokio::test]
async fn identity_providers_are_added_and_removed_in_the_console() {
    const SECRET: &str = "upstream-client-secret-Qx7vK2";
    let app = app_with_admin().await;
    let store = app.state.database.store();
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let page = root.get("/admin/providers").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("No identity providers"));
    assert!(page
        .body
        .contains("href=\"/admin/providers\">Providers</a>"));
    let csrf = root.csrf("/admin/providers/new").await;
    let page = root.get("/admin/providers/new").await;
    assert!(page.body.contains("type=\"password\""));

    let good = |id: &'static str, issuer: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("id", id),
            ("name", "Corp SSO"),
            ("kind", "oidc"),
            ("issuer", issuer),
            ("client_id", "sigil-at-corp"),
            ("client_secret", SECRET),
            ("create_users", "1"),
        ]
    };

    // Bad input: the form again, with the core's message and what was typed, but never
    // the secret; nothing added.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (good("corp", "http://idp.example.com"), "must use https://"),
        (
            [
                good("corp", "http://idp.example.com"),
                vec![("allow_http", "1")],
            ]
            .concat(),
            "accepts only a loopback address",
        ),
        (
            good("Corp SSO", "https://idp.example.com"),
            "a provider id is 1 to 32",
        ),
        (
            [
                good("corp", "https://idp.example.com"),
                vec![("token_url", "https://idp.example.com/token")],
            ]
            .concat(),
            "come from its discovery document",
        ),
        (
            good("corp", "https://idp.example.com")
                .into_iter()
                .map(|(k, v)| if k == "kind" { (k, "oauth2") } else { (k, v) })
                .collect(),
            "a plain OAuth 2.0 provider needs",
        ),
        (
            good("corp", "https://idp.example.com")
                .into_iter()
                .filter(|(k, _)| *k != "client_secret")
                .collect(),
            "the client secret is 1 to 4096 characters",
        ),
        (
            good("corp", "https://idp.example.com")
                .into_iter()
                .map(|(k, v)| if k == "kind" { (k, "saml") } else { (k, v) })
                .collect(),
            "choose the kind of provider",
        ),
    ];
    for (fields, message) in cases {
        let fields = [vec![("csrf", csrf.as_str())], fields].concat();
        let page = root.post("/admin/providers/new", &fields).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
        assert!(page.body.contains(message), "{message}: {}", page.body);
        assert!(page.body.contains("role=\"alert\""));
        assert!(
            page.body.contains("value=\"Corp SSO\"")
                && page.body.contains("value=\"sigil-at-corp\""),
            "the form keeps what was typed"
        );
        assert!(!page.body.contains(SECRET), "the secret is not shown back");
    }
    assert!(store.list_providers().await.expect("list").is_empty());

    // Without the session's CSRF token: refused, nothing added.
    for token in [None, Some(""), Some("forged")] {
        let mut fields = good("corp", "https://idp.example.com");
        if let Some(token) = token {
            fields.push(("csrf", token));
        }
        let page = root.post("/admin/providers/new", &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(page.body.contains("This form has expired"));
    }
    assert!(store.list_providers().await.expect("list").is_empty());

    // Added, and listed with the redirect URI to register at the provider.
    let fields = [
        vec![("csrf", csrf.as_str())],
        good("corp", "https://idp.example.com"),
    ]
    .concat();
    let page = root.post("/admin/providers/new", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/admin/providers?notice=provider-added");
    let page = root.get(page.location()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("The provider was added."));
    let issuer = app
        .state
        .authority
        .config()
        .issuer
        .trim_end_matches('/')
        .to_string();
    let redirect_uri = format!("{issuer}/login/provider/corp/callback");
    for shown in [
        "Corp SSO",
        "<code>corp</code>",
        "OpenID Connect",
        "https://idp.example.com",
        "sigil-at-corp",
        redirect_uri.as_str(),
        "href=\"/admin/providers/corp/remove\"",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(!page.body.contains(SECRET));
    assert!(!page.body.contains("<script>"), "no inline script");
    let page = root.post("/admin/providers/new", &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("already"), "{}", page.body);
    assert_eq!(store.list_providers().await.expect("list").len(), 1);

    // On the sign-in page.
    let mut visitor = Browser::new(&app);
    let login = visitor.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.body.contains("href=\"/login/provider/corp\""),
        "{}",
        login.body
    );
    assert!(login.body.contains("Sign in with Corp SSO"));

    // The command line sees it; the secret is nowhere in plain text.
    let setup = common::process::Setup::new(app.db.url(), tempfile::tempdir().expect("tempdir"));
    let listed = setup.sigil(&["provider", "list", "--json"], None);
    let list: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(list[0]["id"], "corp");
    assert_eq!(list[0]["issuer"], "https://idp.example.com");
    assert_eq!(list[0]["client_id"], "sigil-at-corp");
    assert_eq!(list[0]["create_users"], true);
    assert_eq!(list[0]["trust_email"], false);
    assert!(!listed.contains(SECRET));
    let bytes = sqlite_bytes(&app.db);
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the client secret is sealed in the database"
    );
    let sealed = store
        .find_provider("corp")
        .await
        .expect("find")
        .expect("provider");
    assert_eq!(
        app.state
            .federation
            .client_secret(&sealed)
            .expect("opens")
            .expose(),
        SECRET
    );

    // Removed through the confirmation, with the token only.
    let page = root.get("/admin/providers/corp/remove").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Remove Corp SSO?"));
    assert!(page
        .body
        .contains("<form method=\"post\" action=\"/admin/providers/corp/remove\">"));
    let page = root
        .post("/admin/providers/corp/remove", &[("csrf", "forged")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(store.list_providers().await.expect("list").len(), 1);
    let page = root
        .post("/admin/providers/corp/remove", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/admin/providers?notice=provider-removed");
    let page = root.get(page.location()).await;
    assert!(page.body.contains("The provider was removed"));
    assert!(page.body.contains("No identity providers"));
    assert!(!page.body.contains("Corp SSO"));
    let login = visitor.get("/login").await;
    assert!(!login.body.contains("/login/provider/corp"));
    assert!(!login.body.contains("Sign in with Corp SSO"));
    let page = root
        .post("/admin/providers/corp/remove", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        root.get("/admin/providers/corp/remove").await.status,
        StatusCode::NOT_FOUND
    );

    // Audited by core, with the admin as actor; the secret is not in the log.
    let log = setup.sigil(&["audit", "list", "--action", "provider.", "--json"], None);
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["target"].as_str().expect("target"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![("provider.added", "corp"), ("provider.removed", "corp")],
        "{log}"
    );
    assert!(entries.iter().all(|e| e["actor"] == "root"), "{log}");
    assert!(!log.contains(SECRET));
    let page = root.get("/admin/audit?action=provider.added").await;
    assert!(page.body.contains("provider.added"));
}

/// A path parameter that is not an id Sigil generated: `/`, `..`, `?`, `#`, quotes, `<`
/// and encoded `/..` around a real id, and the one-click delete.
fn bad_segments(real: &str, other_client: &str) -> Vec<String> {
    vec![
        format!("{real}%2Fdelete"),
        "..".into(),
        format!("{real}%2F.."),
        format!("{real}%3F"),
        format!("{real}%23x"),
        format!("{real}%22"),
        format!("{real}%27"),
        format!("%3Cb%3E{real}"),
        format!("..%2F..%2Fclients%2F{other_client}%2Fdelete%3F"),
        format!("..%2F..%2F..%2Fclients%2F{other_client}%2Fdelete%3F"),
    ]
}

/// Every route pattern with a `{parameter}` in the server's HTTP modules.
fn routes_with_parameters() -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            for literal in text.split('"').skip(1).step_by(2) {
                // Route patterns (and the links built like them), not format strings of queries.
                let is_pattern = literal.starts_with('/')
                    && literal.contains('{')
                    && !literal.contains([' ', '?'])
                    && !literal.contains("{}");
                if is_pattern {
                    found.insert(literal.to_string());
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_path_parameter_is_checked_before_use() {
    let app = app_with_admin().await;
    let (client, secret) = app
        .add_client(ClientRegistration {
            name: "Precious app".into(),
            grant_types: Some(vec!["password".into(), "refresh_token".into()]),
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let alice = app.add_user("alice", "alice password 1").await;
    let provider = app
        .state
        .federation
        .add_provider(
            &sigil_core::audit::Caller::cli(),
            sigil_core::federation::NewProvider {
                id: "corp".into(),
                name: "Corp SSO".into(),
                kind: sigil_core::federation::ProviderKind::Oidc,
                issuer: "https://idp.example.com".into(),
                client_id: "sigil".into(),
                scopes: None,
                authorize_url: None,
                token_url: None,
                userinfo_url: None,
                subject_claim: None,
                create_users: false,
                trust_email: false,
                allow_http: false,
            },
            &Secret::new("upstream secret"),
        )
        .await
        .expect("provider");
    let (status, body) = token_request(
        &app,
        "grant_type=password&username=alice&password=alice%20password%201&scope=openid%20offline_access",
        (&client.id, secret.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let csrf = root.csrf(&format!("/admin/users/{}", alice.id)).await;
    let root_user = app
        .state
        .database
        .store()
        .find_user_by_username("root")
        .await
        .expect("find")
        .expect("root");
    let root_session = app
        .state
        .database
        .store()
        .list_browser_sessions(&root_user.id, 0)
        .await
        .expect("sessions")
        .pop()
        .expect("root's session");

    // The reproduction: the confirmation page must not offer to delete the client.
    let lure = format!(
        "/admin/users/{}/grants/..%2F..%2F..%2Fclients%2F{}%2Fdelete%3F/revoke",
        alice.id, client.id
    );
    let page = root.get(&lure).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    assert!(!page.body.contains("/delete"), "{}", page.body);
    assert!(!page.body.contains("<form"), "{}", page.body);

    // Every route with a path parameter, GET and POST, each parameter in turn.
    let fields: &[(&str, &str)] = &[
        ("csrf", &csrf),
        ("name", "Taken over"),
        ("email", "evil@example.com"),
        ("password", "evil password 1"),
        ("is_admin", "1"),
        ("grant_types", "client_credentials"),
    ];
    let user_routes = [
        (true, "/admin/users/{id}"),
        (false, "/admin/users/{id}/profile"),
        (false, "/admin/users/{id}/password"),
        (false, "/admin/users/{id}/role"),
        (true, "/admin/users/{id}/disable"),
        (false, "/admin/users/{id}/disable"),
        (false, "/admin/users/{id}/enable"),
        (false, "/admin/users/{id}/verification"),
        (false, "/admin/users/{id}/second-factor"),
        (true, "/admin/users/{id}/factors/reset"),
        (false, "/admin/users/{id}/factors/reset"),
        (true, "/admin/users/{id}/grants/{client_id}/revoke"),
        (false, "/admin/users/{id}/grants/{client_id}/revoke"),
    ];
    let client_routes = [
        (true, "/admin/clients/{id}"),
        (true, "/admin/clients/{id}/edit"),
        (false, "/admin/clients/{id}/edit"),
        (true, "/admin/clients/{id}/rotate-secret"),
        (false, "/admin/clients/{id}/rotate-secret"),
        (true, "/admin/clients/{id}/delete"),
        (false, "/admin/clients/{id}/delete"),
    ];
    // Session record ids (`random_token(16)`), from the sessions page and the user's page.
    let session_routes = [
        (true, "/admin/sessions/{id}/end"),
        (false, "/admin/sessions/{id}/end"),
    ];
    // Provider ids are chosen by admins, not generated: checked by the core's rule. The
    // sign-in routes take them too.
    let provider_routes = [
        (true, "/admin/providers/{id}/remove"),
        (false, "/admin/providers/{id}/remove"),
        (true, "/login/provider/{id}"),
        (true, "/login/provider/{id}/callback"),
    ];
    // The client configuration endpoint of dynamic registration (RFC 7592) takes a client
    // id too; it answers a bad one as it answers an unknown client, 401 (swept below).
    let registration_routes = [(true, "/register/{client_id}")];
    // The sweep covers every route with a path parameter the server declares.
    let swept: std::collections::BTreeSet<&str> = user_routes
        .iter()
        .chain(client_routes.iter())
        .chain(session_routes.iter())
        .chain(provider_routes.iter())
        .chain(registration_routes.iter())
        .map(|(_, route)| *route)
        .collect();
    let declared = routes_with_parameters();
    assert_eq!(
        declared,
        swept.iter().map(|r| r.to_string()).collect(),
        "a route with a path parameter is missing from this sweep"
    );
    let mut tried = 0;
    let mut wrong = Vec::new();
    let routes = user_routes
        .iter()
        .map(|(is_get, route)| (*is_get, *route, alice.id.as_str()))
        .chain(
            client_routes
                .iter()
                .map(|(is_get, route)| (*is_get, *route, client.id.as_str())),
        )
        .chain(
            session_routes
                .iter()
                .map(|(is_get, route)| (*is_get, *route, root_session.id.as_str())),
        )
        .chain(
            provider_routes
                .iter()
                .map(|(is_get, route)| (*is_get, *route, provider.id.as_str())),
        );
    for (is_get, route, id) in routes {
        let mut paths = Vec::new();
        for bad in bad_segments(id, &client.id) {
            paths.push(
                route
                    .replace("{id}", &bad)
                    .replace("{client_id}", &client.id),
            );
        }
        if route.contains("{client_id}") {
            for bad in bad_segments(&client.id, &client.id) {
                paths.push(route.replace("{id}", id).replace("{client_id}", &bad));
            }
        }
        for path in paths {
            let page = if is_get {
                root.get(&path).await
            } else {
                root.post(&path, fields).await
            };
            tried += 1;
            let refused = matches!(page.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST);
            if !refused || page.body.contains("<form method=\"post\" action=\"/admin/") {
                wrong.push(format!(
                    "{} {path}: {}",
                    if is_get { "GET" } else { "POST" },
                    page.status
                ));
            }
        }
    }
    for bad in bad_segments(&client.id, &client.id) {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let response = app
                .router()
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(format!("/register/{bad}"))
                        .header(header::AUTHORIZATION, "Bearer dGFrZW4tb3Zlcg")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(format!("{{\"client_id\":\"{}\"}}", client.id)))
                        .expect("request"),
                )
                .await
                .expect("infallible");
            tried += 1;
            if !matches!(
                response.status(),
                StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
            ) {
                wrong.push(format!("{method} /register/{bad}: {}", response.status()));
            }
        }
    }
    assert!(tried > 150, "{tried}");
    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));

    // Nothing changed.
    let store = app.state.database.store();
    let still = store
        .find_client(&client.id)
        .await
        .expect("find")
        .expect("the client still exists");
    assert_eq!(still.name, "Precious app");
    assert_eq!(still.secret_hash, client.secret_hash);
    assert_eq!(still.grant_types, client.grant_types);
    let alice_now = store
        .find_user(&alice.id)
        .await
        .expect("find")
        .expect("alice");
    assert!(!alice_now.is_disabled && !alice_now.is_admin);
    assert_eq!(alice_now.password_hash, alice.password_hash);
    assert_eq!(alice_now.name, alice.name);
    assert_eq!(alice_now.email, alice.email);
    assert_eq!(
        store.list_providers().await.expect("providers").len(),
        1,
        "the provider is still there"
    );
    assert_eq!(
        store
            .find_browser_session(&root_session.id)
            .await
            .expect("find")
            .and_then(|s| s.ended_at),
        None,
        "the admin's session is still live"
    );
    let page = root.get(&format!("/admin/users/{}", alice.id)).await;
    assert!(
        page.body.contains("Precious app"),
        "the grant is still there"
    );

    // The real ids still work, and the links on the page are the plain ids.
    let revoke = format!("/admin/users/{}/grants/{}/revoke", alice.id, client.id);
    assert!(page.body.contains(&format!("href=\"{revoke}\"")));
    let page = root.get(&revoke).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("action=\"{revoke}\"")));
}

#[tokio::test]
async fn resources_and_self_registered_clients_in_the_console() {
    let app = app_with_admin().await;
    let store = app.state.database.store();
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;
    let page = root.get("/admin/resources").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("No resources are registered"));
    let csrf = root.csrf("/admin/resources").await;
    // Refused input comes back with the fields as typed.
    let page = root
        .post(
            "/admin/resources",
            &[
                ("csrf", csrf.as_str()),
                ("uri", "not a uri"),
                ("name", "Notes"),
                ("scopes", "notes:read"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("absolute URI"), "{}", page.body);
    assert!(page.body.contains("value=\"notes:read\""));
    let page = root
        .post(
            "/admin/resources",
            &[
                ("csrf", csrf.as_str()),
                ("uri", "https://notes.example.com/mcp"),
                ("name", "Notes <MCP>"),
                ("scopes", "notes:read notes:write"),
                ("self_registered_clients", "1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = root.get(page.location()).await;
    assert!(page.body.contains("The resource was saved."));
    assert!(page.body.contains("https://notes.example.com/mcp"));
    assert!(
        page.body.contains("Notes &#60;MCP&#62;") || page.body.contains("Notes &lt;MCP&gt;"),
        "names are escaped: {}",
        page.body
    );
    let saved = store
        .find_resource("https://notes.example.com/mcp")
        .await
        .expect("find")
        .expect("saved");
    assert_eq!(saved.scopes, vec!["notes:read", "notes:write"]);
    assert!(saved.self_registered_clients);
    // Without the CSRF token nothing changes.
    let page = root
        .post(
            "/admin/resources/remove",
            &[("uri", "https://notes.example.com/mcp")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(store
        .find_resource("https://notes.example.com/mcp")
        .await
        .expect("find")
        .is_some());
    let page = root
        .post(
            "/admin/resources/remove",
            &[
                ("csrf", csrf.as_str()),
                ("uri", "https://notes.example.com/mcp"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(store
        .find_resource("https://notes.example.com/mcp")
        .await
        .expect("find")
        .is_none());
    let page = root
        .post(
            "/admin/resources/remove",
            &[
                ("csrf", csrf.as_str()),
                ("uri", "https://notes.example.com/mcp"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "already gone");

    // A client that registered itself is marked as such, with where it came from.
    let (mut client, _) = ClientRegistration {
        name: "Agent".into(),
        is_public: true,
        redirect_uris: vec!["http://127.0.0.1/cb".into()],
        ..Default::default()
    }
    .build(app.state.authority.now())
    .expect("client");
    client.registration = Some(sigil_core::client::DynamicRegistration {
        access_token_hash: sigil_core::secret::Secret::generate().storage_hash(),
        application_type: sigil_core::client::ApplicationType::Native,
        initial_token_id: Some("iat-7".into()),
        metadata: serde_json::Map::new(),
    });
    client.registered_from = Some("198.51.100.7".into());
    store.create_client(&client).await.expect("client");
    let page = root.get("/admin/clients").await;
    assert!(page.body.contains("self-registered"), "{}", page.body);
    assert!(page.body.contains("198.51.100.7"));
    let page = root.get(&format!("/admin/clients/{}", client.id)).await;
    assert!(
        page.body.contains("id=\"self-registered\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("198.51.100.7") && page.body.contains("iat-7"));
    assert!(page.body.contains("not used yet"));
}

/// A browser for the real server: its own cookie jar, redirects not followed.
fn http_browser(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .expect("browser")
}

/// Signs in through the real sign-in form of the server at `base`.
async fn http_sign_in(browser: &reqwest::Client, base: &str, username: &str, password: &str) {
    let login = browser
        .get(format!("{base}/login?next=%2Faccount"))
        .send()
        .await
        .expect("login page");
    assert_eq!(login.status(), 200);
    let csrf = hidden(&login.text().await.expect("html"), "csrf");
    let response = browser
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/account"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 303, "{username} signs in");
}

/// GET `path`: the status and the body.
async fn http_get(browser: &reqwest::Client, base: &str, path: &str) -> (u16, String) {
    let response = browser
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("get");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// POST a form to `path`: the status, the `Location` and the body.
async fn http_post(
    browser: &reqwest::Client,
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let response = browser
        .post(format!("{base}{path}"))
        .form(fields)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, location, response.text().await.expect("body"))
}

/// The table rows of a page that carry `data-session`: (session id, the row's HTML).
fn session_rows(html: &str) -> Vec<(String, String)> {
    html.split("<tr data-session=\"")
        .skip(1)
        .map(|rest| {
            let id = rest.split('"').next().unwrap_or("").to_string();
            let row = rest.split("</tr>").next().unwrap_or("").to_string();
            (id, row)
        })
        .collect()
}

/// The real `sigil` binary, two browsers of one user (one signed in to an app through the
/// authorization-code flow, the other on Sigil's own sign-in page) and an admin: the admin
/// sees both sessions on the sessions page and on the user's page, ends one, and only that
/// browser is signed out; its app gets a back-channel logout queued and the audit log has
/// the entry. CSRF, bad and unknown ids, and a non-admin are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_ends_one_of_a_users_browser_sessions() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    let base = server.base.clone();
    const DANA_PASSWORD: &str = "her long quiet pass phrase";
    const CALLBACK: &str = "http://127.0.0.1:9/callback";
    setup.sigil(
        &["user", "add", "--username", "dana", "--password-stdin"],
        Some(DANA_PASSWORD),
    );
    let out = setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "Photo Printer",
            "--redirect-uri",
            CALLBACK,
            "--backchannel-logout-uri",
            "http://127.0.0.1:9/logout",
            "--first-party",
            "--json",
        ],
        None,
    );
    let client: serde_json::Value = serde_json::from_str(&out).expect("client json");
    let client_id = client["client_id"].as_str().expect("client_id").to_string();

    // Browser A signs in to the app; browser B to Sigil itself.
    let firefox =
        http_browser("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0");
    let (_, challenge) = common::flows::pkce();
    let authorize = common::flows::authorize_url(&base, &client_id, CALLBACK, &challenge, &[]);
    let reached = common::flows::sign_in_first_party_in(
        &firefox,
        &base,
        &authorize,
        CALLBACK,
        "dana",
        DANA_PASSWORD,
    )
    .await;
    assert!(reached.contains("code="), "{reached}");
    let curl = http_browser("curl/8.5.0");
    http_sign_in(&curl, &base, "dana", DANA_PASSWORD).await;
    assert_eq!(http_get(&firefox, &base, "/account").await.0, 200);
    assert_eq!(http_get(&curl, &base, "/account").await.0, 200);

    // A non-admin is refused.
    assert_eq!(http_get(&curl, &base, "/admin/sessions").await.0, 403);

    let admin = http_browser("Mozilla/5.0 (Windows NT 10.0) Chrome/126.0 Safari/537.36");
    http_sign_in(&admin, &base, "admin", ADMIN_PASSWORD).await;
    let (status, list) = http_get(&admin, &base, "/admin/sessions").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("href=\"/admin/sessions\">Sessions</a>"),
        "in the nav"
    );
    let rows = session_rows(&list);
    let danas: Vec<&(String, String)> = rows
        .iter()
        .filter(|(_, row)| row.contains(">dana</a>"))
        .collect();
    assert_eq!(danas.len(), 2, "{list}");
    let (in_app, in_app_row) = danas
        .iter()
        .find(|(_, row)| row.contains("Photo Printer"))
        .map(|(id, row)| (id.clone(), row.clone()))
        .expect("the session that signed in to the app");
    assert!(
        in_app_row.contains(&format!("href=\"/admin/clients/{client_id}\"")),
        "{in_app_row}"
    );
    assert!(in_app_row.contains("Firefox on Linux"), "{in_app_row}");
    assert!(in_app_row.contains("127.0.0.1"), "{in_app_row}");
    let (on_sigil, on_sigil_row) = danas
        .iter()
        .find(|(id, _)| *id != in_app)
        .map(|(id, row)| (id.clone(), row.clone()))
        .expect("the other session");
    assert!(on_sigil_row.contains("curl"), "{on_sigil_row}");
    assert!(!on_sigil_row.contains("Photo Printer"), "{on_sigil_row}");
    assert!(
        rows.iter()
            .any(|(_, row)| row.contains(">admin</a>") && row.contains("this session")),
        "the admin's own session, marked: {list}"
    );
    let dana_id = in_app_row
        .split("href=\"/admin/users/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the user link")
        .to_string();

    // The user's page lists both, with End buttons that come back to it.
    let (status, user_page) = http_get(&admin, &base, &format!("/admin/users/{dana_id}")).await;
    assert_eq!(status, 200);
    let user_rows = session_rows(&user_page);
    assert_eq!(user_rows.len(), 2, "{user_page}");
    assert!(user_page.contains(&format!("href=\"/admin/sessions/{in_app}/end?back=user\"")));
    assert!(user_page.contains(&format!(
        "href=\"/admin/sessions/{on_sigil}/end?back=user\""
    )));
    assert!(user_page.contains("Photo Printer"));
    assert!(
        user_page.contains("with password (sign-in page)"),
        "last sign-in method"
    );

    // Without the CSRF token nothing ends.
    let end = format!("/admin/sessions/{in_app}/end");
    let (status, _, _) = http_post(&admin, &base, &end, &[("back", "user")]).await;
    assert_eq!(status, 403);
    let (status, _, _) =
        http_post(&admin, &base, &end, &[("csrf", "forged"), ("back", "user")]).await;
    assert_eq!(status, 403);
    assert_eq!(
        http_get(&firefox, &base, "/account").await.0,
        200,
        "still signed in"
    );

    // The confirmation page, then the end, back on the user's page.
    let (status, confirm) = http_get(&admin, &base, &format!("{end}?back=user")).await;
    assert_eq!(status, 200, "{confirm}");
    assert!(confirm.contains(&format!("action=\"{end}\"")), "{confirm}");
    assert!(
        confirm.contains("name=\"back\" value=\"user\""),
        "{confirm}"
    );
    assert!(confirm.contains("End session"));
    let csrf = hidden(&confirm, "csrf");
    let (status, location, _) =
        http_post(&admin, &base, &end, &[("csrf", &csrf), ("back", "user")]).await;
    assert_eq!(status, 303);
    assert_eq!(
        location,
        format!("/admin/users/{dana_id}?notice=session-ended")
    );
    let (_, user_page) = http_get(&admin, &base, &location).await;
    assert!(user_page.contains("The session was ended."));
    let left: Vec<String> = session_rows(&user_page)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec![on_sigil.clone()]);

    // That browser is signed out at its next request; the other is not.
    let response = firefox
        .get(format!("{base}/account"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 303);
    assert!(response.headers()["location"]
        .to_str()
        .expect("location")
        .starts_with("/login"));
    let response = firefox.get(&authorize).send().await.expect("authorize");
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("/login"),
        "the app's next sign-in asks again: {location}"
    );
    assert_eq!(
        http_get(&curl, &base, "/account").await.0,
        200,
        "the other browser stays"
    );

    // Audited, with the app's back-channel logout queued.
    let (_, audit) = http_get(&admin, &base, "/admin/audit?action=session.ended").await;
    assert!(audit.contains("session.ended"), "{audit}");
    assert!(audit.contains("dana"), "{audit}");
    assert!(audit.contains("back-channel logouts queued: 1"), "{audit}");

    // Ended, unknown and malformed ids: clean 404 pages, nothing to confirm.
    let unknown = sigil_core::secret::random_token(16);
    for id in [in_app.as_str(), unknown.as_str()] {
        let (status, page) = http_get(&admin, &base, &format!("/admin/sessions/{id}/end")).await;
        assert_eq!(status, 404, "{page}");
        assert!(page.contains("No such session"), "{page}");
        assert!(!page.contains("End session"), "{page}");
        let (status, _, page) = http_post(
            &admin,
            &base,
            &format!("/admin/sessions/{id}/end"),
            &[("csrf", &csrf)],
        )
        .await;
        assert_eq!(status, 404, "{page}");
    }
    for bad in [
        "short",
        "..",
        "AAAAAAAAAAAAAAAAAAAAA%2F",
        "AAAAAAAAAAAAAAAAAAAAAA%3F",
    ] {
        let (status, page) = http_get(&admin, &base, &format!("/admin/sessions/{bad}/end")).await;
        assert_eq!(status, 404, "{bad}: {page}");
    }
    // A cursor that is not one the page wrote.
    for bad in [
        "1",
        "x.y",
        "-1.AAAAAAAAAAAAAAAAAAAAAA",
        "01.AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, page) =
            http_get(&admin, &base, &format!("/admin/sessions?before={bad}")).await;
        assert_eq!(status, 422, "{bad}: {page}");
        assert!(!page.contains("data-session"), "{page}");
    }
    server.stop();
}

/// The user's "Sign-in" panel (last sign-in and its method, failures now and this week,
/// linked providers) and the client's "Usage" panel (live refresh families, consents).
#[tokio::test]
async fn user_and_client_pages_show_sign_in_and_usage_facts() {
    let app = app_with_admin().await;
    let (client, secret) = app
        .add_client(ClientRegistration {
            name: "Ledger app".into(),
            grant_types: Some(vec!["password".into(), "refresh_token".into()]),
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let alice = app.add_user("alice", "alice password 1").await;
    let mut root = Browser::new(&app);
    root.sign_in("root", "topmost pass phrase 1").await;

    let page = root.get(&format!("/admin/users/{}", alice.id)).await;
    assert!(
        page.body.contains("id=\"last-sign-in\">none recorded"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"sign-in-failures\">0 counted now"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"linked-providers\">none"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("No live browser sessions."),
        "{}",
        page.body
    );
    let page = root.get(&format!("/admin/clients/{}", client.id)).await;
    assert!(
        page.body
            .contains("<dl class=\"facts\" id=\"client-usage\">"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"usage-refresh-families\">0 live"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"usage-consents\">0 users"),
        "{}",
        page.body
    );

    // A sign-in through the password grant (a refresh family), a consent, a wrong password.
    let (status, body) = token_request(
        &app,
        "grant_type=password&username=alice&password=alice%20password%201&scope=openid%20offline_access",
        (&client.id, secret.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let store = app.state.database.store();
    store
        .save_consent(&alice.id, &client.id, "openid", app.state.authority.now())
        .await
        .expect("consent");
    let mut stranger = Browser::new(&app);
    let refused = stranger.sign_in("alice", "not her password").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let provider = app
        .state
        .federation
        .add_provider(
            &sigil_core::audit::Caller::cli(),
            sigil_core::federation::NewProvider {
                id: "corp".into(),
                name: "Corp SSO".into(),
                kind: sigil_core::federation::ProviderKind::Oidc,
                issuer: "https://idp.example.com".into(),
                client_id: "sigil".into(),
                scopes: None,
                authorize_url: None,
                token_url: None,
                userinfo_url: None,
                subject_claim: None,
                create_users: false,
                trust_email: false,
                allow_http: false,
            },
            &Secret::new("upstream secret"),
        )
        .await
        .expect("provider");
    store
        .create_identity(&sigil_core::federation::FederatedIdentity {
            issuer: provider.issuer.clone(),
            subject: "alice-upstream".into(),
            user_id: alice.id.clone(),
            provider_id: provider.id.clone(),
            email: Some("alice@corp.example.com".into()),
            created_at: app.state.authority.now(),
            last_used_at: None,
        })
        .await
        .expect("identity");

    let page = root.get(&format!("/admin/users/{}", alice.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!(
            "with password (password grant, client {})",
            client.id
        )),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("id=\"sign-in-failures\">1 counted now (the last at "),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("; 1 in the audit log over the last 7 days"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Corp SSO (alice@corp.example.com)"),
        "{}",
        page.body
    );
    assert!(page.body.contains("last used never"), "{}", page.body);
    let page = root.get(&format!("/admin/clients/{}", client.id)).await;
    assert!(
        page.body.contains("id=\"usage-refresh-families\">1 live"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("id=\"usage-consents\">1 users"),
        "{}",
        page.body
    );

    // Only admins see the sessions page.
    let mut alice_browser = Browser::new(&app);
    alice_browser.sign_in("alice", "alice password 1").await;
    let page = alice_browser.get("/admin/sessions").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = root.get("/admin/sessions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        session_rows(&page.body)
            .iter()
            .filter(|(_, row)| row.contains(">alice</a>"))
            .count(),
        1,
        "{}",
        page.body
    );
}
