//! The durable mail outbox: the `mail_outbox` table. Workers on every replica claim due
//! messages with one conditional statement each, so each message has one holder at a time.

use super::{read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::store::{MailOutbox, OutboxCounts, OutboxMessage, StoreError};

const MESSAGE_COLUMNS: &str = "id, recipient, kind, sealed, created_at, attempts, next_attempt_at, last_error, sent_at, given_up_at";

/// How long a sent or given-up message stays listed before housekeeping deletes it.
pub(super) const OUTBOX_KEPT: i64 = 7 * 86_400;

#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    id: String,
    recipient: String,
    kind: String,
    sealed: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    sent_at: Option<i64>,
    given_up_at: Option<i64>,
}

impl From<MessageRow> for OutboxMessage {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            recipient: row.recipient,
            kind: row.kind,
            sealed: row.sealed,
            created_at: row.created_at,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            sent_at: row.sent_at,
            given_up_at: row.given_up_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    pending: i64,
    retrying: i64,
    sent: i64,
    given_up: i64,
    oldest_pending_at: Option<i64>,
}

#[async_trait]
impl<B: Backend> MailOutbox for SqlStore<B>
where
    B::Db: Reads<MessageRow> + Reads<CountsRow>,
{
    async fn enqueue_mail(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO mail_outbox ({MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        let query = sqlx::query(&sql)
            .param(message.id.as_str())
            .param(message.recipient.as_str())
            .param(message.kind.as_str())
            .param(message.sealed.as_str())
            .param(message.created_at)
            .param(message.attempts)
            .param(message.next_attempt_at)
            .param(message.last_error.as_deref())
            .param(message.sent_at)
            .param(message.given_up_at);
        self.execute(query).await?;
        Ok(())
    }

    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        // The outer condition repeats the inner one: when two workers pick the same row,
        // the second one's update finds it claimed and changes nothing.
        let sql = format!("UPDATE mail_outbox SET claimed_until = $1 WHERE id = (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= $2 AND claimed_until <= $2 ORDER BY next_attempt_at, created_at LIMIT 1) AND sent_at IS NULL AND given_up_at IS NULL AND claimed_until <= $2 RETURNING {MESSAGE_COLUMNS}");
        let row = self
            .fetch_optional(sqlx::query(&sql).param(lease_until).param(now))
            .await?;
        let message = row
            .map(|row| read_row::<B::Db, MessageRow>(&row))
            .transpose()?;
        Ok(message.map(OutboxMessage::from))
    }

    async fn mark_mail_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let query = sqlx::query("UPDATE mail_outbox SET sent_at = $1, sealed = '', attempts = attempts + 1, claimed_until = 0, last_error = NULL WHERE id = $2")
            .param(now)
            .param(id);
        self.execute(query).await?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let query = match next_attempt_at {
            Some(at) => sqlx::query("UPDATE mail_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, claimed_until = 0 WHERE id = $3")
                .param(error)
                .param(at)
                .param(id),
            None => sqlx::query("UPDATE mail_outbox SET attempts = attempts + 1, last_error = $1, given_up_at = $2, sealed = '', claimed_until = 0 WHERE id = $3")
                .param(error)
                .param(now)
                .param(id),
        };
        self.execute(query).await?;
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.read(|| async {
            let row = self
                .fetch_one(sqlx::query("SELECT COALESCE(SUM(CASE WHEN sent_at IS NULL AND given_up_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, COALESCE(SUM(CASE WHEN sent_at IS NULL AND given_up_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0) AS retrying, COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS sent, COALESCE(SUM(CASE WHEN given_up_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS given_up, MIN(CASE WHEN sent_at IS NULL AND given_up_at IS NULL THEN created_at END) AS oldest_pending_at FROM mail_outbox"))
                .await?;
            let counts = read_row::<B::Db, CountsRow>(&row)?;
            Ok(OutboxCounts {
                pending: counts.pending,
                retrying: counts.retrying,
                sent: counts.sent,
                given_up: counts.given_up,
                oldest_pending_at: counts.oldest_pending_at,
            })
        })
        .await
    }

    async fn list_outbox(
        &self,
        recipient: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM mail_outbox WHERE ($1 IS NULL OR recipient = $1) ORDER BY created_at DESC, id DESC LIMIT $2");
        self.read(|| async {
            let rows = self
                .fetch_all(sqlx::query(&sql).param(recipient).param(limit))
                .await?;
            let messages = read_rows::<B::Db, MessageRow>(&rows)?;
            Ok(messages.into_iter().map(OutboxMessage::from).collect())
        })
        .await
    }
}
