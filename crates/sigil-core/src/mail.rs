//! The messages Sigil sends, as core decides them. Core says who gets what; the server
//! renders it (askama templates in `templates/mail/`), seals it into the durable outbox and
//! delivers it (SMTP, or `.eml` files without SMTP). A [`Link`] holds a token: it is never
//! logged, and never stored in clear.

use crate::store::StoreError;
use async_trait::async_trait;

/// An absolute URL that carries a link token. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Link(String);

impl Link {
    pub fn new(url: String) -> Self {
        Self(url)
    }

    /// The URL, for the message body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link(…)")
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailKind {
    /// A new account's address: confirm it with the link (valid `hours`).
    VerifyEmail {
        username: String,
        link: Link,
        hours: i64,
    },
    /// An invitation to sign up, valid `days`.
    Invitation { link: Link, days: i64 },
    /// A forgotten password: set a new one with the link (valid `minutes`).
    PasswordReset {
        username: String,
        link: Link,
        minutes: i64,
    },
    /// The password was changed or reset: if it was not you, act.
    PasswordChanged { username: String, by_reset: bool },
    /// A new address for an account: confirm it with the link (valid `hours`).
    ConfirmNewEmail {
        username: String,
        link: Link,
        hours: i64,
    },
    /// Sent to the old address when the account's address was changed.
    EmailChanged { username: String, new_email: String },
    /// Someone tried to sign up with an address that has an account already: sent to that
    /// address instead of telling the person at the form (no enumeration). `login` and
    /// `reset` are the sign-in and forgot-password pages.
    AccountExists {
        username: String,
        login: String,
        reset: String,
    },
    /// A second factor was added (`what`: "an authenticator app named …").
    SecondFactorAdded { username: String, what: String },
    /// A second factor was removed.
    SecondFactorRemoved { username: String, what: String },
    /// A recovery code was used to sign in; `left` remain.
    RecoveryCodeUsed { username: String, left: i64 },
    /// An admin removed every second factor of the account.
    SecondFactorsReset { username: String },
}

impl MailKind {
    /// A short name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::VerifyEmail { .. } => "verify_email",
            Self::Invitation { .. } => "invitation",
            Self::PasswordReset { .. } => "password_reset",
            Self::PasswordChanged { .. } => "password_changed",
            Self::ConfirmNewEmail { .. } => "confirm_new_email",
            Self::EmailChanged { .. } => "email_changed",
            Self::AccountExists { .. } => "account_exists",
            Self::SecondFactorAdded { .. } => "second_factor_added",
            Self::SecondFactorRemoved { .. } => "second_factor_removed",
            Self::RecoveryCodeUsed { .. } => "recovery_code_used",
            Self::SecondFactorsReset { .. } => "second_factors_reset",
        }
    }
}

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub kind: MailKind,
}

/// Where core hands messages over. `queue` returns once the message is stored durably
/// (so a crash or an SMTP outage loses none); delivery happens later, in the background.
#[async_trait]
pub trait MailQueue: Send + Sync {
    async fn queue(&self, mail: Mail) -> Result<(), StoreError>;
}
