//! The memory store's account links, mail outbox and browser sessions.

use super::MemoryStore;
use crate::store::{
    AccountLink, AccountLinkStore, BrowserSession, BrowserSessionStore, LinkPurpose, MailOutbox,
    OutboxCounts, OutboxMessage, StoreError,
};
use async_trait::async_trait;

#[async_trait]
impl AccountLinkStore for MemoryStore {
    async fn create_account_link(&self, link: &AccountLink) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.links.contains_key(&link.token_hash) {
            return Err(StoreError::Conflict("account_links.token_hash".into()));
        }
        data.links.insert(link.token_hash.clone(), link.clone());
        Ok(())
    }

    async fn find_account_link(&self, token_hash: &str) -> Result<Option<AccountLink>, StoreError> {
        Ok(self.data().links.get(token_hash).cloned())
    }

    async fn consume_account_link(
        &self,
        token_hash: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<Option<AccountLink>, StoreError> {
        let mut data = self.data();
        match data.links.get_mut(token_hash) {
            Some(link)
                if link.purpose == purpose && link.used_at.is_none() && link.expires_at > now =>
            {
                link.used_at = Some(now);
                Ok(Some(link.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn void_account_links(
        &self,
        user_id: &str,
        purpose: LinkPurpose,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut voided = 0;
        for link in self.data().links.values_mut() {
            if link.user_id.as_deref() == Some(user_id)
                && link.purpose == purpose
                && link.used_at.is_none()
            {
                link.used_at = Some(now);
                voided += 1;
            }
        }
        Ok(voided)
    }
}

#[async_trait]
impl MailOutbox for MemoryStore {
    async fn enqueue_mail(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.outbox.iter().any(|(m, _)| m.id == message.id) {
            return Err(StoreError::Conflict("mail_outbox.id".into()));
        }
        data.outbox.push((message.clone(), 0));
        Ok(())
    }

    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let mut data = self.data();
        let due = data
            .outbox
            .iter_mut()
            .filter(|(m, claimed_until)| {
                m.sent_at.is_none()
                    && m.given_up_at.is_none()
                    && m.next_attempt_at <= now
                    && *claimed_until <= now
            })
            .min_by_key(|(m, _)| (m.next_attempt_at, m.created_at));
        Ok(due.map(|(message, claimed_until)| {
            *claimed_until = lease_until;
            message.clone()
        }))
    }

    async fn mark_mail_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let mut data = self.data();
        if let Some((message, claimed_until)) = data.outbox.iter_mut().find(|(m, _)| m.id == id) {
            message.sent_at = Some(now);
            message.attempts += 1;
            message.sealed.clear();
            *claimed_until = 0;
        }
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut data = self.data();
        if let Some((message, claimed_until)) = data.outbox.iter_mut().find(|(m, _)| m.id == id) {
            message.attempts += 1;
            message.last_error = Some(error.to_string());
            *claimed_until = 0;
            match next_attempt_at {
                Some(at) => message.next_attempt_at = at,
                None => {
                    message.given_up_at = Some(now);
                    message.sealed.clear();
                }
            }
        }
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let data = self.data();
        let mut counts = OutboxCounts::default();
        for (message, _) in &data.outbox {
            if message.sent_at.is_some() {
                counts.sent += 1;
            } else if message.given_up_at.is_some() {
                counts.given_up += 1;
            } else {
                counts.pending += 1;
                if message.attempts > 0 {
                    counts.retrying += 1;
                }
                counts.oldest_pending_at = Some(
                    counts
                        .oldest_pending_at
                        .map_or(message.created_at, |at| at.min(message.created_at)),
                );
            }
        }
        Ok(counts)
    }

    async fn list_outbox(
        &self,
        recipient: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let data = self.data();
        let mut found: Vec<OutboxMessage> = data
            .outbox
            .iter()
            .map(|(m, _)| m)
            .filter(|m| recipient.is_none_or(|r| m.recipient == r))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        found.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(found)
    }
}

#[async_trait]
impl BrowserSessionStore for MemoryStore {
    async fn create_browser_session(&self, session: &BrowserSession) -> Result<(), StoreError> {
        let mut data = self.data();
        if data.browser_sessions.contains_key(&session.id) {
            return Err(StoreError::Conflict("browser_sessions.id".into()));
        }
        data.browser_sessions
            .insert(session.id.clone(), session.clone());
        Ok(())
    }

    async fn find_browser_session(&self, id: &str) -> Result<Option<BrowserSession>, StoreError> {
        Ok(self.data().browser_sessions.get(id).cloned())
    }

    async fn touch_browser_session(
        &self,
        id: &str,
        address: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        if let Some(session) = self.data().browser_sessions.get_mut(id) {
            session.last_seen_at = now;
            if let Some(address) = address {
                session.address = Some(address.to_string());
            }
        }
        Ok(())
    }

    async fn list_browser_sessions(
        &self,
        user_id: &str,
        seen_since: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        let mut found: Vec<BrowserSession> = self
            .data()
            .browser_sessions
            .values()
            .filter(|s| {
                s.user_id == user_id && s.ended_at.is_none() && s.last_seen_at >= seen_since
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| b.last_seen_at.cmp(&a.last_seen_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn list_live_browser_sessions(
        &self,
        seen_since: i64,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<BrowserSession>, StoreError> {
        let mut found: Vec<BrowserSession> = self
            .data()
            .browser_sessions
            .values()
            .filter(|s| s.ended_at.is_none() && s.last_seen_at >= seen_since)
            .filter(|s| {
                before.is_none_or(|(seen, id)| (s.last_seen_at, s.id.as_str()) < (seen, id))
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| (b.last_seen_at, &b.id).cmp(&(a.last_seen_at, &a.id)));
        found.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn end_browser_sessions(
        &self,
        user_id: &str,
        only: Option<&str>,
        except: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut ended = 0;
        for session in self.data().browser_sessions.values_mut() {
            if session.user_id == user_id
                && session.ended_at.is_none()
                && only.is_none_or(|id| session.id == id)
                && except.is_none_or(|id| session.id != id)
            {
                session.ended_at = Some(now);
                ended += 1;
            }
        }
        Ok(ended)
    }
}
