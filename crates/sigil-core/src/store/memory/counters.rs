//! The memory store's activity counters.

use super::MemoryStore;
use crate::activity::{
    hour_of, minute_of, ActivityCount, ActivityPage, ActivityQuery, ActivityRow, Grain,
};
use crate::store::{ActivityStore, StoreError};
use async_trait::async_trait;
use std::collections::BTreeMap;

/// (bucket, metric, label, client id) → count; minute rows have the client `""`.
pub(super) type Counters = BTreeMap<(i64, String, String, String), i64>;

fn add(counters: &mut Counters, bucket: i64, c: &ActivityCount, client_id: &str) {
    *counters
        .entry((
            bucket,
            c.metric.to_string(),
            c.label.to_string(),
            client_id.to_string(),
        ))
        .or_default() += c.count;
}

fn row(key: &(i64, String, String, String), count: i64) -> ActivityRow {
    ActivityRow {
        bucket: key.0,
        metric: key.1.clone(),
        label: key.2.clone(),
        client_id: key.3.clone(),
        count,
    }
}

#[async_trait]
impl ActivityStore for MemoryStore {
    async fn add_activity(&self, counts: &[ActivityCount]) -> Result<(), StoreError> {
        let mut data = self.data();
        for c in counts {
            add(&mut data.activity_minutes, minute_of(c.minute), c, "");
            add(&mut data.activity_hours, hour_of(c.minute), c, "");
            if !c.client_id.is_empty() {
                add(&mut data.activity_hours, hour_of(c.minute), c, &c.client_id);
            }
        }
        Ok(())
    }

    async fn activity_series(&self, query: &ActivityQuery) -> Result<Vec<ActivityRow>, StoreError> {
        let data = self.data();
        let table = match query.grain {
            Grain::Minute => &data.activity_minutes,
            Grain::Hour => &data.activity_hours,
        };
        let client = query.client_id.as_deref().unwrap_or("");
        let width = query.bucket_seconds.max(1);
        let mut sums: BTreeMap<(i64, String, String), i64> = BTreeMap::new();
        for (key, count) in table.range((query.from, String::new(), String::new(), String::new())..)
        {
            if key.0 >= query.to {
                break;
            }
            if key.3 != client {
                continue;
            }
            let bucket = key.0 - key.0.rem_euclid(width);
            *sums
                .entry((bucket, key.1.clone(), key.2.clone()))
                .or_default() += count;
        }
        Ok(sums
            .into_iter()
            .map(|((bucket, metric, label), count)| ActivityRow {
                bucket,
                metric,
                label,
                client_id: client.to_string(),
                count,
            })
            .collect())
    }

    async fn list_activity(&self, page: &ActivityPage) -> Result<Vec<ActivityRow>, StoreError> {
        let data = self.data();
        let table = match page.grain {
            Grain::Minute => &data.activity_minutes,
            Grain::Hour => &data.activity_hours,
        };
        Ok(table
            .iter()
            .filter(|(key, _)| key.0 >= page.from && key.0 < page.to)
            .filter(|(key, _)| {
                page.after.as_ref().is_none_or(|after| {
                    (&key.0, &key.1, &key.2, &key.3) > (&after.0, &after.1, &after.2, &after.3)
                })
            })
            .take(usize::try_from(page.limit.max(0)).unwrap_or(0))
            .map(|(key, count)| row(key, *count))
            .collect())
    }

    async fn last_token_hour(&self, client_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .data()
            .activity_hours
            .iter()
            .filter(|(key, _)| key.1 == crate::activity::metric::TOKEN && key.3 == client_id)
            .map(|(key, _)| key.0)
            .max())
    }

    async fn prune_activity(
        &self,
        minutes_before: i64,
        hours_before: i64,
    ) -> Result<u64, StoreError> {
        let mut data = self.data();
        let before = data.activity_minutes.len() + data.activity_hours.len();
        data.activity_minutes
            .retain(|key, _| key.0 >= minutes_before);
        data.activity_hours.retain(|key, _| key.0 >= hours_before);
        let after = data.activity_minutes.len() + data.activity_hours.len();
        Ok((before - after) as u64)
    }
}
