//! Back-channel logout: the `session_clients` table (which clients each session signed in
//! to) and the `logout_deliveries` outbox. Workers on every replica claim due deliveries
//! with one conditional statement each, as the mail outbox does.

use super::{map_err, read_row, read_rows, Backend, Dialect, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::secret::random_token;
use sigil_core::store::{
    BackchannelLogoutStore, LogoutDelivery, LogoutDeliveryCounts, QueuedLogouts, StoreError,
};

const DELIVERY_COLUMNS: &str = "id, client_id, subject, sid, created_at, attempts, next_attempt_at, last_error, delivered_at, given_up_at";

/// How long a delivered or given-up logout stays listed before housekeeping deletes it.
pub(super) const DELIVERIES_KEPT: i64 = 7 * 86_400;
/// How long a session's list of clients is kept (as long as a session's record).
pub(super) const SESSION_CLIENTS_KEPT: i64 = 90 * 86_400;

#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: String,
    client_id: String,
    subject: String,
    sid: Option<String>,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    given_up_at: Option<i64>,
}

impl From<DeliveryRow> for LogoutDelivery {
    fn from(row: DeliveryRow) -> Self {
        Self {
            id: row.id,
            client_id: row.client_id,
            subject: row.subject,
            sid: row.sid,
            created_at: row.created_at,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
            given_up_at: row.given_up_at,
        }
    }
}

/// A `session_clients` row as `DELETE … RETURNING` gives it back.
#[derive(sqlx::FromRow)]
pub(super) struct SessionClientRow {
    sid: String,
    client_id: String,
}

/// Whether a client takes back-channel logouts, and how many of its wait.
#[derive(sqlx::FromRow)]
pub(super) struct ClientLogoutRow {
    has_uri: bool,
    pending: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct LogoutCountsRow {
    pending: i64,
    retrying: i64,
    delivered: i64,
    given_up: i64,
    oldest_pending_at: Option<i64>,
}

#[async_trait]
impl<B: Backend> BackchannelLogoutStore for SqlStore<B>
where
    B::Db: Reads<DeliveryRow>
        + Reads<SessionClientRow>
        + Reads<ClientLogoutRow>
        + Reads<LogoutCountsRow>,
{
    async fn record_session_client(
        &self,
        sid: &str,
        client_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query("INSERT INTO session_clients (sid, client_id, user_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (sid, client_id) DO NOTHING")
            .param(sid)
            .param(client_id)
            .param(user_id)
            .param(now);
        self.execute(query).await?;
        Ok(())
    }

    async fn list_session_clients(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        self.read(|| async {
            let rows = self
                .fetch_all(
                    sqlx::query("SELECT sid, client_id FROM session_clients WHERE sid = $1 ORDER BY client_id")
                        .param(sid),
                )
                .await?;
            Ok(read_rows::<B::Db, SessionClientRow>(&rows)?
                .into_iter()
                .map(|row| row.client_id)
                .collect())
        })
        .await
    }

    async fn queue_logouts(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        max_pending_per_client: i64,
        now: i64,
    ) -> Result<QueuedLogouts, StoreError> {
        let mut tx = self.begin().await?;
        // Taking the rows out first is what makes a session's logout queue once: of two
        // concurrent logouts, the second finds nothing left to take.
        let taken = B::Db::fetch_all(
            &mut *tx,
            sqlx::query("DELETE FROM session_clients WHERE user_id = $1 AND ($2 IS NULL OR sid = $2) AND ($3 IS NULL OR sid <> $3) RETURNING sid, client_id")
                .param(user_id)
                .param(only)
                .param(except),
        )
        .await
        .map_err(map_err)?;
        let mut taken = read_rows::<B::Db, SessionClientRow>(&taken)?;
        taken.sort_by(|a, b| (&a.client_id, &a.sid).cmp(&(&b.client_id, &b.sid)));
        let mut outcome = QueuedLogouts::default();
        for row in taken {
            let client = B::Db::fetch_optional(
                &mut *tx,
                sqlx::query("SELECT backchannel_logout_uri IS NOT NULL AS has_uri, (SELECT COUNT(*) FROM logout_deliveries d WHERE d.client_id = c.id AND d.delivered_at IS NULL AND d.given_up_at IS NULL) AS pending FROM clients c WHERE c.id = $1")
                    .param(row.client_id.as_str()),
            )
            .await
            .map_err(map_err)?;
            let Some(client) = client
                .map(|r| read_row::<B::Db, ClientLogoutRow>(&r))
                .transpose()?
            else {
                continue;
            };
            if !client.has_uri {
                continue;
            }
            if client.pending >= max_pending_per_client {
                outcome.dropped += 1;
                continue;
            }
            let sql = format!("INSERT INTO logout_deliveries ({DELIVERY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 0, $5, NULL, NULL, NULL)");
            B::Db::execute(
                &mut *tx,
                sqlx::query(&sql)
                    .param(random_token(16))
                    .param(row.client_id.as_str())
                    .param(user_id)
                    .param(row.sid.as_str())
                    .param(now),
            )
            .await
            .map_err(map_err)?;
            outcome.queued += 1;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn claim_logout(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<LogoutDelivery>, StoreError> {
        // The outer condition repeats the inner one: when two workers pick the same row,
        // the second one's update finds it claimed and changes nothing.
        // A worker that lost the race for a row tries again while others are due, so that
        // workers on several replicas do not leave due deliveries for the next poll.
        const DUE: &str = "delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= $2 AND claimed_until <= $2";
        let sql = format!("UPDATE logout_deliveries SET claimed_until = $1 WHERE id = (SELECT id FROM logout_deliveries WHERE {DUE} ORDER BY next_attempt_at, created_at LIMIT 1) AND delivered_at IS NULL AND given_up_at IS NULL AND claimed_until <= $2 RETURNING {DELIVERY_COLUMNS}");
        let any_due = format!(
            "SELECT {DELIVERY_COLUMNS} FROM logout_deliveries WHERE {} LIMIT 1",
            DUE.replace("$2", "$1")
        );
        for _ in 0..8 {
            let row = self
                .fetch_optional(sqlx::query(&sql).param(lease_until).param(now))
                .await?;
            if let Some(row) = row {
                return Ok(Some(LogoutDelivery::from(read_row::<B::Db, DeliveryRow>(
                    &row,
                )?)));
            }
            let still_due = self
                .fetch_optional(sqlx::query(&any_due).param(now))
                .await?;
            if still_due.is_none() {
                break;
            }
        }
        Ok(None)
    }

    async fn mark_logout_delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let query = sqlx::query("UPDATE logout_deliveries SET delivered_at = $1, attempts = attempts + 1, claimed_until = 0, last_error = NULL WHERE id = $2")
            .param(now)
            .param(id);
        self.execute(query).await?;
        Ok(())
    }

    async fn mark_logout_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = match next_attempt_at {
            Some(at) => sqlx::query("UPDATE logout_deliveries SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, claimed_until = 0 WHERE id = $3")
                .param(error)
                .param(at)
                .param(id),
            None => sqlx::query("UPDATE logout_deliveries SET attempts = attempts + 1, last_error = $1, given_up_at = $2, claimed_until = 0 WHERE id = $3")
                .param(error)
                .param(now)
                .param(id),
        };
        self.execute(query).await?;
        Ok(())
    }

    async fn logout_counts(&self) -> Result<LogoutDeliveryCounts, StoreError> {
        self.read(|| async {
            let row = self
                .fetch_one(sqlx::query("SELECT COALESCE(SUM(CASE WHEN delivered_at IS NULL AND given_up_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, COALESCE(SUM(CASE WHEN delivered_at IS NULL AND given_up_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0) AS retrying, COALESCE(SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS delivered, COALESCE(SUM(CASE WHEN given_up_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS given_up, MIN(CASE WHEN delivered_at IS NULL AND given_up_at IS NULL THEN created_at END) AS oldest_pending_at FROM logout_deliveries"))
                .await?;
            let counts = read_row::<B::Db, LogoutCountsRow>(&row)?;
            Ok(LogoutDeliveryCounts {
                pending: counts.pending,
                retrying: counts.retrying,
                delivered: counts.delivered,
                given_up: counts.given_up,
                oldest_pending_at: counts.oldest_pending_at,
            })
        })
        .await
    }

    async fn list_logouts(
        &self,
        client_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LogoutDelivery>, StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM logout_deliveries WHERE ($1 IS NULL OR client_id = $1) ORDER BY created_at DESC, id DESC LIMIT $2");
        self.read(|| async {
            let rows = self
                .fetch_all(sqlx::query(&sql).param(client_id).param(limit))
                .await?;
            let deliveries = read_rows::<B::Db, DeliveryRow>(&rows)?;
            Ok(deliveries.into_iter().map(LogoutDelivery::from).collect())
        })
        .await
    }
}
