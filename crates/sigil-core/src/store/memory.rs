//! An in-memory [`Store`](super::Store) for tests (feature `test-util`). Not durable. It
//! passes the same conformance suite as the databases, so a test on it means what it
//! would mean on them.

mod accounts;
mod activity;
mod backchannel;
mod counters;
mod factors;
mod federation;
mod self_service;
mod third_party;
mod tokens;

use super::{
    AccountLink, AuthorizationCode, BrowserSession, Housekeeping, OutboxMessage, RefreshFamily,
    RefreshTokenRecord, SignInFailures, StoreError,
};
use crate::audit::AuditEntry;
use crate::client::Client;
use crate::user::User;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// How long after its expiry an authorization code is kept, and after its last failure a
/// sign-in count (as the databases' `delete_expired`).
const KEPT_AFTER_EXPIRY: i64 = 86_400;
/// How long a sent (or given-up) message is kept, as the databases do.
const OUTBOX_KEPT: i64 = 7 * 86_400;
/// How long after it was last seen a browser session is kept.
const SESSIONS_KEPT: i64 = 90 * 86_400;
/// How long an unfinished TOTP enrolment is kept.
const UNCONFIRMED_FACTOR_KEPT: i64 = 3600;

#[derive(Default)]
struct Data {
    users: HashMap<String, User>,
    clients: HashMap<String, Client>,
    families: HashMap<String, RefreshFamily>,
    tokens: HashMap<String, RefreshTokenRecord>,
    denied: HashMap<String, i64>,
    codes: HashMap<String, AuthorizationCode>,
    consents: HashMap<(String, String), (String, i64)>,
    audit: Vec<AuditEntry>,
    sign_in_failures: HashMap<String, SignInFailures>,
    links: HashMap<String, AccountLink>,
    /// With each message, the time until which a worker holds it.
    outbox: Vec<(OutboxMessage, i64)>,
    browser_sessions: HashMap<String, BrowserSession>,
    factors: Vec<super::Factor>,
    recovery_codes: Vec<factors::RecoveryCode>,
    providers: HashMap<String, crate::federation::Provider>,
    identities: Vec<crate::federation::FederatedIdentity>,
    /// (sid, client id) → (user id, made at).
    session_clients: HashMap<(String, String), (String, i64)>,
    /// With each delivery, the time until which a worker holds it.
    logouts: Vec<(super::LogoutDelivery, i64)>,
    registration_tokens: Vec<super::RegistrationToken>,
    resources: HashMap<String, super::Resource>,
    pushed_requests: HashMap<String, super::PushedRequest>,
    /// (client id, jti hash) → until when it is kept.
    client_assertions: HashMap<(String, String), i64>,
    /// DPoP proof replay key → until when it is kept.
    dpop_proofs: HashMap<String, i64>,
    /// Activity counts per minute (every client together).
    activity_minutes: counters::Counters,
    /// Activity counts per hour, in total (client `""`) and per client.
    activity_hours: counters::Counters,
}

impl Data {
    /// Removes a client and what hangs on it (the databases' `ON DELETE CASCADE`).
    fn remove_client(&mut self, id: &str) -> bool {
        if self.clients.remove(id).is_none() {
            return false;
        }
        self.families.retain(|_, f| f.client_id != id);
        self.drop_orphan_tokens();
        self.codes.retain(|_, c| c.client_id != id);
        self.consents.retain(|(_, client), _| client != id);
        self.session_clients.retain(|(_, client), _| client != id);
        self.logouts.retain(|(d, _)| d.client_id != id);
        true
    }

    /// Drops the tokens whose family is gone (the databases' `ON DELETE CASCADE`).
    fn drop_orphan_tokens(&mut self) {
        let families = &self.families;
        self.tokens
            .retain(|_, t| families.contains_key(&t.family_id));
    }
}

/// Everything in one mutex: simple, and atomic by construction.
#[derive(Default)]
pub struct MemoryStore(Mutex<Data>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[async_trait]
impl Housekeeping for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut data = self.data();
        let before = data.codes.len()
            + data.families.len()
            + data.tokens.len()
            + data.denied.len()
            + data.sign_in_failures.len()
            + data.links.len()
            + data.outbox.len()
            + data.browser_sessions.len()
            + data.factors.len()
            + data.session_clients.len()
            + data.logouts.len()
            + data.registration_tokens.len()
            + data.pushed_requests.len()
            + data.client_assertions.len()
            + data.dpop_proofs.len();
        data.codes
            .retain(|_, c| c.expires_at > now - KEPT_AFTER_EXPIRY);
        data.families.retain(|_, f| f.expires_at > now);
        data.drop_orphan_tokens();
        data.denied.retain(|_, expires_at| *expires_at > now);
        data.sign_in_failures
            .retain(|_, f| f.last_failure_at > now - KEPT_AFTER_EXPIRY);
        data.links
            .retain(|_, l| l.expires_at > now - KEPT_AFTER_EXPIRY);
        data.outbox.retain(|(m, _)| {
            m.sent_at
                .or(m.given_up_at)
                .is_none_or(|done| done > now - OUTBOX_KEPT)
        });
        data.browser_sessions.retain(|_, s| {
            s.ended_at
                .is_none_or(|ended| ended > now - KEPT_AFTER_EXPIRY)
                && s.last_seen_at > now - SESSIONS_KEPT
        });
        data.factors
            .retain(|f| f.is_confirmed() || f.created_at > now - UNCONFIRMED_FACTOR_KEPT);
        data.session_clients
            .retain(|_, (_, made)| *made > now - SESSIONS_KEPT);
        data.logouts.retain(|(d, _)| {
            d.delivered_at
                .or(d.given_up_at)
                .is_none_or(|done| done > now - OUTBOX_KEPT)
        });
        data.registration_tokens
            .retain(|t| t.expires_at > now - KEPT_AFTER_EXPIRY);
        data.pushed_requests.retain(|_, r| r.expires_at > now);
        data.client_assertions.retain(|_, until| *until > now);
        data.dpop_proofs.retain(|_, until| *until > now);
        let after = data.codes.len()
            + data.families.len()
            + data.tokens.len()
            + data.denied.len()
            + data.sign_in_failures.len()
            + data.links.len()
            + data.outbox.len()
            + data.browser_sessions.len()
            + data.factors.len()
            + data.session_clients.len()
            + data.logouts.len()
            + data.registration_tokens.len()
            + data.pushed_requests.len()
            + data.client_assertions.len()
            + data.dpop_proofs.len();
        Ok((before - after) as u64)
    }
}
