//! Sigil's protocol rules: typed requests in, outcomes out. No HTTP, no SQL, no sockets.
//!
//! The server crate parses HTTP into the types here, calls [`Authority`], and maps the
//! outcome to a response. Storage is reached only through the [`store::Store`] trait.

pub mod accounts;
pub mod activity;
pub mod admin;
pub mod audit;
pub mod authority;
pub mod authorize;
#[cfg(test)]
mod authorize_oidc_tests;
#[cfg(test)]
mod authorize_tests;
pub mod backchannel;
pub mod cimd;
#[cfg(test)]
mod cimd_tests;
pub mod client;
pub mod client_assertion;
#[cfg(test)]
mod client_assertion_tests;
pub mod client_keys;
pub mod clock;
pub mod cpu;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod factors;
pub mod federation;
pub mod grant;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod mail;
pub mod origin;
pub mod par;
#[cfg(test)]
mod par_tests;
pub mod password;
pub mod password_rules;
pub mod pkce;
pub mod registration;
pub mod resource;
pub mod revocation;
pub mod scope;
pub mod secret;
mod sign_in;
pub mod store;
pub mod throttle;
pub mod token;
pub mod user;
pub mod userinfo;

pub use authority::{Authority, AuthorityConfig};
pub use error::{Cause, ErrorCode, OAuthError};
