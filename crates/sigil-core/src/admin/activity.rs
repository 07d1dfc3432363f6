//! What the console reads of the activity counters: the charts' series, a client's usage
//! (with its live refresh families and consents, counted by the store, not loaded), and
//! the stored rows for export.

use super::{Admin, AdminError};
use crate::activity::{metric, ActivityPage, ActivityQuery, ActivityRow, Grain, HOUR};
use crate::store::StoreError;

/// A client's figures: from the hourly counts, and from its refresh families and consents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientUsage {
    /// Refresh families (signed-in devices, of every user) neither revoked nor expired.
    pub live_refresh_families: i64,
    /// Users who remember consenting to the client.
    pub consented_users: i64,
    /// Tokens issued in the last 24 hours (whole hours: the current one and the 23 before).
    pub tokens_last_day: i64,
    /// Tokens issued in the last 7 days (the current hour and the 167 before).
    pub tokens_last_week: i64,
    /// The start of the latest hour in which it was issued a token.
    pub last_token_hour: Option<i64>,
}

impl Admin {
    /// Sums of the stored counts ([`crate::store::ActivityStore::activity_series`]).
    pub async fn activity_series(
        &self,
        query: &ActivityQuery,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        self.store.activity_series(query).await
    }

    /// A page of the stored rows, for export.
    pub async fn list_activity(&self, page: &ActivityPage) -> Result<Vec<ActivityRow>, StoreError> {
        self.store.list_activity(page).await
    }

    /// How much `client_id` is used.
    pub async fn client_usage(&self, client_id: &str) -> Result<ClientUsage, AdminError> {
        let now = self.now();
        let this_hour = crate::activity::hour_of(now);
        let week = self
            .store
            .activity_series(&ActivityQuery {
                grain: Grain::Hour,
                from: this_hour - 167 * HOUR,
                to: this_hour + HOUR,
                bucket_seconds: HOUR,
                client_id: Some(client_id.to_string()),
            })
            .await?;
        let tokens = week.iter().filter(|row| row.metric == metric::TOKEN);
        let day_from = this_hour - 23 * HOUR;
        let mut usage = ClientUsage {
            live_refresh_families: self
                .store
                .count_live_refresh_families(client_id, now)
                .await?,
            consented_users: self.store.count_consents(client_id).await?,
            ..ClientUsage::default()
        };
        for row in tokens {
            usage.tokens_last_week += row.count;
            if row.bucket >= day_from {
                usage.tokens_last_day += row.count;
            }
        }
        usage.last_token_hour = self.store.last_token_hour(client_id).await?;
        Ok(usage)
    }
}
