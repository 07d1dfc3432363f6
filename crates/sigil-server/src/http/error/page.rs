//! The error pages of the browser flow (authorize, login, consent, logout, account, the
//! admin console): what went wrong, logged once, and answered with Sigil's message page
//! (or the form again) under the status that says so.

use super::log_cause;
use crate::http::pages::{self, Page};
use crate::passkeys::PasskeyError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sigil_core::accounts::AccountError;
use sigil_core::admin::AdminError;
use sigil_core::factors::FactorError;
use sigil_core::store::StoreError;
use sigil_core::OAuthError;

const UNAVAILABLE: &str =
    "Sigil cannot reach its database right now. Please try again in a moment.";
const BUSY: &str = "Sigil is busy or cannot reach its database. Please try again in a moment.";

/// Why a browser page could not be answered as asked.
#[derive(Debug)]
pub enum PageError {
    /// The session store failed: the database behind sessions is down (503).
    Session(tower_sessions::session::Error),
    /// A form's CSRF token is missing, old or from elsewhere (403).
    FormExpired,
    /// The pending authorization request is no longer in the session (400).
    SignInExpired,
    /// A client's redirect URI does not parse (400).
    InvalidRedirect,
    /// An authorization request that cannot be trusted with a redirect: unknown client,
    /// unregistered redirect URI (400, the text says which).
    AuthorizationRefused(String),
    /// An authorization request that could not be checked (400, the error's description).
    AuthorizationUnchecked(OAuthError),
    /// A logout request that is not valid or could not be checked (400).
    LogoutRefused(OAuthError),
    /// A sign-in that could not be checked: busy, or the database is down (503).
    SignInUnchecked(OAuthError),
    /// The sign-in form again after a refused attempt: 401, or 429 after too many failed
    /// sign-ins.
    SignInRefused { page: Page, is_throttled: bool },
    /// A form shown again with what is wrong with it (422).
    InvalidForm(Page),
    /// A form shown again because this address (or account) asked too often (429).
    TooManyRequests(Page),
    /// A page that refuses what was asked, and says what to do instead (403).
    Forbidden(Page),
    /// An account action refused: a bad link (400), sign-up closed (403), throttled
    /// (429), busy or a store failure (503).
    Account(AccountError),
    /// The database could not be read; `event` says what for, in the log (503).
    Unavailable {
        event: &'static str,
        error: StoreError,
    },
    /// A user's own password change failed for another reason than the input (503).
    PasswordChangeFailed(AdminError),
    /// Signed in, but without the admin role (403).
    AdminsOnly,
    /// An admin action refused: no such record (404), busy (503), a broken rule (422), a
    /// store failure (503).
    Admin(AdminError),
    /// A second-factor action refused: no such factor (404), a rule it broke (422),
    /// too many wrong codes (429), a secret that does not open (500) or a store failure
    /// (503). Pages that show the form again handle the first kinds themselves.
    Factor(FactorError),
    /// A passkey ceremony that could not go on: passkeys unavailable on this issuer (404),
    /// no ceremony in progress or an expired one, a malformed or refused credential (400),
    /// a stored passkey that does not parse (500). Pages that can show their form again
    /// with the message do so instead.
    Passkey(PasskeyError),
    /// An upstream sign-in, or a link from the account page, that ended here: a page that
    /// says why and links to `back` (sign-in, or the account's providers page).
    Federation {
        failure: FederationFailure,
        back: String,
    },
    /// A template failed to render (500, plain text).
    Template(askama::Error),
    /// A framework extractor's own rejection, passed on as it is.
    Rejected(Box<Response>),
}

/// Why an upstream sign-in did not sign anyone in (see [`PageError::Federation`]).
/// `provider` is the provider's display name.
#[derive(Debug)]
pub enum FederationFailure {
    /// A callback this session did not start, for another provider, or used already (400).
    Forged,
    /// Started more than ten minutes ago (400).
    Expired,
    /// No provider has this id (404).
    NoSuchProvider,
    /// The provider did not answer, or not within the limits (502).
    Unreachable { provider: String },
    /// The provider's answer failed a check, or it refused the code (400).
    Refused { provider: String },
    /// The provider answered with an error (`code`, shown only when it is a plain OAuth
    /// error code) (400).
    Cancelled { provider: String, code: String },
    /// A new identity whose verified address is an existing account's: sign in to that
    /// account to link it (200).
    ProveAccount { provider: String },
    /// No linked account, and the provider does not create accounts (403).
    NoAccount { provider: String },
    /// The linked account is disabled (403).
    Disabled,
    /// A link finished in a session no longer signed in as the account it started for (403).
    SessionChanged,
    /// The identity is linked to an account already (409).
    AlreadyLinked { provider: String },
    /// Unlinking an identity the account does not have (404).
    NotLinked,
    /// The provider's client secret does not open, or another internal failure (500).
    Internal,
    /// The console could not seal a new provider's client secret: nothing was added (500).
    NotStored,
}

impl FederationFailure {
    fn page(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Forged => (
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be completed",
                "This answer does not belong to a sign-in started in this browser, or it was used already. Nothing was signed in or linked. Start signing in again.".into(),
            ),
            Self::Expired => (
                StatusCode::BAD_REQUEST,
                "This sign-in has expired",
                "The sign-in took too long. Nothing was signed in or linked. Start again.".into(),
            ),
            Self::NoSuchProvider => (
                StatusCode::NOT_FOUND,
                "No such sign-in provider",
                "This server has no such sign-in provider, or it was removed.".into(),
            ),
            Self::Unreachable { provider } => (
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                format!("{provider} cannot be reached right now. Try again in a moment, or use another way to sign in."),
            ),
            Self::Refused { provider } => (
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                format!("The answer from {provider} could not be accepted, so you were not signed in and nothing was linked. Try again, or use another way to sign in."),
            ),
            Self::Cancelled { provider, code } if code == "access_denied" => (
                StatusCode::BAD_REQUEST,
                "Sign-in cancelled",
                format!("{provider} did not sign you in: the sign-in was cancelled or refused there. Nothing was linked."),
            ),
            Self::Cancelled { provider, code } => (
                StatusCode::BAD_REQUEST,
                "Sign-in cancelled",
                format!("{provider} did not sign you in (it answered {code}). Nothing was linked. Try again, or use another way to sign in."),
            ),
            Self::ProveAccount { provider } => (
                StatusCode::OK,
                "Sign in to link your account",
                format!("An account here already has the e-mail address your {provider} account uses. To link them, sign in to that account with its own password (and second factor, if it has one). Until then nothing is linked."),
            ),
            Self::NoAccount { provider } => (
                StatusCode::FORBIDDEN,
                "No account",
                format!("No account here is linked to your {provider} account, and new accounts are not made from it. Sign in with your password, then link {provider} on your account page."),
            ),
            Self::Disabled => (
                StatusCode::FORBIDDEN,
                "Account disabled",
                "The account linked to this sign-in is disabled. Ask the person who runs this server.".into(),
            ),
            Self::SessionChanged => (
                StatusCode::FORBIDDEN,
                "Not linked",
                "You are no longer signed in as the account this link was started for. Nothing was linked.".into(),
            ),
            Self::AlreadyLinked { provider } => (
                StatusCode::CONFLICT,
                "Already linked",
                format!("This {provider} account is linked to an account here already (this one or another). Nothing was changed."),
            ),
            Self::NotLinked => (
                StatusCode::NOT_FOUND,
                "Not found",
                "That sign-in is not linked to your account.".into(),
            ),
            Self::NotStored => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "Sigil could not store the provider. Nothing was added; see the server log.".into(),
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed",
                "Sigil could not complete this sign-in. Try again, or use another way to sign in.".into(),
            ),
        }
    }
}

impl From<tower_sessions::session::Error> for PageError {
    fn from(error: tower_sessions::session::Error) -> Self {
        Self::Session(error)
    }
}

impl From<AdminError> for PageError {
    fn from(error: AdminError) -> Self {
        Self::Admin(error)
    }
}

impl From<FactorError> for PageError {
    fn from(error: FactorError) -> Self {
        Self::Factor(error)
    }
}

impl From<PasskeyError> for PageError {
    fn from(error: PasskeyError) -> Self {
        Self::Passkey(error)
    }
}

impl From<askama::Error> for PageError {
    fn from(error: askama::Error) -> Self {
        Self::Template(error)
    }
}

impl PageError {
    /// Logs what the page does not say. Called once per error: by `into_response`, or by
    /// whoever drops the error instead.
    pub fn log(&self) {
        match self {
            PageError::Session(error) => tracing::warn!(error = %error, "session store failure"),
            PageError::AuthorizationUnchecked(error) | PageError::LogoutRefused(error) => {
                log_cause(error)
            }
            PageError::SignInUnchecked(error) => {
                log_cause(error);
                tracing::warn!(error = %error, "sign-in could not be checked");
            }
            PageError::Unavailable { event, error } => tracing::warn!(%error, "{event}"),
            PageError::PasswordChangeFailed(error) => {
                tracing::warn!(%error, "password change failed")
            }
            PageError::Account(AccountError::Store(error)) => {
                tracing::warn!(%error, "account action failed")
            }
            PageError::Admin(
                AdminError::NotFound
                | AdminError::NoSuchSession
                | AdminError::Busy
                | AdminError::Invalid(_),
            ) => {}
            PageError::Admin(error) => tracing::warn!(error = %error, "admin action failed"),
            PageError::Template(error) => {
                tracing::error!(error = %error, "template rendering failed")
            }
            PageError::Factor(error @ FactorError::Sealed(_)) => {
                tracing::error!(%error, "a second factor's secret does not open")
            }
            PageError::Factor(FactorError::Store(error)) => {
                tracing::warn!(%error, "second-factor action failed")
            }
            PageError::Passkey(PasskeyError::Refused(error)) => {
                tracing::info!(%error, "passkey refused")
            }
            PageError::Passkey(error @ PasskeyError::Stored) => {
                tracing::error!(%error, "a stored passkey does not parse")
            }
            _ => {}
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.log();
        let (status, title, text) = match self {
            PageError::Session(_) | PageError::Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                UNAVAILABLE.to_string(),
            ),
            PageError::FormExpired => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was too old or did not come from this site. Go back, reload the page and try again.".to_string(),
            ),
            PageError::SignInExpired => (
                StatusCode::BAD_REQUEST,
                "This sign-in has expired",
                "Go back to the application and start signing in again.".to_string(),
            ),
            PageError::InvalidRedirect => (
                StatusCode::BAD_REQUEST,
                "Invalid redirect",
                "The application's redirect URI is not valid.".to_string(),
            ),
            PageError::AuthorizationRefused(text) => (
                StatusCode::BAD_REQUEST,
                "This sign-in request cannot be completed",
                text,
            ),
            PageError::AuthorizationUnchecked(error) => (
                StatusCode::BAD_REQUEST,
                "This sign-in request cannot be completed",
                error.description,
            ),
            PageError::LogoutRefused(error) => (
                StatusCode::BAD_REQUEST,
                "Sign-out request not valid",
                error.description,
            ),
            PageError::SignInUnchecked(_) | PageError::PasswordChangeFailed(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                BUSY.to_string(),
            ),
            PageError::SignInRefused { page, is_throttled } => {
                let status = if is_throttled {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::UNAUTHORIZED
                };
                return (status, page).into_response();
            }
            PageError::InvalidForm(page) => {
                return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
            }
            PageError::TooManyRequests(page) => {
                return (StatusCode::TOO_MANY_REQUESTS, page).into_response()
            }
            PageError::Forbidden(page) => return (StatusCode::FORBIDDEN, page).into_response(),
            PageError::Account(AccountError::InvalidLink) => (
                StatusCode::BAD_REQUEST,
                "This link is not valid",
                "The link has expired, has been used already, or a newer one replaced it. Nothing was changed. Ask for a new link and use the newest one you get.".to_string(),
            ),
            PageError::Account(AccountError::SignUpClosed) => (
                StatusCode::FORBIDDEN,
                "Sign-up is closed",
                "New accounts on this server are made by an administrator, or with an invitation. Ask the person who runs it.".to_string(),
            ),
            PageError::Account(AccountError::Throttled) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "Too many requests came from your network. Please wait a while before trying again.".to_string(),
            ),
            PageError::Account(AccountError::Changed) => (
                StatusCode::CONFLICT,
                "Changed meanwhile",
                "Your account was changed by something else while this was being done, so nothing was changed now. Go back, reload the page and try again.".to_string(),
            ),
            PageError::Account(AccountError::NotFound) => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such account.".to_string(),
            ),
            PageError::Account(AccountError::Fields(fields)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not possible",
                sigil_core::accounts::field_messages(&fields),
            ),
            PageError::Account(AccountError::WrongPassword) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not possible",
                "The current password is not correct.".to_string(),
            ),
            PageError::Account(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                BUSY.to_string(),
            ),
            PageError::AdminsOnly => (
                StatusCode::FORBIDDEN,
                "Admins only",
                "You are signed in, but your account does not have the admin role.".to_string(),
            ),
            PageError::Admin(AdminError::NotFound) => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such record. It may have been deleted.".to_string(),
            ),
            PageError::Admin(AdminError::NoSuchSession) => (
                StatusCode::NOT_FOUND,
                "No such session",
                "There is no such session, or it has ended already.".to_string(),
            ),
            PageError::Admin(AdminError::Busy) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Sigil is busy. Please try again in a moment.".to_string(),
            ),
            PageError::Admin(AdminError::Invalid(message)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "Not possible", message)
            }
            PageError::Admin(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                UNAVAILABLE.to_string(),
            ),
            PageError::Factor(FactorError::NotFound) => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such second factor. It may have been removed.".to_string(),
            ),
            PageError::Factor(FactorError::Throttled(_)) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many wrong codes. Please wait a while before trying again.".to_string(),
            ),
            PageError::Factor(
                error @ (FactorError::WrongCode
                | FactorError::LastRequiredFactor
                | FactorError::InvalidName(_)),
            ) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not possible",
                capitalized(&error.to_string()),
            ),
            PageError::Factor(FactorError::Sealed(_)) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "This second factor cannot be read with the server's factor key. An admin can reset your second factors.".to_string(),
            ),
            PageError::Factor(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                UNAVAILABLE.to_string(),
            ),
            PageError::Passkey(PasskeyError::Unavailable) => (
                StatusCode::NOT_FOUND,
                "Passkeys are not available here",
                "Passkeys need Sigil to be reached by its host name, not an IP address.".to_string(),
            ),
            PageError::Passkey(PasskeyError::Expired) => (
                StatusCode::BAD_REQUEST,
                "This passkey request has expired",
                "Go back, reload the page and try the passkey again.".to_string(),
            ),
            PageError::Passkey(PasskeyError::Malformed) => (
                StatusCode::BAD_REQUEST,
                "No passkey received",
                "The browser did not send a usable passkey. Go back and try again.".to_string(),
            ),
            PageError::Passkey(PasskeyError::Refused(_)) => (
                StatusCode::BAD_REQUEST,
                "Passkey not accepted",
                "That passkey was not accepted. Go back and try again, or use another way to sign in.".to_string(),
            ),
            PageError::Passkey(PasskeyError::Stored) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "A stored passkey cannot be read. Remove it from your account and add it again.".to_string(),
            ),
            PageError::Federation { failure, back } => {
                let (status, title, message) = failure.page();
                return match pages::federation_message(title, &message, &back) {
                    Ok(page) => (status, page).into_response(),
                    Err(error) => PageError::Template(error).into_response(),
                };
            }
            PageError::Template(_) => {
                let mut response =
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
                pages::set_page_headers(&mut response, &[]);
                return response;
            }
            PageError::Rejected(response) => return *response,
        };
        match pages::message(title, &text, true) {
            Ok(page) => (status, page).into_response(),
            Err(error) => PageError::Template(error).into_response(),
        }
    }
}

/// A core message as a sentence: its first letter in capitals, a full stop at the end.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    let mut sentence = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => String::new(),
    };
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    sentence
}
