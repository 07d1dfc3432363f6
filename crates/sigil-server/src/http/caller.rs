//! Who is calling, as core wants to know it: the peer address of the connection (behind a
//! reverse proxy, the proxy's), taken from hyper's `ConnectInfo`. Core's operations that
//! audit or throttle take a [`Caller`] built from it.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Extensions;
use sigil_core::audit::Caller;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The peer's IP address, when the request came over a connection (not in `oneshot` tests).
pub fn peer_address(extensions: &Extensions) -> Option<String> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

/// An extractor for the peer address of a request that nobody is signed in to.
#[derive(Debug, Clone)]
pub struct PeerAddress(pub Option<String>);

impl PeerAddress {
    /// The caller of a request made by nobody signed in (a client, a sign-in attempt).
    pub fn anonymous(&self) -> Caller {
        Caller::anonymous(self.0.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(PeerAddress(peer_address(&parts.extensions)))
    }
}
