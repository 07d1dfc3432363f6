//! Sigil's authorization server: configuration, command line, HTTP handlers, stores,
//! key files. [`app`] builds the router that `sigil serve` runs and tests drive.

pub mod activity;
pub mod backchannel;
pub mod cli;
pub mod client_documents;
pub mod client_keys;
pub mod config;
pub mod connections;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod keyfiles;
pub mod mail;
pub mod metrics;
pub mod outbound;
pub mod passkeys;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod upstream;

pub use http::{app, metrics_app};
pub use state::AppState;
