//! End to end: the real `sigil` binary on a free loopback port, set up through its own
//! CLI, exercised over real HTTP with reqwest, its tokens checked with an independent JWT
//! library (jsonwebtoken) against the published JWKS. Runs on SQLite and PostgreSQL.
//! Afterwards: no token, secret or password in the logs, nor in the database.

mod common;

use common::process::{Server, Setup, ADMIN_PASSWORD};
use common::TestDb;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USER_PASSWORD: &str = "e2e correct horse battery";
const API: &str = "https://api.example.com";

struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, value: &str) {
        self.0.push(value.to_string());
    }
    fn assert_absent_from(&self, haystack: &[u8], what: &str) {
        let text = String::from_utf8_lossy(haystack);
        for secret in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "{what} contains a secret ({} chars)",
                secret.len()
            );
        }
    }
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn post_form(
    http: &reqwest::Client,
    url: String,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let response = http
        .post(url)
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

/// Validates an access token with jsonwebtoken against the JWKS, as a resource server would.
async fn validate_independently(http: &reqwest::Client, base: &str, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = http
        .get(format!("{base}/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("kid published in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[API]);
    validation.set_issuer(&[base]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token validates with an independent library")
        .claims
}

async fn full_flow(db: TestDb) {
    let setup = Setup {
        dir: tempfile::tempdir().expect("tempdir"),
        database_url: db.url().to_string(),
    };
    let mut secrets = Secrets(vec![USER_PASSWORD.into(), ADMIN_PASSWORD.into()]);

    // First start on an empty database: the admin is bootstrapped. Then set up through the
    // CLI while the server runs.
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    let created = setup.sigil(
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.com",
            "--name",
            "Alice",
            "--password-stdin",
        ],
        Some(&format!("{USER_PASSWORD}\n")),
    );
    let user_id = serde_json::from_str::<Value>(&created).expect("json")["user_id"]
        .as_str()
        .expect("id")
        .to_string();
    let client: Value = serde_json::from_str(&setup.sigil(
        &[
            "client",
            "add",
            "--name",
            "e2e app",
            "--grant-types",
            "password,refresh_token,client_credentials",
            "--scopes",
            "openid,profile,email,offline_access",
            "--audience",
            API,
            "--json",
        ],
        None,
    ))
    .expect("client json");
    let id = client["client_id"].as_str().expect("client_id").to_string();
    let secret = client["client_secret"]
        .as_str()
        .expect("client_secret")
        .to_string();
    secrets.add(&secret);

    let base = server.base.clone();
    let http = reqwest::Client::new();

    // Discovery points at the endpoints used below.
    let discovery: Value = http
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], base.as_str());
    assert_eq!(discovery["token_endpoint"], format!("{base}/token"));

    // Password grant.
    let (status, tokens) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", USER_PASSWORD),
            ("scope", "openid profile email offline_access"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh1 = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    secrets.add(&access);
    secrets.add(&refresh1);
    secrets.add(tokens["id_token"].as_str().expect("id token"));
    let claims = validate_independently(&http, &base, &access).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "email offline_access openid profile");

    // The first-start admin exists with the password from SIGIL_ADMIN_PASSWORD.
    let (status, admin_tokens) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200, "the bootstrap admin can sign in");
    for name in ["access_token", "refresh_token", "id_token"] {
        secrets.add(admin_tokens[name].as_str().expect("token"));
    }

    // Userinfo.
    let info: Value = http
        .get(format!("{base}/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["sub"], user_id.as_str());
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["name"], "Alice");

    // Refresh: rotation, then reuse detection.
    let (status, rotated) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let refresh2 = rotated["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let access2 = rotated["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    secrets.add(&refresh2);
    secrets.add(&access2);
    assert_ne!(refresh1, refresh2);
    validate_independently(&http, &base, &access2).await;
    let (status, reuse) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    )
    .await;
    assert_eq!(
        (status, reuse["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    )
    .await;
    assert_eq!(status, 400, "the whole family is revoked after reuse");

    // Introspection: the family's access token is no longer active, though its signature is.
    let introspect = format!("{base}/introspect");
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &access2)],
    )
    .await;
    assert_eq!(answer, serde_json::json!({ "active": false }));
    validate_independently(&http, &base, &access2).await;

    // A fresh grant; introspect, then revoke refresh and access tokens.
    let (_, fresh) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", USER_PASSWORD),
            ("scope", "openid offline_access"),
        ],
    )
    .await;
    let access3 = fresh["access_token"].as_str().expect("access").to_string();
    let refresh3 = fresh["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    secrets.add(&access3);
    secrets.add(&refresh3);
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &access3)],
    )
    .await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "alice");
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &refresh3), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(answer["active"], true);
    let (status, _) = post_form(
        &http,
        format!("{base}/revoke"),
        &id,
        &secret,
        &[("token", &refresh3)],
    )
    .await;
    assert_eq!(status, 200);
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &refresh3)],
    )
    .await;
    assert_eq!(answer["active"], false);
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &access3)],
    )
    .await;
    assert_eq!(
        answer["active"], false,
        "revoking the refresh token ends its access tokens"
    );
    // An access token without a refresh family: active until revoked by itself.
    let (_, plain) = token(
        &http,
        &base,
        &id,
        &secret,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", USER_PASSWORD),
            ("scope", "openid"),
        ],
    )
    .await;
    assert!(
        plain.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let access4 = plain["access_token"].as_str().expect("access").to_string();
    secrets.add(&access4);
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &access4)],
    )
    .await;
    assert_eq!(answer["active"], true, "another grant is untouched");
    let (status, _) = post_form(
        &http,
        format!("{base}/revoke"),
        &id,
        &secret,
        &[("token", &access4), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200);
    let (_, answer) = post_form(
        &http,
        introspect.clone(),
        &id,
        &secret,
        &[("token", &access4)],
    )
    .await;
    assert_eq!(answer["active"], false);

    // client_credentials.
    let (status, cc) = token(
        &http,
        &base,
        &id,
        &secret,
        &[("grant_type", "client_credentials"), ("resource", API)],
    )
    .await;
    assert_eq!(status, 200, "{cc}");
    let cc_token = cc["access_token"].as_str().expect("access").to_string();
    secrets.add(&cc_token);
    assert_eq!(
        validate_independently(&http, &base, &cc_token).await["sub"],
        id.as_str()
    );

    // Key rotation while running: the new key is published at once, signs only later.
    let old_kid = jsonwebtoken::decode_header(&cc_token)
        .expect("header")
        .kid
        .expect("kid");
    setup.sigil(&["keys", "rotate"], None);
    let jwks = wait_for_jwks_len(&http, &base, 2).await;
    assert!(jwks.contains(&old_kid));
    let (_, cc) = token(
        &http,
        &base,
        &id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let t = cc["access_token"].as_str().expect("access").to_string();
    secrets.add(&t);
    assert_eq!(
        jsonwebtoken::decode_header(&t).expect("header").kid,
        Some(old_kid.clone()),
        "the next key does not sign yet"
    );
    // An emergency rotation signs at once.
    let out = setup.sigil(&["keys", "rotate", "--immediately"], None);
    let new_kid = out
        .split_whitespace()
        .nth(2)
        .expect("kid")
        .trim_end_matches(';')
        .to_string();
    wait_for_jwks_len(&http, &base, 3).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, cc) = token(
            &http,
            &base,
            &id,
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let t = cc["access_token"].as_str().expect("access").to_string();
        secrets.add(&t);
        if jsonwebtoken::decode_header(&t)
            .expect("header")
            .kid
            .as_deref()
            == Some(new_kid.as_str())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the emergency key did not start signing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listing = setup.sigil(&["keys", "list"], None);
    assert_eq!(listing.matches(" active ").count(), 1, "{listing}");
    assert!(
        listing.contains(" retired ") && listing.contains(" next "),
        "{listing}"
    );

    // A browser session: its cookie values are secrets too.
    for cookie in sign_in_admin(&base).await {
        secrets.add(&cookie);
    }

    server.stop();

    // No secret in the logs (captured at trace level).
    let log = std::fs::read(setup.log_path()).expect("log");
    assert!(
        String::from_utf8_lossy(&log).contains("token issued"),
        "the log was captured"
    );
    secrets.assert_absent_from(&log, "the server log");

    // No secret in the database.
    match db.sqlite_path() {
        Some(path) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if file.exists() {
                    bytes.extend(std::fs::read(&file).expect("read database file"));
                }
            }
            assert!(bytes.len() > 10_000, "the database file was read");
            secrets.assert_absent_from(&bytes, "the SQLite database file");
        }
        None => {
            let pool = sqlx::PgPool::connect(db.url()).await.expect("connect");
            let mut dump = Vec::new();
            for table in [
                "users",
                "clients",
                "refresh_families",
                "refresh_tokens",
                "revoked_access_tokens",
                "tower_sessions.session",
            ] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT CAST(t AS TEXT) FROM {table} t"))
                        .fetch_all(&pool)
                        .await
                        .expect("dump");
                for (row,) in rows {
                    dump.extend(row.into_bytes());
                }
            }
            assert!(dump.len() > 1_000, "the tables were read");
            secrets.assert_absent_from(&dump, "the PostgreSQL tables");
            pool.close().await;
        }
    }
}

const SESSION_COOKIE: &str = "sigil_session";

/// The session cookie values a response sets.
fn session_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix(&format!("{SESSION_COOKIE}=")))
        .filter_map(|v| v.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The status of `/admin/users` for a session cookie.
async fn admin_status(base: &str, cookie: &str) -> u16 {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    http.get(format!("{base}/admin/users"))
        .header(
            reqwest::header::COOKIE,
            format!("{SESSION_COOKIE}={cookie}"),
        )
        .send()
        .await
        .expect("admin")
        .status()
        .as_u16()
}

/// Signs the bootstrapped admin in through the sign-in form; returns every session cookie
/// value the server set, the signed-in one last.
async fn sign_in_admin(base: &str) -> Vec<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(format!("{base}/login?next=%2Fadmin"))
        .send()
        .await
        .expect("login page");
    let mut cookies = session_cookies(&login);
    let anonymous = cookies.last().expect("a session for the form").clone();
    let csrf = common::hidden(&login.text().await.expect("html"), "csrf");
    let response = http
        .post(format!("{base}/login"))
        .header(
            reqwest::header::COOKIE,
            format!("{SESSION_COOKIE}={anonymous}"),
        )
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("next", "/admin"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(response.status(), 303);
    cookies.extend(session_cookies(&response));
    let signed_in = cookies.last().expect("cookie").clone();
    assert_ne!(signed_in, anonymous, "a new id on sign-in");
    assert_eq!(admin_status(base, &signed_in).await, 200);
    cookies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_database_opens_no_session() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start(&setup);
    let cookies = sign_in_admin(&server.base).await;
    let pool = sqlx::SqlitePool::connect(db.url()).await.expect("connect");
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM tower_sessions")
        .fetch_all(&pool)
        .await
        .expect("session rows");
    pool.close().await;
    assert!(!rows.is_empty());
    for (id,) in &rows {
        assert_ne!(
            admin_status(&server.base, id).await,
            200,
            "a row id replayed as a cookie opened /admin"
        );
        assert!(
            !cookies.contains(id),
            "a cookie value is stored as a row id"
        );
    }
    let signed_in = cookies.last().expect("cookie");
    assert_eq!(admin_status(&server.base, signed_in).await, 200);

    // The database and its WAL and shared-memory files are for Sigil's user only, and a
    // file made readable by others is narrowed again at the next open.
    let path = db.sqlite_path().expect("sqlite");
    let mode = |suffix: &str| {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        std::fs::metadata(&file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
    };
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(mode(suffix), 0o600, "sigil.db{suffix}");
    }
    server.stop();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    setup.sigil(&["migrate"], None);
    assert_eq!(mode(""), 0o600, "narrowed at open");
}

async fn wait_for_jwks_len(http: &reqwest::Client, base: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http
            .get(format!("{base}/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .text()
            .await
            .expect("text");
        let parsed: Value = serde_json::from_str(&body).expect("json");
        if parsed["keys"].as_array().map(Vec::len) == Some(count) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the running server did not pick up the new key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_sqlite() {
    full_flow(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres() {
    let Some(db) = TestDb::postgres("end_to_end_on_postgres").await else {
        return;
    };
    full_flow(db).await;
}

#[test]
fn keys_prune_removes_only_keys_whose_tokens_have_all_expired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}/sigil.db", dir.path().display());
    let setup = Setup { dir, database_url };
    let keys = sigil_server::keyfiles::KeyDir::new(setup.keys());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    // old: retired two days ago, when recent took over; recent: retired five minutes ago,
    // when current took over (its tokens may live 10 minutes);
    // current: active; next: not yet signing.
    let old = keys
        .add_new_key(now - 10 * 86_400, now - 10 * 86_400)
        .expect("key");
    let recent = keys
        .add_new_key(now - 2 * 86_400, now - 2 * 86_400)
        .expect("key");
    let current = keys.add_new_key(now - 300, now - 300).expect("key");
    let next = keys.add_new_key(now, now + 600).expect("key");
    let out = setup.sigil(&["keys", "prune"], None);
    assert!(out.contains(&format!("pruned key {old}")), "{out}");
    let left: Vec<String> = keys
        .load()
        .expect("load")
        .keys()
        .iter()
        .map(|k| k.kid().to_string())
        .collect();
    assert_eq!(left, vec![recent.clone(), current.clone(), next.clone()]);
    let listing = setup.sigil(&["keys", "list"], None);
    assert_eq!(state_of(&listing, &recent), Some("retired"), "{listing}");
    assert_eq!(state_of(&listing, &current), Some("active"), "{listing}");
    assert_eq!(state_of(&listing, &next), Some("next"), "{listing}");
    // Nothing more to prune until the recent key's tokens have expired.
    assert!(setup
        .sigil(&["keys", "prune"], None)
        .contains("nothing to prune"));
}

fn state_of<'a>(listing: &'a str, kid: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|line| line.starts_with(kid))
        .and_then(|line| line.split_whitespace().nth(1))
}
