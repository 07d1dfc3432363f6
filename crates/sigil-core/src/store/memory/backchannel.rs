//! The memory store's back-channel logout records: sessions' clients and the outbox.

use super::MemoryStore;
use crate::secret::random_token;
use crate::store::{
    BackchannelLogoutStore, LogoutDelivery, LogoutDeliveryCounts, QueuedLogouts, StoreError,
};
use async_trait::async_trait;

fn is_pending(delivery: &LogoutDelivery) -> bool {
    delivery.delivered_at.is_none() && delivery.given_up_at.is_none()
}

#[async_trait]
impl BackchannelLogoutStore for MemoryStore {
    async fn record_session_client(
        &self,
        sid: &str,
        client_id: &str,
        user_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.data()
            .session_clients
            .entry((sid.to_string(), client_id.to_string()))
            .or_insert_with(|| (user_id.to_string(), now));
        Ok(())
    }

    async fn list_session_clients(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        let mut clients: Vec<String> = self
            .data()
            .session_clients
            .keys()
            .filter(|(s, _)| s == sid)
            .map(|(_, client)| client.clone())
            .collect();
        clients.sort();
        Ok(clients)
    }

    async fn queue_logouts(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        max_pending_per_client: i64,
        now: i64,
    ) -> Result<QueuedLogouts, StoreError> {
        let mut data = self.data();
        let mut ended: Vec<(String, String)> = data
            .session_clients
            .iter()
            .filter(|((sid, _), (user, _))| {
                user == user_id && only.is_none_or(|o| o == sid) && except.is_none_or(|e| e != sid)
            })
            .map(|(key, _)| key.clone())
            .collect();
        ended.sort();
        let mut outcome = QueuedLogouts::default();
        for (sid, client_id) in ended {
            data.session_clients
                .remove(&(sid.clone(), client_id.clone()));
            let has_uri = data
                .clients
                .get(&client_id)
                .is_some_and(|c| c.backchannel_logout_uri.is_some());
            if !has_uri {
                continue;
            }
            let pending = data
                .logouts
                .iter()
                .filter(|(d, _)| d.client_id == client_id && is_pending(d))
                .count() as i64;
            if pending >= max_pending_per_client {
                outcome.dropped += 1;
                continue;
            }
            data.logouts.push((
                LogoutDelivery {
                    id: random_token(16),
                    client_id,
                    subject: user_id.to_string(),
                    sid: Some(sid),
                    created_at: now,
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    delivered_at: None,
                    given_up_at: None,
                },
                0,
            ));
            outcome.queued += 1;
        }
        Ok(outcome)
    }

    async fn claim_logout(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<LogoutDelivery>, StoreError> {
        let mut data = self.data();
        let due = data
            .logouts
            .iter_mut()
            .filter(|(d, claimed)| is_pending(d) && d.next_attempt_at <= now && *claimed <= now)
            .min_by_key(|(d, _)| (d.next_attempt_at, d.created_at));
        Ok(due.map(|(delivery, claimed)| {
            *claimed = lease_until;
            delivery.clone()
        }))
    }

    async fn mark_logout_delivered(&self, id: &str, now: i64) -> Result<(), StoreError> {
        if let Some((d, claimed)) = self.data().logouts.iter_mut().find(|(d, _)| d.id == id) {
            d.delivered_at = Some(now);
            d.attempts += 1;
            d.last_error = None;
            *claimed = 0;
        }
        Ok(())
    }

    async fn mark_logout_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some((d, claimed)) = self.data().logouts.iter_mut().find(|(d, _)| d.id == id) {
            d.attempts += 1;
            d.last_error = Some(error.to_string());
            match next_attempt_at {
                Some(at) => d.next_attempt_at = at,
                None => d.given_up_at = Some(now),
            }
            *claimed = 0;
        }
        Ok(())
    }

    async fn logout_counts(&self) -> Result<LogoutDeliveryCounts, StoreError> {
        let data = self.data();
        let mut counts = LogoutDeliveryCounts::default();
        for (d, _) in &data.logouts {
            if d.delivered_at.is_some() {
                counts.delivered += 1;
            } else if d.given_up_at.is_some() {
                counts.given_up += 1;
            } else {
                counts.pending += 1;
                if d.attempts > 0 {
                    counts.retrying += 1;
                }
                counts.oldest_pending_at = Some(
                    counts
                        .oldest_pending_at
                        .map_or(d.created_at, |at| at.min(d.created_at)),
                );
            }
        }
        Ok(counts)
    }

    async fn list_logouts(
        &self,
        client_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LogoutDelivery>, StoreError> {
        let mut found: Vec<LogoutDelivery> = self
            .data()
            .logouts
            .iter()
            .map(|(d, _)| d)
            .filter(|d| client_id.is_none_or(|c| c == d.client_id))
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(found)
    }
}
