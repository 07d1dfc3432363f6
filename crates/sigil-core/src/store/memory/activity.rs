//! The memory store's audit log and sign-in failure counts.

use super::MemoryStore;
use crate::audit::{chain_entry, AuditEntry, AuditFilter, AuditRecord};
use crate::store::{AuditStore, SignInFailureStore, SignInFailures, StoreError};
use crate::throttle::ThrottlePolicy;
use async_trait::async_trait;

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        let mut data = self.data();
        let previous = data.audit.last().map(|e| (e.seq, e.hash.as_str()));
        let entry = chain_entry(previous, record);
        data.audit.push(entry.clone());
        Ok(entry)
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .data()
            .audit
            .iter()
            .rev()
            .filter(|e| filter.before_seq.is_none_or(|before| e.seq < before))
            .filter(|e| {
                filter
                    .action_prefix
                    .as_ref()
                    .is_none_or(|p| e.record.action.starts_with(p.as_str()))
            })
            .filter(|e| filter.actor.as_ref().is_none_or(|a| &e.record.actor == a))
            .filter(|e| {
                filter
                    .target
                    .as_ref()
                    .is_none_or(|t| e.record.target.as_ref() == Some(t))
            })
            .take(usize::try_from(filter.limit).unwrap_or(0))
            .cloned()
            .collect())
    }

    async fn audit_entries_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .data()
            .audit
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(usize::try_from(limit).unwrap_or(0))
            .cloned()
            .collect())
    }
}

/// Whether a subject with `count` may try at `now`: the condition of the databases'
/// one-statement reservation, term for term (a stale count, fewer than `free` failures, or
/// the wait after the last failure over, to the end of its second).
fn may_try(count: &SignInFailures, free: i64, policy: &ThrottlePolicy, now: i64) -> bool {
    let free = free.max(1);
    let is_stale = count.last_failure_at < now - policy.window;
    if is_stale || count.failures < free {
        return true;
    }
    let doublings = (count.failures - free).min(30) as u32;
    let delay = policy
        .base_delay
        .max(1)
        .saturating_mul(1_i64 << doublings)
        .min(policy.max_delay);
    count.last_failure_at + 1 + delay <= now
}

#[async_trait]
impl SignInFailureStore for MemoryStore {
    async fn find_sign_in_failures(
        &self,
        subjects: &[String],
    ) -> Result<Vec<SignInFailures>, StoreError> {
        let data = self.data();
        let mut found: Vec<SignInFailures> = Vec::new();
        for subject in subjects {
            let is_listed = found.iter().any(|c| &c.subject == subject);
            if let Some(count) = data.sign_in_failures.get(subject).filter(|_| !is_listed) {
                found.push(count.clone());
            }
        }
        Ok(found)
    }

    async fn reserve_sign_in_attempt(
        &self,
        subject: &str,
        free: i64,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<Option<SignInFailures>, StoreError> {
        let mut data = self.data();
        let count = data
            .sign_in_failures
            .entry(subject.to_string())
            .or_insert_with(|| SignInFailures {
                subject: subject.to_string(),
                failures: 0,
                first_failure_at: now,
                last_failure_at: now,
            });
        if !may_try(count, free, policy, now) {
            return Ok(Some(count.clone()));
        }
        if count.last_failure_at < now - policy.window {
            count.failures = 0;
            count.first_failure_at = now;
        }
        count.failures += 1;
        count.last_failure_at = now;
        Ok(None)
    }

    async fn release_sign_in_attempt(&self, subject: &str) -> Result<(), StoreError> {
        if let Some(count) = self.data().sign_in_failures.get_mut(subject) {
            count.failures = (count.failures - 1).max(0);
        }
        Ok(())
    }

    async fn clear_sign_in_failures(&self, subject: &str) -> Result<(), StoreError> {
        self.data().sign_in_failures.remove(subject);
        Ok(())
    }
}
