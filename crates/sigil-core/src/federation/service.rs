//! The federation service: providers added and removed (audited, the client secret
//! sealed), and what an upstream sign-in comes to: the linked user, a new one, or "prove
//! the account with this address first".

use super::{FederatedIdentity, NewProvider, Provider};
use crate::audit::{AuditLog, Caller};
use crate::authority::Authority;
use crate::clock::Clock;
use crate::factors::FactorKey;
use crate::secret::{random_token, Secret};
use crate::store::{Store, StoreError};
use crate::user::{
    has_invisible_controls, normalize_email, validate_email, validate_username, AccountOrigin, User,
};
use std::sync::Arc;

/// Who the provider says signed in, after its answer was checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamIdentity {
    /// The provider's issuer (for a plain OAuth 2.0 provider, its configured one).
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// The provider said the address is verified.
    pub email_verified: bool,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

/// What an upstream sign-in comes to.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The identity is linked to this user: sign them in.
    Linked(User),
    /// A new account was made for the identity (the provider creates users).
    Created(User),
    /// The identity is new, and its verified address is this account's: the identity is
    /// linked only once the person signs in to the account itself.
    ProveAccount(User),
    /// The identity is linked to nobody, and the provider does not create accounts.
    NoAccount,
    /// The linked account is disabled.
    Disabled,
}

/// Why a federation action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The input breaks a rule; in words for a form.
    #[error("{0}")]
    Invalid(String),
    #[error("no such provider")]
    NotFound,
    /// The identity is linked to an account already (this one or another).
    #[error("this identity is linked to an account already")]
    AlreadyLinked,
    /// It is the account's last way in (no password, no other identity).
    #[error("this is the account's last way to sign in")]
    LastWayIn,
    /// The sealed client secret does not open (a keys directory not shared by replicas).
    #[error("the provider's client secret does not open: {0}")]
    Sealed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The federation service. Cheap to share behind an `Arc`.
pub struct Federation {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit_log: AuditLog,
    key: Arc<FactorKey>,
}

/// The associated data a provider's client secret is sealed with.
fn seal_context(provider_id: &str) -> String {
    format!("identity provider {provider_id}")
}

impl Federation {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, key: Arc<FactorKey>) -> Self {
        Self {
            audit_log: AuditLog::new(store.clone(), clock.clone()),
            store,
            clock,
            key,
        }
    }

    /// The service of a serving process: the engine's store, clock and audit log.
    /// The activity counters this service counts its sign-ins into.
    pub fn activity(&self) -> &Arc<crate::activity::Activity> {
        self.audit_log.activity()
    }

    pub fn for_authority(authority: &Authority, key: Arc<FactorKey>) -> Self {
        Self {
            store: authority.store.clone(),
            clock: authority.clock.clone(),
            audit_log: authority.audit_log.clone(),
            key,
        }
    }

    pub async fn providers(&self) -> Result<Vec<Provider>, FederationError> {
        Ok(self.store.list_providers().await?)
    }

    pub async fn provider(&self, id: &str) -> Result<Option<Provider>, FederationError> {
        if super::validate_provider_id(id).is_err() {
            return Ok(None);
        }
        Ok(self.store.find_provider(id).await?)
    }

    /// Adds a provider, its client secret sealed. A taken id is refused.
    pub async fn add_provider(
        &self,
        caller: &Caller,
        new: NewProvider,
        client_secret: &Secret,
    ) -> Result<Provider, FederationError> {
        if client_secret.expose().is_empty() || client_secret.expose().len() > 4096 {
            return Err(FederationError::Invalid(
                "the client secret is 1 to 4096 characters".into(),
            ));
        }
        super::validate_provider_id(&new.id).map_err(|e| FederationError::Invalid(e.into()))?;
        let sealed = self
            .key
            .seal(client_secret.expose().as_bytes(), &seal_context(&new.id))
            .map_err(|e| FederationError::Sealed(e.to_string()))?;
        let provider = new
            .into_provider(sealed, self.clock.now())
            .map_err(FederationError::Invalid)?;
        match self.store.create_provider(&provider).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(FederationError::Invalid(format!(
                    "there is a provider with the id {:?} already",
                    provider.id
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.audit_log
            .record(
                caller,
                "provider.added",
                Some(&provider.id),
                format!(
                    "{} provider {:?}, issuer {}{}{}",
                    provider.kind.as_str(),
                    provider.name,
                    provider.issuer,
                    if provider.create_users {
                        ", creates users"
                    } else {
                        ""
                    },
                    if provider.trust_email {
                        ", trusts its verified addresses"
                    } else {
                        ""
                    }
                ),
            )
            .await;
        Ok(provider)
    }

    /// Removes a provider. The identities linked through it stay (a provider added again
    /// with the same issuer signs them in again), but nobody signs in through it meanwhile.
    pub async fn remove_provider(&self, caller: &Caller, id: &str) -> Result<(), FederationError> {
        if super::validate_provider_id(id).is_err() || !self.store.delete_provider(id).await? {
            return Err(FederationError::NotFound);
        }
        self.audit_log
            .record(caller, "provider.removed", Some(id), "")
            .await;
        Ok(())
    }

    /// Records an upstream sign-in that failed after it started here (the provider's
    /// error, an answer that failed its checks). `reason` holds no secret.
    pub async fn record_refusal(&self, caller: &Caller, provider: &Provider, reason: &str) {
        let reason: String = reason.chars().take(300).collect();
        self.audit_log.count(provider_sign_in(false));
        self.audit_log
            .record(caller, "federation.refused", Some(&provider.id), reason)
            .await;
    }

    /// The provider's client secret, opened.
    pub fn client_secret(&self, provider: &Provider) -> Result<Secret, FederationError> {
        let bytes = self
            .key
            .open(&provider.sealed_client_secret, &seal_context(&provider.id))
            .map_err(|e| FederationError::Sealed(e.to_string()))?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| FederationError::Sealed("not text".into()))
    }

    /// The identities linked to a user, oldest first.
    pub async fn identities(
        &self,
        user_id: &str,
    ) -> Result<Vec<FederatedIdentity>, FederationError> {
        Ok(self.store.list_identities(user_id).await?)
    }

    /// What an upstream sign-in through `provider` comes to (see [`Resolution`]). A new
    /// account is made here when the provider creates users; a linked one has its use noted.
    pub async fn resolve(
        &self,
        caller: &Caller,
        provider: &Provider,
        upstream: &UpstreamIdentity,
    ) -> Result<Resolution, FederationError> {
        let now = self.clock.now();
        if let Some(identity) = self
            .store
            .find_identity(&upstream.issuer, &upstream.subject)
            .await?
        {
            let user = self.store.find_user(&identity.user_id).await?;
            return match user {
                Some(user) if !user.is_disabled => {
                    self.store
                        .touch_identity(&upstream.issuer, &upstream.subject, now)
                        .await?;
                    self.audit_log.count(provider_sign_in(true));
                    self.audit_log
                        .record(
                            &as_user(caller, &user),
                            "federation.sign_in",
                            Some(&provider.id),
                            format!("as {}", user.username),
                        )
                        .await;
                    Ok(Resolution::Linked(user))
                }
                _ => {
                    self.audit_log.count(provider_sign_in(false));
                    self.audit_log
                        .record(
                            caller,
                            "federation.refused",
                            Some(&provider.id),
                            "the linked account is disabled",
                        )
                        .await;
                    Ok(Resolution::Disabled)
                }
            };
        }
        let verified_email = upstream.email.as_deref().map(normalize_email).filter(|e| {
            upstream.email_verified && provider.trust_email && validate_email(e).is_ok()
        });
        if let Some(email) = &verified_email {
            if let Some(user) = self.store.find_user_by_email(email).await? {
                self.audit_log
                    .record(
                        caller,
                        "federation.link_pending",
                        Some(&provider.id),
                        format!(
                            "a new identity's verified address is {}'s: linked once the account is proven",
                            user.username
                        ),
                    )
                    .await;
                return Ok(Resolution::ProveAccount(user));
            }
        }
        if !provider.create_users {
            self.audit_log.count(provider_sign_in(false));
            self.audit_log
                .record(
                    caller,
                    "federation.refused",
                    Some(&provider.id),
                    "no account is linked to this identity, and the provider does not create accounts",
                )
                .await;
            return Ok(Resolution::NoAccount);
        }
        let user = self
            .create_user(provider, upstream, verified_email, now)
            .await?;
        let Some(user) = user else {
            // Another sign-in of the same identity linked it first: sign in as that one.
            return Box::pin(self.resolve(caller, provider, upstream)).await;
        };
        self.audit_log.count(provider_sign_in(true));
        self.audit_log
            .record(
                &as_user(caller, &user),
                "federation.user_created",
                Some(&provider.id),
                format!("account {} made at its first sign-in", user.username),
            )
            .await;
        Ok(Resolution::Created(user))
    }

    /// Makes an account for a new identity with it linked, in one write. `None` when the
    /// identity got linked meanwhile (two first sign-ins at once).
    async fn create_user(
        &self,
        provider: &Provider,
        upstream: &UpstreamIdentity,
        verified_email: Option<String>,
        now: i64,
    ) -> Result<Option<User>, FederationError> {
        // Only an address the provider vouches for (and is trusted to) goes on the account.
        // An unverified one would hold the address for whoever typed it upstream: its
        // real owner, later sent to prove "their" account and resetting its password by
        // mail, would take over an account the upstream identity still signs in to.
        let mut email = verified_email;
        let name = upstream
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.chars().count() <= 200 && !has_invisible_controls(n))
            .map(str::to_string);
        let base = username_base(upstream);
        for attempt in 0..8 {
            let username = match attempt {
                0 => base.clone(),
                1..=3 => format!("{base}-{}", attempt + 1),
                _ => format!("{base}-{}", &random_token(4)[..6].to_lowercase()),
            };
            if validate_username(&username).is_err() {
                continue;
            }
            let user = User {
                id: random_token(16),
                username,
                email: email.clone(),
                email_verified: email.is_some(),
                name: name.clone(),
                // No password: the account signs in through the provider (and may set a
                // password by the reset mail once it has an address).
                password_hash: String::new(),
                is_admin: false,
                is_disabled: false,
                must_change_password: false,
                requires_second_factor: false,
                session_epoch: 0,
                origin: AccountOrigin::Federated,
                version: 0,
                created_at: now,
                updated_at: now,
            };
            let identity = FederatedIdentity {
                issuer: upstream.issuer.clone(),
                subject: upstream.subject.clone(),
                user_id: user.id.clone(),
                provider_id: provider.id.clone(),
                email: upstream.email.clone(),
                created_at: now,
                last_used_at: Some(now),
            };
            match self.store.create_user_with_identity(&user, &identity).await {
                Ok(()) => return Ok(Some(user)),
                Err(StoreError::Conflict(what)) if what.contains("federated_identities") => {
                    return Ok(None)
                }
                Err(StoreError::Conflict(what)) if what.contains("email_key") => {
                    // Taken meanwhile: the account goes without it.
                    email = None;
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(FederationError::Invalid(
            "no free user name could be found for the new account".into(),
        ))
    }

    /// Links an upstream identity to `user` (signed in, and proven: with its password, or
    /// from the account page). Refused when the identity is linked already.
    pub async fn link(
        &self,
        caller: &Caller,
        user: &User,
        provider: &Provider,
        upstream: &UpstreamIdentity,
    ) -> Result<(), FederationError> {
        let now = self.clock.now();
        let identity = FederatedIdentity {
            issuer: upstream.issuer.clone(),
            subject: upstream.subject.clone(),
            user_id: user.id.clone(),
            provider_id: provider.id.clone(),
            email: upstream.email.clone(),
            created_at: now,
            last_used_at: Some(now),
        };
        match self.store.create_identity(&identity).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(FederationError::AlreadyLinked),
            Err(e) => return Err(e.into()),
        }
        self.audit_log
            .record(
                caller,
                "federation.linked",
                Some(&provider.id),
                format!("linked to {}", user.username),
            )
            .await;
        Ok(())
    }

    /// Unlinks one of `user`'s identities, unless it is their last way in (no password
    /// and no other identity), decided atomically.
    pub async fn unlink(
        &self,
        caller: &Caller,
        user: &User,
        issuer: &str,
        subject: &str,
    ) -> Result<(), FederationError> {
        let Some(identity) = self
            .store
            .find_identity(issuer, subject)
            .await?
            .filter(|i| i.user_id == user.id)
        else {
            return Err(FederationError::NotFound);
        };
        if !self
            .store
            .delete_identity(&user.id, issuer, subject, true)
            .await?
        {
            return Err(FederationError::LastWayIn);
        }
        self.audit_log
            .record(
                caller,
                "federation.unlinked",
                Some(&identity.provider_id),
                format!("unlinked from {}", user.username),
            )
            .await;
        Ok(())
    }
}

/// The same address, acting as the user who signed in.
fn as_user(caller: &Caller, user: &User) -> Caller {
    caller.acting_as(crate::audit::Actor::User {
        id: user.id.clone(),
        name: user.username.clone(),
    })
}

/// A user name for a new account: the provider's preferred one, else the address's local
/// part, else the name, kept to the characters user names allow; `user` when none is left.
fn username_base(upstream: &UpstreamIdentity) -> String {
    let candidates = [
        upstream.preferred_username.clone(),
        upstream
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(local, _)| local.to_string()),
        upstream.name.clone(),
    ];
    for candidate in candidates.into_iter().flatten() {
        let cleaned: String = crate::user::normalize_username(&candidate)
            .chars()
            .map(|c| if c == ' ' { '.' } else { c })
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
            .take(48)
            .collect();
        let cleaned = cleaned.trim_matches('.').to_string();
        if !cleaned.is_empty() && validate_username(&cleaned).is_ok() {
            return cleaned;
        }
    }
    "user".into()
}

/// A sign-in through an upstream provider, for the activity counters.
fn provider_sign_in(ok: bool) -> crate::activity::Event<'static> {
    crate::activity::Event::SignIn {
        method: crate::activity::SignInMethod::Provider,
        ok,
    }
}
