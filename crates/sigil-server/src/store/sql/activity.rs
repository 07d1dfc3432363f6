//! The activity counters: `activity_minutes` (totals per minute) and `activity_hours`
//! (per hour, in total and per client). Writes are additive upserts, so replicas writing
//! the same buckets at once add up instead of overwriting each other.

use super::{map_err, read_row, read_rows, Backend, Dialect, Param, Reads, SqlStore};
use async_trait::async_trait;
use sigil_core::activity::{
    hour_of, minute_of, ActivityCount, ActivityPage, ActivityQuery, ActivityRow, Grain,
};
use sigil_core::store::{ActivityStore, StoreError};
use std::collections::BTreeMap;

#[derive(sqlx::FromRow)]
pub(super) struct ActivityRowDb {
    bucket: i64,
    metric: String,
    label: String,
    client_id: String,
    count: i64,
}

impl From<ActivityRowDb> for ActivityRow {
    fn from(row: ActivityRowDb) -> Self {
        Self {
            bucket: row.bucket,
            metric: row.metric,
            label: row.label,
            client_id: row.client_id,
            count: row.count,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct LastHourRow {
    hour: Option<i64>,
}

const ADD_MINUTE: &str = "INSERT INTO activity_minutes (minute, metric, label, count) VALUES ($1, $2, $3, $4) ON CONFLICT (minute, metric, label) DO UPDATE SET count = activity_minutes.count + excluded.count";
const ADD_HOUR: &str = "INSERT INTO activity_hours (hour, metric, label, client_id, count) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hour, metric, label, client_id) DO UPDATE SET count = activity_hours.count + excluded.count";

#[async_trait]
impl<B: Backend> ActivityStore for SqlStore<B>
where
    B::Db: Reads<ActivityRowDb> + Reads<LastHourRow>,
{
    async fn add_activity(&self, counts: &[ActivityCount]) -> Result<(), StoreError> {
        // Summed first, and written in key order: one statement per row, and concurrent
        // writers lock rows in the same order (no deadlock between replicas).
        let mut minutes: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
        let mut hours: BTreeMap<(i64, &str, &str, &str), i64> = BTreeMap::new();
        for c in counts {
            let hour = hour_of(c.minute);
            *minutes
                .entry((minute_of(c.minute), c.metric, c.label))
                .or_default() += c.count;
            *hours.entry((hour, c.metric, c.label, "")).or_default() += c.count;
            if !c.client_id.is_empty() {
                *hours
                    .entry((hour, c.metric, c.label, c.client_id.as_str()))
                    .or_default() += c.count;
            }
        }
        if minutes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for ((minute, metric, label), count) in minutes {
            let query = sqlx::query(ADD_MINUTE)
                .param(minute)
                .param(metric)
                .param(label)
                .param(count);
            B::Db::execute(&mut *tx, query).await.map_err(map_err)?;
        }
        for ((hour, metric, label, client_id), count) in hours {
            let query = sqlx::query(ADD_HOUR)
                .param(hour)
                .param(metric)
                .param(label)
                .param(client_id)
                .param(count);
            B::Db::execute(&mut *tx, query).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn activity_series(&self, query: &ActivityQuery) -> Result<Vec<ActivityRow>, StoreError> {
        let width = query.bucket_seconds.max(1);
        let client = query.client_id.clone().unwrap_or_default();
        // Bucket starts are whole multiples of `width` (bucket - bucket % width; buckets
        // are never negative).
        let sql = match query.grain {
            Grain::Minute => "SELECT minute - (minute % $1) AS bucket, metric, label, '' AS client_id, CAST(SUM(count) AS BIGINT) AS count FROM activity_minutes WHERE minute >= $2 AND minute < $3 AND $4 = '' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            Grain::Hour => "SELECT hour - (hour % $1) AS bucket, metric, label, client_id, CAST(SUM(count) AS BIGINT) AS count FROM activity_hours WHERE hour >= $2 AND hour < $3 AND client_id = $4 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3",
        };
        self.read(|| async {
            let rows = self
                .fetch_all(
                    sqlx::query(sql)
                        .param(width)
                        .param(query.from)
                        .param(query.to)
                        .param(client.as_str()),
                )
                .await?;
            Ok(read_rows::<B::Db, ActivityRowDb>(&rows)?
                .into_iter()
                .map(ActivityRow::from)
                .collect())
        })
        .await
    }

    async fn list_activity(&self, page: &ActivityPage) -> Result<Vec<ActivityRow>, StoreError> {
        let (after_bucket, after_metric, after_label, after_client) = match &page.after {
            Some((bucket, metric, label, client)) => (
                Some(*bucket),
                metric.as_str(),
                label.as_str(),
                client.as_str(),
            ),
            None => (None, "", "", ""),
        };
        // The cursor compares column by column (row-value comparison is not in every
        // SQLite build this runs on).
        let after = "($3 IS NULL OR b > $3 OR (b = $3 AND (metric > $4 OR (metric = $4 AND (label > $5 OR (label = $5 AND client_id > $6))))))";
        let sql = match page.grain {
            Grain::Minute => format!("SELECT b AS bucket, metric, label, client_id, count FROM (SELECT minute AS b, metric, label, '' AS client_id, count FROM activity_minutes WHERE minute >= $1 AND minute < $2) rows WHERE {after} ORDER BY b, metric, label, client_id LIMIT $7"),
            Grain::Hour => format!("SELECT b AS bucket, metric, label, client_id, count FROM (SELECT hour AS b, metric, label, client_id, count FROM activity_hours WHERE hour >= $1 AND hour < $2) rows WHERE {after} ORDER BY b, metric, label, client_id LIMIT $7"),
        };
        self.read(|| async {
            let rows = self
                .fetch_all(
                    sqlx::query(&sql)
                        .param(page.from)
                        .param(page.to)
                        .param(after_bucket)
                        .param(after_metric)
                        .param(after_label)
                        .param(after_client)
                        .param(page.limit),
                )
                .await?;
            Ok(read_rows::<B::Db, ActivityRowDb>(&rows)?
                .into_iter()
                .map(ActivityRow::from)
                .collect())
        })
        .await
    }

    async fn last_token_hour(&self, client_id: &str) -> Result<Option<i64>, StoreError> {
        self.read(|| async move {
            let query = sqlx::query(
                "SELECT MAX(hour) AS hour FROM activity_hours WHERE client_id = $1 AND metric = $2",
            )
            .param(client_id)
            .param(sigil_core::activity::metric::TOKEN);
            let row = self.fetch_one(query).await?;
            Ok(read_row::<B::Db, LastHourRow>(&row)?.hour)
        })
        .await
    }

    async fn prune_activity(
        &self,
        minutes_before: i64,
        hours_before: i64,
    ) -> Result<u64, StoreError> {
        let minutes = self
            .execute(
                sqlx::query("DELETE FROM activity_minutes WHERE minute < $1").param(minutes_before),
            )
            .await?;
        let hours = self
            .execute(sqlx::query("DELETE FROM activity_hours WHERE hour < $1").param(hours_before))
            .await?;
        Ok(minutes + hours)
    }
}
