//! Browser sessions (tower-sessions) stored in Sigil's own database, so that they survive a
//! restart and replicas share them. The cookie is HttpOnly and SameSite=Lax; with an https
//! issuer it is also Secure and carries the `__Host-` prefix.
//!
//! The database never holds the cookie's value: a session is stored under the SHA-256 of
//! its id (like refresh tokens), so a copy of the database opens no session. A session with
//! nobody signed in (a pending authorization request, a sign-in form's CSRF token) is kept
//! at most [`ANONYMOUS_TTL_SECONDS`], and housekeeping deletes expired sessions.

use crate::store::Database;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::cookie::time::{Duration as CookieDuration, OffsetDateTime};
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session key that holds the signed-in user.
pub const SIGNED_IN_KEY: &str = "user";

/// The longest a session with nobody signed in is kept: as long as a pending authorization
/// request lives. A flood of cookieless requests leaves rows that soon expire and go.
pub const ANONYMOUS_TTL_SECONDS: i64 = 30 * 60;

/// The session store of whichever database Sigil runs on, keyed by the hash of the id.
#[derive(Debug, Clone)]
pub enum AnySessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnySessionStore {
    /// Creates the store and its table. Rows written before sessions were keyed by hash
    /// no longer match any cookie: their users sign in again, and the rows expire.
    pub async fn open(database: &Database) -> Result<Self, sqlx::Error> {
        Ok(match database {
            Database::Sqlite(db) => {
                let store = SqliteStore::new(db.pool().clone());
                store.migrate().await?;
                Self::Sqlite(store)
            }
            Database::Postgres(db) => {
                let store = PostgresStore::new(db.pool().clone());
                store.migrate().await?;
                Self::Postgres(store)
            }
        })
    }

    /// Deletes the sessions that expired before `now`; returns how many.
    pub async fn delete_expired(
        &self,
        database: &Database,
        now: OffsetDateTime,
    ) -> Result<u64, sqlx::Error> {
        let deleted = match database {
            // The store writes `expiry_date` as RFC 3339 text; `datetime` reads it.
            Database::Sqlite(db) => {
                sqlx::query("DELETE FROM tower_sessions WHERE datetime(expiry_date) < datetime(?)")
                    .bind(now)
                    .execute(db.pool())
                    .await?
                    .rows_affected()
            }
            Database::Postgres(db) => {
                // The store's default schema and table.
                sqlx::query(r#"DELETE FROM "tower_sessions"."session" WHERE expiry_date < $1"#)
                    .bind(now)
                    .execute(db.pool())
                    .await?
                    .rows_affected()
            }
        };
        Ok(deleted)
    }

    async fn create_stored(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.create(record).await,
            Self::Postgres(s) => s.create(record).await,
        }
    }
    async fn save_stored(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.save(record).await,
            Self::Postgres(s) => s.save(record).await,
        }
    }
    async fn load_stored(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s) => s.load(id).await,
            Self::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete_stored(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete(id).await,
            Self::Postgres(s) => s.delete(id).await,
        }
    }
}

/// The id a session is stored under: the first 16 bytes of the SHA-256 of the cookie's
/// value. The cookie's id is 128 random bits, so the hash reveals nothing and cannot be
/// turned back into a cookie.
pub fn storage_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.to_string().as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(first))
}

/// The record as stored: under [`storage_id`], and with nobody signed in, expiring within
/// [`ANONYMOUS_TTL_SECONDS`].
fn stored(record: &Record) -> Record {
    let mut stored = record.clone();
    stored.id = storage_id(&record.id);
    if !record.data.contains_key(SIGNED_IN_KEY) {
        let cap = OffsetDateTime::now_utc() + CookieDuration::seconds(ANONYMOUS_TTL_SECONDS);
        stored.expiry_date = stored.expiry_date.min(cap);
    }
    stored
}

#[async_trait]
impl SessionStore for AnySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let mut row = stored(record);
            let wanted = row.id;
            self.create_stored(&mut row).await?;
            if row.id == wanted {
                return Ok(());
            }
            // The inner store found the hashed id taken and stored the row under a random
            // id no cookie hashes to: drop that row and start again with a new cookie id.
            self.delete_stored(&row.id).await?;
            record.id = Id::default();
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_stored(&stored(record)).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.load_stored(&storage_id(id)).await?.map(|mut record| {
            record.id = *id;
            record
        }))
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.delete_stored(&storage_id(id)).await
    }
}

/// The session cookie's name for an issuer.
pub fn cookie_name(is_https: bool) -> &'static str {
    if is_https {
        "__Host-sigil_session"
    } else {
        "sigil_session"
    }
}

/// The session layer: strict cookie flags, expiry after `idle_seconds` without use.
pub fn layer(
    store: AnySessionStore,
    name: &str,
    is_https: bool,
    idle_seconds: i64,
) -> SessionManagerLayer<AnySessionStore> {
    SessionManagerLayer::new(store)
        .with_name(name.to_string())
        .with_secure(is_https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(idle_seconds)))
}
