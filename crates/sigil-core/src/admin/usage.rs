//! What the console shows of how accounts are used: a user's last sign-in and failed
//! attempts, the providers linked to them. Read-only. (A client's usage is in
//! [`super::activity`].)

use super::{Admin, AdminError};
use crate::audit::{AuditEntry, AuditFilter};
use crate::throttle::account_subject;
use crate::user::User;

/// How far back the failed sign-ins of a user are counted in the audit log.
pub const FAILURE_WINDOW: i64 = 7 * 86_400;

/// At most this many failed sign-ins are read from the audit log; beyond it the page says
/// "more than".
const FAILURES_READ: i64 = 100;

/// A user's sign-in facts, for their page in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFacts {
    /// The newest successful sign-in the audit log holds, if any.
    pub last_sign_in: Option<LastSignIn>,
    /// The sign-in throttle's current count of failures for the account, and when the
    /// last one was (a success clears it).
    pub failure_count: i64,
    pub last_failure_at: Option<i64>,
    /// Failed sign-ins naming the user in the audit log over the last
    /// [`FAILURE_WINDOW`], counted up to a hundred (`failures_last_week_capped`: more).
    pub failures_last_week: usize,
    pub failures_last_week_capped: bool,
    /// The upstream identities linked to the user, oldest first.
    pub identities: Vec<LinkedIdentity>,
}

/// A successful sign-in: when and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSignIn {
    pub at: i64,
    pub method: SignInMethod,
}

/// How a user signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInMethod {
    /// With a password (and any second factor), through `via` (the sign-in page or the
    /// password grant), as the audit entry says.
    Password { via: Option<String> },
    /// With a passkey alone.
    Passkey,
    /// Through an upstream identity provider; its name, or its id if it was removed.
    Provider { name: String },
}

impl SignInMethod {
    /// In words for the page.
    pub fn describe(&self) -> String {
        match self {
            SignInMethod::Password { via: Some(via) } => format!("password ({via})"),
            SignInMethod::Password { via: None } => "password".into(),
            SignInMethod::Passkey => "passkey".into(),
            SignInMethod::Provider { name } => format!("{name} (identity provider)"),
        }
    }
}

/// An upstream identity linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    pub provider_id: String,
    /// `None` when the provider has been removed since.
    pub provider_name: Option<String>,
    pub email: Option<String>,
    pub linked_at: i64,
    pub last_used_at: Option<i64>,
}

impl Admin {
    /// The user's last sign-in, failed attempts and linked providers.
    pub async fn sign_in_facts(&self, user: &User) -> Result<SignInFacts, AdminError> {
        let newest = |action: &str, actor: Option<&str>, target: Option<&str>| AuditFilter {
            action_prefix: Some(action.to_string()),
            actor: actor.map(str::to_string),
            target: target.map(str::to_string),
            before_seq: None,
            limit: 1,
        };
        // A password or passkey sign-in names the user as its target; one through a
        // provider names the provider, with the user acting.
        let local = self
            .store
            .list_audit(&newest("sign_in.success", None, Some(&user.username)))
            .await?;
        let upstream = self
            .store
            .list_audit(&newest("federation.sign_in", Some(&user.username), None))
            .await?;
        let newest_entry = local
            .into_iter()
            .chain(upstream)
            .filter(|e| e.record.actor_id.as_deref().is_none_or(|id| id == user.id))
            .max_by_key(|e| e.seq);
        let last_sign_in = match newest_entry {
            Some(entry) => Some(self.last_sign_in(entry).await?),
            None => None,
        };

        let counts = self
            .store
            .find_sign_in_failures(&[account_subject(&user.username)])
            .await?;
        let count = counts.first();

        let failures = self
            .store
            .list_audit(&AuditFilter {
                action_prefix: Some("sign_in.failure".into()),
                target: Some(user.username.clone()),
                limit: FAILURES_READ + 1,
                ..Default::default()
            })
            .await?;
        let since = self.now() - FAILURE_WINDOW;
        let recent = failures.iter().filter(|e| e.record.at >= since).count();

        let providers = self.store.list_providers().await?;
        let identities = self
            .store
            .list_identities(&user.id)
            .await?
            .into_iter()
            .map(|identity| LinkedIdentity {
                provider_name: providers
                    .iter()
                    .find(|p| p.id == identity.provider_id || p.issuer == identity.issuer)
                    .map(|p| p.name.clone()),
                provider_id: identity.provider_id,
                email: identity.email,
                linked_at: identity.created_at,
                last_used_at: identity.last_used_at,
            })
            .collect();

        Ok(SignInFacts {
            last_sign_in,
            failure_count: count.map(|c| c.failures).unwrap_or(0),
            last_failure_at: count.map(|c| c.last_failure_at),
            failures_last_week: recent.min(FAILURES_READ as usize),
            failures_last_week_capped: recent > FAILURES_READ as usize,
            identities,
        })
    }

    /// How an audited sign-in happened, from its entry.
    async fn last_sign_in(&self, entry: AuditEntry) -> Result<LastSignIn, AdminError> {
        let record = entry.record;
        let method = if record.action == "federation.sign_in" {
            let provider_id = record.target.unwrap_or_default();
            let name = self
                .store
                .find_provider(&provider_id)
                .await?
                .map(|p| p.name)
                .unwrap_or(provider_id);
            SignInMethod::Provider { name }
        } else if record.detail.contains("passkey") {
            SignInMethod::Passkey
        } else {
            SignInMethod::Password {
                via: record
                    .detail
                    .split_once("via ")
                    .map(|(_, via)| via.to_string()),
            }
        };
        Ok(LastSignIn {
            at: record.at,
            method,
        })
    }
}
