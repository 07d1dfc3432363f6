//! The audit log: the `audit_log` table, a hash chain keyed by its sequence number.

use super::{escape_like, read_row, read_rows, Backend, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::audit::{chain_entry, AuditEntry, AuditFilter, AuditRecord};
use sigil_core::store::{AuditStore, StoreError};

/// How often an append retries after losing its place to a concurrent one.
const APPEND_ATTEMPTS: u32 = 200;
const AUDIT_COLUMNS: &str =
    "seq, at, actor, actor_id, action, target, detail, address, prev_hash, hash";

/// A row of `audit_log`, selected with [`AUDIT_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    seq: i64,
    at: i64,
    actor: String,
    actor_id: Option<String>,
    action: String,
    target: Option<String>,
    detail: String,
    address: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            seq: row.seq,
            record: AuditRecord {
                at: row.at,
                actor: row.actor,
                actor_id: row.actor_id,
                action: row.action,
                target: row.target,
                detail: row.detail,
                address: row.address,
            },
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// The last link of the chain: what the next one hashes over.
#[derive(sqlx::FromRow)]
pub(super) struct LastLinkRow {
    seq: i64,
    hash: String,
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B>
where
    B::Db: Reads<AuditRow> + Reads<LastLinkRow>,
{
    async fn append_audit(&self, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        // Optimistic: read the last link, insert the next one under the primary key
        // `seq`. A concurrent append (another task or replica) that took the place
        // makes this insert conflict; then read again and retry.
        for attempt in 0..APPEND_ATTEMPTS {
            let last = self
                .fetch_optional(sqlx::query(
                    "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                ))
                .await?;
            let previous = last
                .map(|row| read_row::<B::Db, LastLinkRow>(&row))
                .transpose()?;
            let entry = chain_entry(
                previous.as_ref().map(|last| (last.seq, last.hash.as_str())),
                record.clone(),
            );
            let insert = sqlx::query("INSERT INTO audit_log (seq, at, actor, actor_id, action, target, detail, address, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (seq) DO NOTHING")
                .param(entry.seq)
                .param(entry.record.at)
                .param(entry.record.actor.as_str())
                .param(entry.record.actor_id.as_deref())
                .param(entry.record.action.as_str())
                .param(entry.record.target.as_deref())
                .param(entry.record.detail.as_str())
                .param(entry.record.address.as_deref())
                .param(entry.prev_hash.as_str())
                .param(entry.hash.as_str());
            if self.execute(insert).await? == 1 {
                return Ok(entry);
            }
            let pause = std::time::Duration::from_millis(1 + u64::from(attempt % 8));
            tokio::time::sleep(pause).await;
        }
        Err(StoreError::Unavailable(
            "the audit log is too busy to append to".into(),
        ))
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR seq < $1) AND ($2 IS NULL OR action LIKE $2 ESCAPE '\\') AND ($3 IS NULL OR actor = $3) AND ($4 IS NULL OR target = $4) ORDER BY seq DESC LIMIT $5");
        self.read(|| async {
            let action_like = filter
                .action_prefix
                .as_deref()
                .map(|prefix| format!("{}%", escape_like(prefix)));
            let query = sqlx::query(&sql)
                .param(filter.before_seq)
                .param(action_like.as_deref())
                .param(filter.actor.as_deref())
                .param(filter.target.as_deref())
                .param(filter.limit);
            let rows = self.fetch_all(query).await?;
            let entries = read_rows::<B::Db, AuditRow>(&rows)?;
            Ok(entries.into_iter().map(AuditEntry::from).collect())
        })
        .await
    }

    async fn audit_entries_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        self.read(|| async {
            let query = sqlx::query(&sql).param(after_seq).param(limit);
            let rows = self.fetch_all(query).await?;
            let entries = read_rows::<B::Db, AuditRow>(&rows)?;
            Ok(entries.into_iter().map(AuditEntry::from).collect())
        })
        .await
    }
}
