//! Shared test helpers: databases (SQLite in a temp dir, PostgreSQL created and dropped
//! per test), an in-process app with cheap argon2 parameters, and seeding.
#![allow(dead_code)]

pub mod browser;
pub mod flows;
pub mod npm;
pub mod process;
pub mod spa;
pub mod webdriver;

use clap::Parser;
use sigil_core::client::{Client, ClientRegistration};
use sigil_core::password::{Argon2Params, PasswordHasher};
use sigil_core::secret::{random_token, Secret};
use sigil_core::user::User;
use sigil_server::config::{Cli, Command, ServeArgs};
use sigil_server::keyfiles::KeyDir;
use sigil_server::serve::build_state;
use sigil_server::store::{Database, DatabaseOptions};
use sigil_server::AppState;
use tempfile::TempDir;

/// argon2 parameters for tests only: cheap, so tests run fast.
pub const CHEAP_ARGON2: [&str; 6] = [
    "--argon2-memory-kib",
    "256",
    "--argon2-iterations",
    "1",
    "--argon2-parallelism",
    "1",
];

pub fn cheap_hasher() -> PasswordHasher {
    PasswordHasher::new(Argon2Params {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    })
    .expect("hasher")
}

/// The PostgreSQL server URL for tests, or `None` (with a notice) when it is not set.
/// Under `CI=true` a missing database is a failure, not a skip.
pub fn postgres_server_url(test: &str) -> Option<String> {
    match std::env::var("SIGIL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: SIGIL_TEST_DATABASE_URL is not set, and CI=true requires PostgreSQL"
                );
            }
            eprintln!(
                "NOTICE: {test} skipped: set SIGIL_TEST_DATABASE_URL to run it against PostgreSQL"
            );
            None
        }
    }
}

/// A database that exists for one test and is removed afterwards.
pub enum TestDb {
    Sqlite {
        _dir: TempDir,
        url: String,
    },
    Postgres {
        server: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/sigil.db", dir.path().display());
        Self::Sqlite { _dir: dir, url }
    }

    /// Creates a fresh PostgreSQL database on the server named by SIGIL_TEST_DATABASE_URL.
    pub async fn postgres(test: &str) -> Option<Self> {
        let server = postgres_server_url(test)?;
        let name = format!(
            "sigil_test_{}",
            random_token(9).to_lowercase().replace(['-', '_'], "x")
        );
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("connect to the test PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = replace_database(&server, &name);
        Some(Self::Postgres { server, name, url })
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    /// The SQLite file's path (for tests that read the raw file).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self {
            Self::Sqlite { url, .. } => Some(url.trim_start_matches("sqlite://").into()),
            _ => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { server, name, .. } = self {
            let (server, name) = (server.clone(), name.clone());
            // Drop needs its own runtime: the test's may be gone or busy.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(admin) = sqlx::PgPool::connect(&server).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// `postgres://user@host:port/db?x` with the database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec!["sigil", "serve", "--issuer", "http://sigil.test"];
    argv.extend_from_slice(&CHEAP_ARGON2);
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid arguments").command {
        Command::Serve(args) => *args,
        _ => unreachable!("serve"),
    }
}

/// A running in-process app: state, and what must live as long as it.
pub struct TestApp {
    pub state: AppState,
    pub db: TestDb,
    pub keys: TempDir,
    /// Where mail goes (`.eml` files).
    pub mail: TempDir,
}

impl TestApp {
    pub async fn start(db: TestDb, extra: &[&str]) -> Self {
        let database = Database::open(db.url(), &DatabaseOptions::default())
            .await
            .expect("open database");
        let keys = tempfile::tempdir().expect("tempdir");
        let mail = tempfile::tempdir().expect("tempdir");
        let mail_dir = mail.path().display().to_string();
        let mut extra = extra.to_vec();
        extra.extend_from_slice(&["--mail-dir", &mail_dir]);
        let state = build_state(&serve_args(&extra), database, &KeyDir::new(keys.path()))
            .await
            .expect("state");
        Self {
            state,
            db,
            keys,
            mail,
        }
    }

    pub fn router(&self) -> axum::Router {
        sigil_server::app(self.state.clone())
    }

    pub async fn add_user(&self, username: &str, password: &str) -> User {
        let now = self.state.authority.now();
        let user = User {
            id: random_token(16),
            username: username.into(),
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            name: Some(format!("{username} Example")),
            password_hash: cheap_hasher().hash(password).expect("hash"),
            is_admin: false,
            is_disabled: false,
            must_change_password: false,
            requires_second_factor: false,
            session_epoch: 0,
            origin: sigil_core::user::AccountOrigin::Admin,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        self.state
            .database
            .store()
            .create_user(&user)
            .await
            .expect("user");
        user
    }

    pub async fn add_client(&self, registration: ClientRegistration) -> (Client, Option<Secret>) {
        let (client, secret) = registration
            .build(self.state.authority.now())
            .expect("client");
        self.state
            .database
            .store()
            .create_client(&client)
            .await
            .expect("client");
        (client, secret)
    }
}

/// The value of a hidden form field (`name="…" value="…"`) in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().expect("value").to_string()
}

/// Seconds since the Unix epoch, by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The RFC 6238 code of `secret` (base32) at `time`, as an authenticator app shows it,
/// computed by the `totp-rs` crate (not by Sigil's own code).
pub fn totp_code(secret: &str, time: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .expect("base32 secret");
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        "test".into(),
    )
    .generate(time)
}

/// The claims of a JWT, read without checking its signature (for a token a test has had
/// verified already, or whose claims alone it looks at).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}
