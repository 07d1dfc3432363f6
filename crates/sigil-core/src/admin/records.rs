//! What the console and the command line read: users, clients, the audit log and its
//! chain check, the overview counts, the longest token lifetime for key pruning; and the
//! first admin account of an empty database.

use super::{Admin, AdminError};
use crate::audit::{verify_chain, AuditEntry, AuditFilter, Caller, ChainBreak};
use crate::client::Client;
use crate::secret::{random_token, Secret};
use crate::store::StoreError;
use crate::user::User;

/// The console's overview counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// Registered clients, counted up to the limit asked for.
    pub clients: usize,
    pub users: i64,
    /// The sequence number of the newest audit entry (0 when the log is empty).
    pub last_audit_seq: i64,
}

/// The outcome of walking the whole audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every entry links to the one before; `last` is the newest entry's number and hash.
    Intact {
        entries: u64,
        last: Option<(i64, String)>,
    },
    /// The chain breaks at `at`; `verified` entries before it were intact.
    Broken { at: ChainBreak, verified: u64 },
}

/// How many entries the chain check reads at a time.
const VERIFY_BATCH: i64 = 1000;

impl Admin {
    pub async fn find_user(&self, user_id: &str) -> Result<Option<User>, AdminError> {
        Ok(self.store.find_user(user_id).await?)
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, AdminError> {
        Ok(self.store.find_user_by_username(username).await?)
    }

    /// Users whose user name, name or email contains `search`, by user name; at most `limit`.
    pub async fn list_users(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<User>, AdminError> {
        Ok(self.store.list_users(search, limit).await?)
    }

    /// A client as stored now (not the engine's cached copy).
    pub async fn find_client(&self, client_id: &str) -> Result<Option<Client>, AdminError> {
        Ok(self.store.find_client(client_id).await?)
    }

    /// Clients whose name or id contains `search`, by name; at most `limit`.
    pub async fn list_clients(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Client>, AdminError> {
        Ok(self.store.list_clients(search, limit).await?)
    }

    /// Audit entries matching the filter, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self.store.list_audit(filter).await?)
    }

    /// Walks the whole audit chain, oldest first, in batches.
    pub async fn verify_audit_log(&self) -> Result<AuditVerdict, AdminError> {
        let mut state: Option<(i64, String)> = None;
        let mut entries = 0u64;
        loop {
            let after = state.as_ref().map(|(seq, _)| *seq).unwrap_or(0);
            let batch = self.store.audit_entries_after(after, VERIFY_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            match verify_chain(&mut state, &batch) {
                Ok(n) => entries += n,
                Err(at) => {
                    return Ok(AuditVerdict::Broken {
                        at,
                        verified: entries,
                    })
                }
            }
        }
        Ok(AuditVerdict::Intact {
            entries,
            last: state,
        })
    }

    /// Counts for the console's overview; clients are counted up to `client_limit`.
    pub async fn overview(&self, client_limit: i64) -> Result<Overview, AdminError> {
        let clients = self.store.list_clients(None, client_limit).await?;
        let users = self.store.count_users().await?;
        let last = self
            .store
            .list_audit(&AuditFilter {
                limit: 1,
                ..Default::default()
            })
            .await?;
        Ok(Overview {
            clients: clients.len(),
            users,
            last_audit_seq: last.first().map(|e| e.seq).unwrap_or(0),
        })
    }

    /// The longest access-token lifetime any client overrides the default with, if any
    /// (a retired signing key must stay published that long).
    pub async fn longest_client_access_token_ttl(&self) -> Result<Option<i64>, AdminError> {
        Ok(self.store.max_client_access_token_ttl().await?)
    }

    /// Up to `limit` audit entries after `after_seq`, oldest first: the pages of an
    /// export, which reads the log in order without holding it all in memory.
    pub async fn audit_entries_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self.store.audit_entries_after(after_seq, limit).await?)
    }

    /// Records that `caller` exported the audit log (`audit.exported`), in `format`.
    pub async fn record_audit_export(&self, caller: &Caller, format: &str, filter: &str) {
        self.audit_log
            .record(
                caller,
                "audit.exported",
                None,
                &format!("the audit log as {format}{filter}"),
            )
            .await
    }

    /// Records a signing-key action (rotation, pruning) done outside the store.
    pub async fn record_key_action(&self, caller: &Caller, action: &str, kid: &str, detail: &str) {
        self.audit_log
            .record(caller, action, Some(kid), detail)
            .await
    }

    /// On an empty user table, creates `admin` (name "Administrator", the admin role) with
    /// `password`, which must be changed at first sign-in when `must_change` is set.
    /// Returns `None`, creating nothing, when a user exists already (or another replica
    /// created the first admin at the same moment).
    pub async fn create_first_admin(
        &self,
        password: Secret,
        must_change: bool,
    ) -> Result<Option<User>, AdminError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        // The first admin's password is either generated or the operator's own
        // SIGIL_ADMIN_PASSWORD, which is not held to the rules for new passwords.
        let password_hash = self.hash(password).await?;
        let now = self.now();
        let admin = User {
            id: random_token(16),
            username: "admin".into(),
            email: None,
            email_verified: false,
            name: Some("Administrator".into()),
            password_hash,
            is_admin: true,
            is_disabled: false,
            must_change_password: must_change,
            requires_second_factor: false,
            session_epoch: 0,
            origin: crate::user::AccountOrigin::Bootstrap,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_user(&admin).await {
            Ok(()) => Ok(Some(admin)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
