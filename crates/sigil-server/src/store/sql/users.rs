//! Users: the `users` table.

use super::{read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{StoreError, UserStore};
use sigil_core::user::{email_key, username_key, AccountOrigin, User};

pub(super) const USER_COLUMNS: &str = "id, username, email, email_verified, name, password_hash, is_admin, is_disabled, must_change_password, session_epoch, origin, version, created_at, updated_at, requires_second_factor";

/// The unique keys of a user's row ([`username_key`], [`email_key`]).
pub(super) struct UserKeys {
    username: String,
    email: Option<String>,
}

impl UserKeys {
    pub(super) fn of(user: &User) -> Self {
        Self {
            username: username_key(&user.username),
            email: user.email.as_deref().map(email_key),
        }
    }
}

pub(super) fn insert_user_sql() -> String {
    format!("INSERT INTO users ({USER_COLUMNS}, username_key, email_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)")
}

/// The insert of a new user's row (`sql` from [`insert_user_sql`]).
pub(super) fn insert_user<'q, DB: super::Dialect>(
    sql: &'q str,
    user: &'q User,
    keys: &'q UserKeys,
) -> super::Query<'q, DB> {
    sqlx::query(sql)
        .param(user.id.as_str())
        .param(user.username.as_str())
        .param(user.email.as_deref())
        .param(user.email_verified)
        .param(user.name.as_deref())
        .param(user.password_hash.as_str())
        .param(user.is_admin)
        .param(user.is_disabled)
        .param(user.must_change_password)
        .param(user.session_epoch)
        .param(user.origin.as_str())
        .param(user.version)
        .param(user.created_at)
        .param(user.updated_at)
        .param(user.requires_second_factor)
        .param(keys.username.as_str())
        .param(keys.email.as_deref())
}

/// A row of `users`, selected with [`USER_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    username: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    password_hash: String,
    is_admin: bool,
    is_disabled: bool,
    must_change_password: bool,
    requires_second_factor: bool,
    session_epoch: i64,
    origin: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            email_verified: row.email_verified,
            name: row.name,
            password_hash: row.password_hash,
            is_admin: row.is_admin,
            is_disabled: row.is_disabled,
            must_change_password: row.must_change_password,
            requires_second_factor: row.requires_second_factor,
            session_epoch: row.session_epoch,
            origin: AccountOrigin::parse(&row.origin),
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The names and keys of a user, for [`SqlStore::rekey_users`].
#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    id: String,
    username: String,
    email: Option<String>,
    username_key: Option<String>,
    email_key: Option<String>,
}

/// `SELECT COUNT(*) AS n`.
#[derive(sqlx::FromRow)]
struct CountRow {
    n: i64,
}

// The bound names a row type private to these modules; every database has it.
#[allow(private_bounds)]
impl<B: Backend> SqlStore<B>
where
    B::Db: Reads<KeyRow>,
{
    /// Writes every user's keys as Rust computes them (NFC, Unicode lowercase), oldest
    /// account first, after migration 0005 filled them in with SQL's `lower(trim(…))`,
    /// which knows neither. A key another, older account holds already stays empty (the
    /// account keeps signing in by its exact name). Returns how many rows changed.
    pub(crate) async fn rekey_users(&self) -> Result<u64, StoreError> {
        let rows = self
            .fetch_all(sqlx::query(
                "SELECT id, username, email, username_key, email_key FROM users ORDER BY created_at, id",
            ))
            .await?;
        let rows = read_rows::<B::Db, KeyRow>(&rows)?;
        // Clear the keys that change first, so that a key moving to an older account is free.
        let mut changed = Vec::new();
        for row in rows {
            let name = username_key(&row.username);
            let email = row.email.as_deref().map(email_key);
            if row.username_key.as_deref() != Some(name.as_str()) || row.email_key != email {
                self.execute(
                    sqlx::query(
                        "UPDATE users SET username_key = NULL, email_key = NULL WHERE id = $1",
                    )
                    .param(row.id.as_str()),
                )
                .await?;
                changed.push((row.id, name, email));
            }
        }
        let mut count = 0;
        for (id, name, email) in changed {
            for (column, key) in [("username_key", Some(name)), ("email_key", email)] {
                let Some(key) = key else { continue };
                let sql = format!("UPDATE users SET {column} = $1 WHERE id = $2");
                match self
                    .execute(sqlx::query(&sql).param(key.as_str()).param(id.as_str()))
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict(_)) => {
                        tracing::warn!(user = %id, column, "two accounts share a key; the newer one keeps its exact name only")
                    }
                    Err(error) => return Err(error),
                }
            }
            count += 1;
        }
        Ok(count)
    }
}

#[async_trait]
impl<B: Backend> UserStore for SqlStore<B>
where
    B::Db: Reads<UserRow> + Reads<CountRow>,
{
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let keys = UserKeys::of(user);
        let sql = insert_user_sql();
        self.execute(insert_user(&sql, user, &keys)).await?;
        Ok(())
    }

    async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        // The keys are rewritten only when the name or address changed, so that an old row
        // that shares a key with an older one (see migration 0005) keeps working.
        let email_key = user.email.as_deref().map(email_key);
        let query = sqlx::query("UPDATE users SET username_key = CASE WHEN username = $1 THEN username_key ELSE $2 END, email_key = CASE WHEN email IS NOT DISTINCT FROM $3 THEN email_key ELSE $4 END, username = $1, email = $3, email_verified = $5, name = $6, password_hash = $7, is_admin = $8, is_disabled = $9, must_change_password = $10, session_epoch = $11, updated_at = $12, requires_second_factor = $15, version = version + 1 WHERE id = $13 AND version = $14")
            .param(user.username.as_str())
            .param(username_key(&user.username))
            .param(user.email.as_deref())
            .param(email_key.as_deref())
            .param(user.email_verified)
            .param(user.name.as_deref())
            .param(user.password_hash.as_str())
            .param(user.is_admin)
            .param(user.is_disabled)
            .param(user.must_change_password)
            .param(user.session_epoch)
            .param(user.updated_at)
            .param(user.id.as_str())
            .param(user.version)
            .param(user.requires_second_factor);
        Ok(self.execute(query).await? == 1)
    }

    async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = self.hot_optional(|| sqlx::query(&sql).param(id)).await?;
        let user = row
            .map(|row| read_row::<B::Db, UserRow>(&row))
            .transpose()?;
        Ok(user.map(User::from))
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        // The exact name first (rows from before keys, see migration 0005), then the key.
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1 OR username_key = $2 ORDER BY CASE WHEN username = $1 THEN 0 ELSE 1 END LIMIT 1");
        let key = username_key(username);
        let row = self
            .hot_optional(|| sqlx::query(&sql).param(username).param(key.as_str()))
            .await?;
        let user = row
            .map(|row| read_row::<B::Db, UserRow>(&row))
            .transpose()?;
        Ok(user.map(User::from))
    }

    async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = $1");
        let key = email_key(email);
        self.read(|| async {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(key.as_str()))
                .await?;
            let user = row
                .map(|row| read_row::<B::Db, UserRow>(&row))
                .transpose()?;
            Ok(user.map(User::from))
        })
        .await
    }

    async fn count_users(&self) -> Result<i64, StoreError> {
        self.read(|| async move {
            let row = self
                .fetch_one(sqlx::query("SELECT COUNT(*) AS n FROM users"))
                .await?;
            Ok(read_row::<B::Db, CountRow>(&row)?.n)
        })
        .await
    }

    async fn replace_password_hash(
        &self,
        user_id: &str,
        expected_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2, version = version + 1 WHERE id = $3 AND password_hash = $4")
            .param(new_hash)
            .param(now)
            .param(user_id)
            .param(expected_hash);
        Ok(self.execute(query).await? == 1)
    }

    async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE $1 ESCAPE '\\' ORDER BY username LIMIT $2");
        self.read(|| async {
            let query = sqlx::query(&sql)
                .param(super::like_pattern(search))
                .param(limit);
            let rows = self.fetch_all(query).await?;
            let users = read_rows::<B::Db, UserRow>(&rows)?;
            Ok(users.into_iter().map(User::from).collect())
        })
        .await
    }
}

/// A user's columns as a `LEFT JOIN users u` brings them in, `u_` before each name.
pub(super) const JOINED_USER_COLUMNS: &str = "u.id AS u_id, u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, u.name AS u_name, u.password_hash AS u_password_hash, u.is_admin AS u_is_admin, u.is_disabled AS u_is_disabled, u.must_change_password AS u_must_change_password, u.session_epoch AS u_session_epoch, u.origin AS u_origin, u.version AS u_version, u.created_at AS u_created_at, u.updated_at AS u_updated_at, u.requires_second_factor AS u_requires_second_factor";

/// A user selected with [`JOINED_USER_COLUMNS`]: every column NULL when the join found
/// no user.
#[derive(sqlx::FromRow)]
pub(super) struct JoinedUserRow {
    u_id: Option<String>,
    u_username: Option<String>,
    u_email: Option<String>,
    u_email_verified: Option<bool>,
    u_name: Option<String>,
    u_password_hash: Option<String>,
    u_is_admin: Option<bool>,
    u_is_disabled: Option<bool>,
    u_must_change_password: Option<bool>,
    u_session_epoch: Option<i64>,
    u_origin: Option<String>,
    u_version: Option<i64>,
    u_created_at: Option<i64>,
    u_updated_at: Option<i64>,
    u_requires_second_factor: Option<bool>,
}

impl JoinedUserRow {
    /// The user, or `None` when there was none to join.
    pub(super) fn into_user(self) -> Result<Option<User>, StoreError> {
        let Some(id) = self.u_id else {
            return Ok(None);
        };
        fn present<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
            value.ok_or_else(|| StoreError::Other(format!("users.{column} is NULL")))
        }
        Ok(Some(User {
            id,
            username: present(self.u_username, "username")?,
            email: self.u_email,
            email_verified: present(self.u_email_verified, "email_verified")?,
            name: self.u_name,
            password_hash: present(self.u_password_hash, "password_hash")?,
            is_admin: present(self.u_is_admin, "is_admin")?,
            is_disabled: present(self.u_is_disabled, "is_disabled")?,
            must_change_password: present(self.u_must_change_password, "must_change_password")?,
            requires_second_factor: present(
                self.u_requires_second_factor,
                "requires_second_factor",
            )?,
            session_epoch: present(self.u_session_epoch, "session_epoch")?,
            origin: AccountOrigin::parse(&present(self.u_origin, "origin")?),
            version: present(self.u_version, "version")?,
            created_at: present(self.u_created_at, "created_at")?,
            updated_at: present(self.u_updated_at, "updated_at")?,
        }))
    }
}
