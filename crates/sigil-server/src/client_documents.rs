//! Client ID metadata documents as the server gets them: core's
//! [`ClientDocuments`] over the hardened outbound fetcher ([`crate::outbound`]) and its
//! document cache. A `client_id` URL is checked against core's URL rules, fetched under the
//! fetcher's limits (at most [`MAX_DOCUMENT_BYTES`], JSON, no redirects, no special-use
//! address), read into a client by core, and kept for its `max-age` between 5 minutes and
//! a day; a failure is kept 30 seconds, so a flood for a broken URL costs one fetch.
//!
//! Failures are logged once per fetch (by the cache), not audited: anybody can name any
//! URL, and the audit log is for what people with accounts did.

use crate::outbound::cache::{CachePolicy, DocumentCache};
use crate::outbound::{FetchRules, Outbound, OutboundSettings};
use async_trait::async_trait;
use clap::Args;
use sigil_core::cimd::{
    check_client_id_url, client_from_document, ClientDocuments, ClientMetadataDocument,
    DocumentPolicy, MAX_DOCUMENT_BYTES,
};
use sigil_core::client::Client;
use sigil_core::clock::Clock;
use sigil_core::OAuthError;
use std::sync::Arc;

/// `sigil serve` options of client ID metadata documents.
#[derive(Debug, Clone, Args)]
pub struct ClientDocumentArgs {
    /// Also accept client ID metadata documents at http://127.0.0.1:PORT/… or
    /// http://[::1]:PORT/…, and on hosts that resolve to a loopback address. For tests and
    /// development only: it lets whoever starts a sign-in make this server call services
    /// on its own loopback interface.
    #[arg(long, env = "SIGIL_CIMD_ALLOW_LOOPBACK")]
    pub cimd_allow_loopback: bool,
}

/// What a document fetch accepts.
const DOCUMENT_RULES: FetchRules = FetchRules {
    max_bytes: MAX_DOCUMENT_BYTES,
    require_json: true,
};

/// The documents of URL client ids, fetched and remembered.
pub struct MetadataDocuments {
    cache: DocumentCache<Client>,
    policy: DocumentPolicy,
    clock: Arc<dyn Clock>,
}

impl MetadataDocuments {
    /// With the production cache lifetimes ([`CachePolicy::default`]).
    pub fn new(policy: DocumentPolicy, clock: Arc<dyn Clock>) -> Result<Self, String> {
        Self::with_cache_policy(policy, CachePolicy::default(), clock)
    }

    pub fn with_cache_policy(
        policy: DocumentPolicy,
        cache_policy: CachePolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let outbound = Outbound::new(OutboundSettings {
            allow_loopback: policy.allow_loopback,
            ..OutboundSettings::default()
        })?;
        Ok(Self {
            cache: DocumentCache::new(
                Arc::new(outbound),
                DOCUMENT_RULES,
                cache_policy,
                clock.clone(),
            ),
            policy,
            clock,
        })
    }
}

#[async_trait]
impl ClientDocuments for MetadataDocuments {
    async fn fetch(&self, client_id: &str) -> Result<Arc<Client>, OAuthError> {
        check_client_id_url(client_id, self.policy.allow_loopback).map_err(|reason| {
            OAuthError::invalid_client(format!(
                "the client_id is not a valid client ID metadata document URL: {reason}"
            ))
        })?;
        let now = self.clock.now();
        self.cache
            .get_json::<ClientMetadataDocument>(client_id, |document| {
                client_from_document(client_id, document, &self.policy, now)
                    .map_err(|error| error.to_string())
            })
            .await
            .map_err(|error| {
                OAuthError::invalid_client(format!(
                    "the client ID metadata document cannot be used: {error}"
                ))
            })
    }
}
