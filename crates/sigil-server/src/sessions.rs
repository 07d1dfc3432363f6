//! Browser sessions (tower-sessions) stored in Sigil's own database, so that they survive a
//! restart and replicas share them. The cookie is HttpOnly and SameSite=Lax; with an https
//! issuer it is also Secure and carries the `__Host-` prefix.

use crate::store::Database;
use async_trait::async_trait;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session store of whichever database Sigil runs on.
#[derive(Debug, Clone)]
pub enum AnySessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl AnySessionStore {
    /// Creates the store and its table.
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

    /// Deletes expired sessions.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete_expired().await,
            Self::Postgres(s) => s.delete_expired().await,
        }
    }
}

#[async_trait]
impl SessionStore for AnySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.create(record).await,
            Self::Postgres(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.save(record).await,
            Self::Postgres(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s) => s.load(id).await,
            Self::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s) => s.delete(id).await,
            Self::Postgres(s) => s.delete(id).await,
        }
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
    is_https: bool,
    idle_seconds: i64,
) -> SessionManagerLayer<AnySessionStore> {
    SessionManagerLayer::new(store)
        .with_name(cookie_name(is_https))
        .with_secure(is_https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(CookieDuration::seconds(idle_seconds)))
}
