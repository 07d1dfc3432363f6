//! Errors that stop a command (start-up, CLI): each prints as one clear line.

use crate::keyfiles::KeyDirError;
use sigil_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("database: {0}")]
    Database(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyDirError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
