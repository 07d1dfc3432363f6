//! The SQL of every store method, written once and instantiated for SQLite and PostgreSQL.
//! Placeholders are `$1…$n` in order of first use, which both databases accept.

use sigil_core::client::GrantType;
use sigil_core::store::StoreError;

pub(crate) const USER_COLUMNS: &str = "id, username, email, email_verified, name, password_hash, is_admin, is_disabled, must_change_password, session_epoch, created_at, updated_at";
pub(crate) const CLIENT_COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes, audiences, is_first_party, always_issue_refresh_token, access_token_ttl, refresh_token_ttl, created_at, updated_at";
pub(crate) const TOKEN_FAMILY_COLUMNS: &str = "t.id, t.family_id, t.token_hash, t.parent_id, t.created_at, t.expires_at, t.used_at, t.sealed_successor, f.id AS f_id, f.client_id, f.user_id, f.scope, f.auth_time, f.created_at AS f_created_at, f.expires_at AS f_expires_at, f.revoked_at";
/// The compare-and-set of a refresh-token rotation, on `refresh_tokens`: the token is still
/// unused and its family unrevoked. Both databases' rotations update only under it.
pub(crate) const UNUSED_IN_LIVE_FAMILY: &str = "used_at IS NULL AND EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = refresh_tokens.family_id AND f.revoked_at IS NULL)";
/// A user's columns as the refresh-token lookup joins them in (`u_` before each name).
pub(crate) const JOINED_USER_COLUMNS: &str = "u.id AS u_id, u.username AS u_username, u.email AS u_email, u.email_verified AS u_email_verified, u.name AS u_name, u.password_hash AS u_password_hash, u.is_admin AS u_is_admin, u.is_disabled AS u_is_disabled, u.must_change_password AS u_must_change_password, u.session_epoch AS u_session_epoch, u.created_at AS u_created_at, u.updated_at AS u_updated_at";
/// The names a user row is read by: as selected with `USER_COLUMNS`, and as joined.
pub(crate) const USER_FIELDS: [&str; 12] = [
    "id",
    "username",
    "email",
    "email_verified",
    "name",
    "password_hash",
    "is_admin",
    "is_disabled",
    "must_change_password",
    "session_epoch",
    "created_at",
    "updated_at",
];
pub(crate) const JOINED_USER_FIELDS: [&str; 12] = [
    "u_id",
    "u_username",
    "u_email",
    "u_email_verified",
    "u_name",
    "u_password_hash",
    "u_is_admin",
    "u_is_disabled",
    "u_must_change_password",
    "u_session_epoch",
    "u_created_at",
    "u_updated_at",
];
pub(crate) const FAMILY_COLUMNS: &str = "id AS f_id, client_id, user_id, scope, auth_time, created_at AS f_created_at, expires_at AS f_expires_at, revoked_at";

pub(crate) fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

pub(crate) fn from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Other(format!("corrupt list column: {e}")))
}

pub(crate) fn grants_to_json(grants: &[GrantType]) -> String {
    let names: Vec<String> = grants.iter().map(|g| g.as_str().to_string()).collect();
    to_json(&names)
}

pub(crate) fn grants_from_json(text: &str) -> Result<Vec<GrantType>, StoreError> {
    from_json(text)?
        .iter()
        .map(|g| {
            GrantType::parse(g).ok_or_else(|| StoreError::Other(format!("unknown grant type {g}")))
        })
        .collect()
}

/// How often an audit append retries after losing its place to a concurrent one.
pub(crate) const AUDIT_APPEND_ATTEMPTS: u32 = 200;

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `%search%`, lower-cased and escaped; `%` alone when there is no search.
pub(crate) fn like_pattern(search: Option<&str>) -> String {
    format!(
        "%{}%",
        escape_like(&search.unwrap_or("").trim().to_lowercase())
    )
}

/// Runs a read with a time limit, if the store sets one: a database that stops answering
/// makes the read fail as unavailable instead of hanging. Reads have no side effects, so
/// giving up on one loses nothing. Writes are never cut off this way: a write given up on
/// might still commit, and its caller would report a failure for something that happened.
pub(crate) async fn bounded<T>(
    limit: Option<std::time::Duration>,
    read: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match limit {
        None => read.await,
        Some(limit) => tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "the database did not answer a read within {} ms",
                limit.as_millis()
            )))
        }),
    }
}

/// Implements [`sigil_core::store::Store`] for `$store`, whose `pool()` is a `$pool`.
/// Counts a sign-in attempt as a failure only when the subject may try now, in one
/// statement (both databases): `$1` subject, `$2` now, `$3` start of the window, `$4` free
/// failures (at least 1), `$5` first delay (at least 1), `$6` longest delay. The wait is
/// `ThrottlePolicy::delay` written in SQL: `$5 * 2^(failures - $4)` (at most 30 doublings),
/// capped at `$6`, counted to the end of the last failure's second. No row comes back when
/// the attempt must wait.
pub(crate) const RESERVE_SIGN_IN_ATTEMPT: &str = "INSERT INTO sign_in_failures (subject, failures, first_failure_at, last_failure_at) VALUES ($1, 1, $2, $2) \
    ON CONFLICT (subject) DO UPDATE SET \
    failures = CASE WHEN sign_in_failures.last_failure_at < $3 THEN 1 ELSE sign_in_failures.failures + 1 END, \
    first_failure_at = CASE WHEN sign_in_failures.last_failure_at < $3 THEN $2 ELSE sign_in_failures.first_failure_at END, \
    last_failure_at = $2 \
    WHERE sign_in_failures.last_failure_at < $3 \
    OR sign_in_failures.failures < $4 \
    OR sign_in_failures.last_failure_at + 1 + (CASE \
        WHEN $5 * (CAST(1 AS BIGINT) << CAST((CASE WHEN sign_in_failures.failures - $4 > 30 THEN 30 ELSE sign_in_failures.failures - $4 END) AS INTEGER)) > $6 THEN $6 \
        ELSE $5 * (CAST(1 AS BIGINT) << CAST((CASE WHEN sign_in_failures.failures - $4 > 30 THEN 30 ELSE sign_in_failures.failures - $4 END) AS INTEGER)) END) <= $2 \
    RETURNING subject";

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use $crate::store::map_err;
        use $crate::store::sql::*;
        use sigil_core::client::Client;
        use sigil_core::store::{AuthorizationCode, RefreshFamily, RefreshTokenRecord, SignInFailures, Store, StoreError};
        use sigil_core::user::User;
        use sqlx::Row;

        type DbRow = <$db as sqlx::Database>::Row;

        fn user_from_row(row: &DbRow) -> Result<User, sqlx::Error> {
            user_from_fields(row, &USER_FIELDS)
        }

        /// Reads a user by the column names in `n` (plain, or as joined).
        fn user_from_fields(row: &DbRow, n: &[&str; 12]) -> Result<User, sqlx::Error> {
            Ok(User {
                id: row.try_get(n[0])?,
                username: row.try_get(n[1])?,
                email: row.try_get(n[2])?,
                email_verified: row.try_get(n[3])?,
                name: row.try_get(n[4])?,
                password_hash: row.try_get(n[5])?,
                is_admin: row.try_get(n[6])?,
                is_disabled: row.try_get(n[7])?,
                must_change_password: row.try_get(n[8])?,
                session_epoch: row.try_get(n[9])?,
                created_at: row.try_get(n[10])?,
                updated_at: row.try_get(n[11])?,
            })
        }

        fn client_from_row(row: &DbRow) -> Result<Client, StoreError> {
            let text = |name: &str| -> Result<String, StoreError> { row.try_get::<String, _>(name).map_err(map_err) };
            Ok(Client {
                id: text("id")?,
                name: text("name")?,
                secret_hash: row.try_get("secret_hash").map_err(map_err)?,
                redirect_uris: from_json(&text("redirect_uris")?)?,
                post_logout_redirect_uris: from_json(&text("post_logout_redirect_uris")?)?,
                grant_types: grants_from_json(&text("grant_types")?)?,
                scopes: from_json(&text("scopes")?)?,
                audiences: from_json(&text("audiences")?)?,
                is_first_party: row.try_get("is_first_party").map_err(map_err)?,
                always_issue_refresh_token: row.try_get("always_issue_refresh_token").map_err(map_err)?,
                access_token_ttl: row.try_get("access_token_ttl").map_err(map_err)?,
                refresh_token_ttl: row.try_get("refresh_token_ttl").map_err(map_err)?,
                created_at: row.try_get("created_at").map_err(map_err)?,
                updated_at: row.try_get("updated_at").map_err(map_err)?,
            })
        }

        fn family_from_row(row: &DbRow) -> Result<RefreshFamily, sqlx::Error> {
            Ok(RefreshFamily {
                id: row.try_get("f_id")?,
                client_id: row.try_get("client_id")?,
                user_id: row.try_get("user_id")?,
                scope: row.try_get("scope")?,
                auth_time: row.try_get("auth_time")?,
                created_at: row.try_get("f_created_at")?,
                expires_at: row.try_get("f_expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn token_from_row(row: &DbRow) -> Result<RefreshTokenRecord, sqlx::Error> {
            Ok(RefreshTokenRecord {
                id: row.try_get("id")?,
                family_id: row.try_get("family_id")?,
                token_hash: row.try_get("token_hash")?,
                parent_id: row.try_get("parent_id")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
                sealed_successor: row.try_get("sealed_successor")?,
            })
        }

        fn failures_from_row(row: &DbRow) -> Result<SignInFailures, sqlx::Error> {
            Ok(SignInFailures {
                subject: row.try_get("subject")?,
                failures: row.try_get("failures")?,
                first_failure_at: row.try_get("first_failure_at")?,
                last_failure_at: row.try_get("last_failure_at")?,
            })
        }

        fn code_from_row(row: &DbRow) -> Result<AuthorizationCode, sqlx::Error> {
            Ok(AuthorizationCode {
                code_hash: row.try_get("code_hash")?,
                client_id: row.try_get("client_id")?,
                user_id: row.try_get("user_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                redirect_uri_given: row.try_get("redirect_uri_given")?,
                scope: row.try_get("scope")?,
                code_challenge: row.try_get("code_challenge")?,
                nonce: row.try_get("nonce")?,
                auth_time: row.try_get("auth_time")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                used_at: row.try_get("used_at")?,
                family_id: row.try_get("family_id")?,
                access_token_jti: row.try_get("access_token_jti")?,
                access_token_exp: row.try_get("access_token_exp")?,
            })
        }

        fn audit_from_row(row: &DbRow) -> Result<sigil_core::audit::AuditEntry, sqlx::Error> {
            Ok(sigil_core::audit::AuditEntry {
                seq: row.try_get("seq")?,
                record: sigil_core::audit::AuditRecord {
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    actor_id: row.try_get("actor_id")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    detail: row.try_get("detail")?,
                    address: row.try_get("address")?,
                },
                prev_hash: row.try_get("prev_hash")?,
                hash: row.try_get("hash")?,
            })
        }

        const CODE_COLUMNS: &str = "code_hash, client_id, user_id, redirect_uri, redirect_uri_given, scope, code_challenge, nonce, auth_time, created_at, expires_at, used_at, family_id, access_token_jti, access_token_exp";

        const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (id, family_id, token_hash, parent_id, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

        #[async_trait::async_trait]
        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                read(self, || async move {
                    sqlx::query("SELECT 1").execute(self.pool()).await.map_err(map_err)?;
                    Ok(())
                }).await
            }

            async fn create_user(&self, user: &User) -> Result<(), StoreError> {
                sqlx::query(&format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
                    .bind(&user.id)
                    .bind(&user.username)
                    .bind(&user.email)
                    .bind(user.email_verified)
                    .bind(&user.name)
                    .bind(&user.password_hash)
                    .bind(user.is_admin)
                    .bind(user.is_disabled)
                    .bind(user.must_change_password)
                    .bind(user.session_epoch)
                    .bind(user.created_at)
                    .bind(user.updated_at)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE users SET username = $1, email = $2, email_verified = $3, name = $4, password_hash = $5, is_admin = $6, is_disabled = $7, must_change_password = $8, session_epoch = $9, updated_at = $10 WHERE id = $11")
                    .bind(&user.username)
                    .bind(&user.email)
                    .bind(user.email_verified)
                    .bind(&user.name)
                    .bind(&user.password_hash)
                    .bind(user.is_admin)
                    .bind(user.is_disabled)
                    .bind(user.must_change_password)
                    .bind(user.session_epoch)
                    .bind(user.updated_at)
                    .bind(&user.id)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn find_user(&self, id: &str) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let row = hot_optional(self, || sqlx::query(&sql).bind(id)).await?;
                row.as_ref().map(user_from_row).transpose().map_err(map_err)
            }

            async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
                let row = hot_optional(self, || sqlx::query(&sql).bind(username)).await?;
                row.as_ref().map(user_from_row).transpose().map_err(map_err)
            }

            async fn count_users(&self) -> Result<i64, StoreError> {
                read(self, || async move {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
                        .fetch_one(self.pool())
                        .await
                        .map_err(map_err)?;
                    row.try_get::<i64, _>("n").map_err(map_err)
                }).await
            }

            async fn replace_password_hash(&self, user_id: &str, expected_hash: &str, new_hash: &str, now: i64) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
                    .bind(new_hash)
                    .bind(now)
                    .bind(user_id)
                    .bind(expected_hash)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
                let sql = format!("INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
                bind_client(sqlx::query(&sql), client)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn find_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
                let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
                let row = hot_optional(self, || sqlx::query(&sql).bind(id)).await?;
                row.as_ref().map(client_from_row).transpose()
            }

            async fn max_client_access_token_ttl(&self) -> Result<Option<i64>, StoreError> {
                read(self, || async move {
                    let row = sqlx::query("SELECT MAX(access_token_ttl) AS ttl FROM clients")
                        .fetch_one(self.pool())
                        .await
                        .map_err(map_err)?;
                    row.try_get::<Option<i64>, _>("ttl").map_err(map_err)
                }).await
            }

            async fn create_refresh_family(&self, family: &RefreshFamily, first: &RefreshTokenRecord) -> Result<(), StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                sqlx::query("INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&family.id)
                    .bind(&family.client_id)
                    .bind(&family.user_id)
                    .bind(&family.scope)
                    .bind(family.auth_time)
                    .bind(family.created_at)
                    .bind(family.expires_at)
                    .bind(family.revoked_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                bind_token(sqlx::query(INSERT_TOKEN), first)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn find_refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
                let sql = format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE id = $1");
                let row = hot_optional(self, || sqlx::query(&sql).bind(id)).await?;
                row.as_ref().map(family_from_row).transpose().map_err(map_err)
            }

            async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<(RefreshTokenRecord, RefreshFamily)>, StoreError> {
                read(self, || async move {
                    let row = sqlx::query(&format!("SELECT {TOKEN_FAMILY_COLUMNS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1"))
                        .bind(token_hash)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                    match row {
                        Some(row) => Ok(Some((
                            token_from_row(&row).map_err(map_err)?,
                            family_from_row(&row).map_err(map_err)?,
                        ))),
                        None => Ok(None),
                    }
                }).await
            }

            async fn find_refresh_token_and_user(&self, token_hash: &str) -> Result<Option<(RefreshTokenRecord, RefreshFamily, Option<User>)>, StoreError> {
                let sql = format!("SELECT {TOKEN_FAMILY_COLUMNS}, {JOINED_USER_COLUMNS} FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id LEFT JOIN users u ON u.id = f.user_id WHERE t.token_hash = $1");
                let row = hot_optional(self, || sqlx::query(&sql).bind(token_hash)).await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let has_user = row.try_get::<Option<String>, _>("u_id").map_err(map_err)?.is_some();
                let user = if has_user {
                    Some(user_from_fields(&row, &JOINED_USER_FIELDS).map_err(map_err)?)
                } else {
                    None
                };
                Ok(Some((
                    token_from_row(&row).map_err(map_err)?,
                    family_from_row(&row).map_err(map_err)?,
                    user,
                )))
            }

            async fn rotate_refresh_token(&self, used_id: &str, successor: &RefreshTokenRecord, now: i64, sealed_successor: Option<&str>) -> Result<bool, StoreError> {
                // Each database does it its own way (a batched group commit on SQLite, one
                // statement on PostgreSQL); in both, a conditional update is the
                // compare-and-set, so of any number of concurrent rotations of one token
                // exactly one sees used_at IS NULL and inserts its successor.
                self.rotate(used_id, successor, now, sealed_successor).await
            }

            async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
                    .bind(jti)
                    .bind(expires_at)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
                let row = hot_optional(self, || sqlx::query("SELECT 1 AS one FROM revoked_access_tokens WHERE jti = $1").bind(jti)).await?;
                Ok(row.is_some())
            }

            async fn create_authorization_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
                sqlx::query(&format!("INSERT INTO authorization_codes ({CODE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"))
                    .bind(&code.code_hash)
                    .bind(&code.client_id)
                    .bind(&code.user_id)
                    .bind(&code.redirect_uri)
                    .bind(code.redirect_uri_given)
                    .bind(&code.scope)
                    .bind(&code.code_challenge)
                    .bind(&code.nonce)
                    .bind(code.auth_time)
                    .bind(code.created_at)
                    .bind(code.expires_at)
                    .bind(code.used_at)
                    .bind(&code.family_id)
                    .bind(&code.access_token_jti)
                    .bind(code.access_token_exp)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn find_authorization_code(&self, code_hash: &str) -> Result<Option<AuthorizationCode>, StoreError> {
                read(self, || async move {
                    let row = sqlx::query(&format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE code_hash = $1"))
                        .bind(code_hash)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                    row.as_ref().map(code_from_row).transpose().map_err(map_err)
                }).await
            }

            async fn consume_authorization_code(
                &self,
                code_hash: &str,
                now: i64,
                family_id: Option<&str>,
                access_token_jti: &str,
                access_token_exp: i64,
            ) -> Result<bool, StoreError> {
                let result = sqlx::query("UPDATE authorization_codes SET used_at = $1, family_id = $2, access_token_jti = $3, access_token_exp = $4 WHERE code_hash = $5 AND used_at IS NULL")
                    .bind(now)
                    .bind(family_id)
                    .bind(access_token_jti)
                    .bind(access_token_exp)
                    .bind(code_hash)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn find_consent(&self, user_id: &str, client_id: &str) -> Result<Option<String>, StoreError> {
                read(self, || async move {
                    let row = sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                        .bind(user_id)
                        .bind(client_id)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                    row.map(|r| r.try_get::<String, _>("scope")).transpose().map_err(map_err)
                }).await
            }

            async fn save_consent(&self, user_id: &str, client_id: &str, scope: &str, now: i64) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at")
                    .bind(user_id)
                    .bind(client_id)
                    .bind(scope)
                    .bind(now)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn list_clients(&self, search: Option<&str>, limit: i64) -> Result<Vec<Client>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query(&format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE LOWER(name) LIKE $1 ESCAPE '\\' OR LOWER(id) LIKE $1 ESCAPE '\\' ORDER BY LOWER(name), id LIMIT $2"))
                        .bind(like_pattern(search))
                        .bind(limit)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(client_from_row).collect()
                }).await
            }

            async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
                // The same parameter order as the insert ($1 is the id).
                let result = bind_client(sqlx::query("UPDATE clients SET name = $2, secret_hash = $3, redirect_uris = $4, post_logout_redirect_uris = $5, grant_types = $6, scopes = $7, audiences = $8, is_first_party = $9, always_issue_refresh_token = $10, access_token_ttl = $11, refresh_token_ttl = $12, created_at = $13, updated_at = $14 WHERE id = $1"), client)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
                // Families, their tokens, codes and consents go with it (ON DELETE CASCADE).
                let result = sqlx::query("DELETE FROM clients WHERE id = $1")
                    .bind(id)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn list_users(&self, search: Option<&str>, limit: i64) -> Result<Vec<User>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE LOWER(username) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE $1 ESCAPE '\\' ORDER BY username LIMIT $2"))
                        .bind(like_pattern(search))
                        .bind(limit)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(user_from_row).collect::<Result<_, _>>().map_err(map_err)
                }).await
            }

            async fn list_consents(&self, user_id: &str) -> Result<Vec<sigil_core::store::Consent>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query("SELECT client_id, scope, granted_at FROM consents WHERE user_id = $1 ORDER BY client_id")
                        .bind(user_id)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter()
                        .map(|row| Ok(sigil_core::store::Consent {
                            client_id: row.try_get("client_id")?,
                            scope: row.try_get("scope")?,
                            granted_at: row.try_get("granted_at")?,
                        }))
                        .collect::<Result<_, sqlx::Error>>()
                        .map_err(map_err)
                }).await
            }

            async fn delete_consent(&self, user_id: &str, client_id: &str) -> Result<bool, StoreError> {
                let result = sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected() == 1)
            }

            async fn list_live_refresh_families(&self, user_id: &str, now: i64) -> Result<Vec<RefreshFamily>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query(&format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at"))
                        .bind(user_id)
                        .bind(now)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(family_from_row).collect::<Result<_, _>>().map_err(map_err)
                }).await
            }

            async fn revoke_user_refresh_families(&self, user_id: &str, client_id: Option<&str>, now: i64) -> Result<u64, StoreError> {
                let result = sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND ($3 IS NULL OR client_id = $3)")
                    .bind(now)
                    .bind(user_id)
                    .bind(client_id)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(result.rows_affected())
            }

            async fn append_audit(&self, record: sigil_core::audit::AuditRecord) -> Result<sigil_core::audit::AuditEntry, StoreError> {
                // Optimistic: read the last link, insert the next one under the primary key
                // `seq`. A concurrent append (another task or replica) that took the place
                // makes this insert conflict; then read again and retry.
                for attempt in 0..AUDIT_APPEND_ATTEMPTS {
                    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                    let previous = match &last {
                        Some(row) => Some((
                            row.try_get::<i64, _>("seq").map_err(map_err)?,
                            row.try_get::<String, _>("hash").map_err(map_err)?,
                        )),
                        None => None,
                    };
                    let entry = sigil_core::audit::chain_entry(
                        previous.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
                        record.clone(),
                    );
                    let inserted = sqlx::query("INSERT INTO audit_log (seq, at, actor, actor_id, action, target, detail, address, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING")
                        .bind(entry.seq)
                        .bind(entry.record.at)
                        .bind(&entry.record.actor)
                        .bind(&entry.record.actor_id)
                        .bind(&entry.record.action)
                        .bind(&entry.record.target)
                        .bind(&entry.record.detail)
                        .bind(&entry.record.address)
                        .bind(&entry.prev_hash)
                        .bind(&entry.hash)
                        .execute(self.pool())
                        .await
                        .map_err(map_err)?;
                    if inserted.rows_affected() == 1 {
                        return Ok(entry);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1 + (attempt % 8) as u64)).await;
                }
                Err(StoreError::Unavailable("the audit log is too busy to append to".into()))
            }

            async fn list_audit(&self, filter: &sigil_core::audit::AuditFilter) -> Result<Vec<sigil_core::audit::AuditEntry>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query("SELECT seq, at, actor, actor_id, action, target, detail, address, prev_hash, hash FROM audit_log WHERE ($1 IS NULL OR seq < $1) AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR actor = $3) AND ($4 IS NULL OR target = $4) ORDER BY seq DESC LIMIT $5")
                        .bind(filter.before_seq)
                        .bind(filter.action_prefix.as_deref().map(|p| format!("{}%", escape_like(p))))
                        .bind(filter.actor.as_deref())
                        .bind(filter.target.as_deref())
                        .bind(filter.limit)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(audit_from_row).collect::<Result<_, _>>().map_err(map_err)
                }).await
            }

            async fn audit_entries_after(&self, after_seq: i64, limit: i64) -> Result<Vec<sigil_core::audit::AuditEntry>, StoreError> {
                read(self, || async move {
                    let rows = sqlx::query("SELECT seq, at, actor, actor_id, action, target, detail, address, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_all(self.pool())
                        .await
                        .map_err(map_err)?;
                    rows.iter().map(audit_from_row).collect::<Result<_, _>>().map_err(map_err)
                }).await
            }

            async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                let codes = sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= $1")
                    .bind(now - 86_400)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE expires_at <= $1)")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let families = sqlx::query("DELETE FROM refresh_families WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let denied = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                let failures = sqlx::query("DELETE FROM sign_in_failures WHERE last_failure_at <= $1")
                    .bind(now - 86_400)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                tx.commit().await.map_err(map_err)?;
                Ok(codes.rows_affected() + tokens.rows_affected() + families.rows_affected() + denied.rows_affected() + failures.rows_affected())
            }

            async fn find_sign_in_failures(&self, subjects: &[String]) -> Result<Vec<SignInFailures>, StoreError> {
                if subjects.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders: Vec<String> = (1..=subjects.len()).map(|n| format!("${n}")).collect();
                let sql = format!("SELECT subject, failures, first_failure_at, last_failure_at FROM sign_in_failures WHERE subject IN ({})", placeholders.join(", "));
                let query = || {
                    let mut query = sqlx::query(&sql);
                    for subject in subjects {
                        query = query.bind(subject);
                    }
                    query
                };
                let rows = hot_all(self, query).await?;
                rows.iter().map(|row| failures_from_row(row).map_err(map_err)).collect()
            }

            async fn reserve_sign_in_attempt(&self, subject: &str, free: i64, policy: &sigil_core::throttle::ThrottlePolicy, now: i64) -> Result<Option<SignInFailures>, StoreError> {
                // A count that was cleared between the refused upsert and the read that
                // explains it: try again (a few times at most; each round is atomic).
                for _ in 0..3 {
                    let counted = sqlx::query(RESERVE_SIGN_IN_ATTEMPT)
                        .bind(subject)
                        .bind(now)
                        .bind(now - policy.window)
                        .bind(free.max(1))
                        .bind(policy.base_delay.max(1))
                        .bind(policy.max_delay)
                        .fetch_optional(self.pool())
                        .await
                        .map_err(map_err)?;
                    if counted.is_some() {
                        return Ok(None);
                    }
                    let refusing = self.find_sign_in_failures(&[subject.to_string()]).await?;
                    if let Some(count) = refusing.into_iter().next() {
                        return Ok(Some(count));
                    }
                }
                Err(StoreError::Unavailable("the sign-in count keeps changing".into()))
            }

            async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError> {
                sqlx::query("UPDATE sign_in_failures SET failures = failures - 1 WHERE subject = $1 AND failures > 0")
                    .bind(subject)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
                    .bind(subject)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        type DbQuery<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;

        /// Runs a read (`attempt` builds it afresh each time): within the store's read
        /// deadline and, where the store has a circuit breaker (PostgreSQL), refused at once
        /// while it is open and given up as soon as it opens. A read that fails as
        /// unavailable early, while the database still counts as reachable (a connection
        /// closed by the server, reset or cut), is tried once more on a fresh connection: the kept ones
        /// go back to the pool, which tests those idle since the failure before handing them
        /// out. Only reads are tried again; a write given up on might have committed.
        async fn read<T, Attempt>(store: &$store, attempt: impl Fn() -> Attempt) -> Result<T, StoreError>
        where
            Attempt: std::future::Future<Output = Result<T, StoreError>>,
        {
            let Some(breaker) = store.breaker() else {
                return bounded(store.read_deadline(), attempt()).await;
            };
            // A broken connection fails at once; a pool with no connection to give fails only
            // after waiting out the acquire timeout (the read deadline): no reason to try again.
            let retry_within = store.read_deadline().map(|deadline| deadline / 2);
            let started = std::time::Instant::now();
            bounded(store.read_deadline(), async {
                breaker.check()?;
                match breaker.guard(attempt()).await {
                    Err(StoreError::Unavailable(cause))
                        if !breaker.is_open() && retry_within.is_none_or(|within| started.elapsed() < within) =>
                    {
                        tracing::info!(error = %cause, "a database read failed on a broken connection: trying once more on a fresh one");
                        store.hot_reads().give_back();
                        breaker.connection_lost();
                        breaker.guard(attempt()).await
                    }
                    result => result,
                }
            })
            .await
        }

        /// A read on the token and introspection paths that returns at most one row: on a
        /// connection the store keeps aside (see `HotReads`), as a [`read`]. The connection
        /// is kept again only after a read that succeeded.
        async fn hot_optional<'q>(store: &$store, query: impl Fn() -> DbQuery<'q>) -> Result<Option<DbRow>, StoreError> {
            let query = &query;
            read(store, || async move {
                let mut conn = store.hot_reads().take(store.pool()).await.map_err(map_err)?;
                let row = query().fetch_optional(&mut *conn).await.map_err(map_err)?;
                store.hot_reads().keep(conn);
                Ok(row)
            })
            .await
        }

        /// [`hot_optional`] for a read of any number of rows.
        async fn hot_all<'q>(store: &$store, query: impl Fn() -> DbQuery<'q>) -> Result<Vec<DbRow>, StoreError> {
            let query = &query;
            read(store, || async move {
                let mut conn = store.hot_reads().take(store.pool()).await.map_err(map_err)?;
                let rows = query().fetch_all(&mut *conn).await.map_err(map_err)?;
                store.hot_reads().keep(conn);
                Ok(rows)
            })
            .await
        }

        /// Binds a client's fields in `CLIENT_COLUMNS` order.
        fn bind_client<'q>(
            query: DbQuery<'q>,
            client: &'q Client,
        ) -> DbQuery<'q> {
            query
                .bind(&client.id)
                .bind(&client.name)
                .bind(&client.secret_hash)
                .bind(to_json(&client.redirect_uris))
                .bind(to_json(&client.post_logout_redirect_uris))
                .bind(grants_to_json(&client.grant_types))
                .bind(to_json(&client.scopes))
                .bind(to_json(&client.audiences))
                .bind(client.is_first_party)
                .bind(client.always_issue_refresh_token)
                .bind(client.access_token_ttl)
                .bind(client.refresh_token_ttl)
                .bind(client.created_at)
                .bind(client.updated_at)
        }

        fn bind_token<'q>(
            query: DbQuery<'q>,
            token: &'q RefreshTokenRecord,
        ) -> DbQuery<'q> {
            query
                .bind(&token.id)
                .bind(&token.family_id)
                .bind(&token.token_hash)
                .bind(&token.parent_id)
                .bind(token.created_at)
                .bind(token.expires_at)
                .bind(token.used_at)
        }
    };
}

pub(crate) use impl_sql_store;
