//! Client ID metadata documents as the server gets them: core's
//! [`ClientDocuments`] over the hardened outbound fetcher ([`crate::outbound`]) and its
//! document cache. A `client_id` URL is checked against core's URL rules, fetched under the
//! fetcher's limits (at most [`MAX_DOCUMENT_BYTES`], JSON, no redirects, no special-use
//! address), read into a client by core, and kept for its `max-age` between 5 minutes and
//! a day; a failure is kept 30 seconds, so a flood for a broken URL costs one fetch. The
//! scopes a document client may have are those of `--self-registered-scopes` and of the
//! registered resources open to self-registered clients, as they were at the fetch.
//!
//! Failures are logged once per fetch (by the cache), not audited: anybody can name any
//! URL, and the audit log is for what people with accounts did.

use crate::outbound::cache::{parse_json, CachePolicy, DocumentCache};
use crate::outbound::{FetchRules, Outbound, OutboundSettings};
use async_trait::async_trait;
use clap::Args;
use sigil_core::cimd::{
    check_client_id_url, client_from_document, ClientDocuments, ClientMetadataDocument,
    DocumentPolicy, MAX_DOCUMENT_BYTES,
};
use sigil_core::client::Client;
use sigil_core::clock::Clock;
use sigil_core::store::Store;
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
    /// The server's rules; its scopes are `--self-registered-scopes`, to which the
    /// resources' are added at each fetch.
    policy: DocumentPolicy,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl MetadataDocuments {
    /// With the production cache lifetimes ([`CachePolicy::default`]).
    /// `store` is read for the resources open to self-registered clients.
    pub fn new(
        policy: DocumentPolicy,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        Self::with_cache_policy(policy, CachePolicy::default(), store, clock)
    }

    pub fn with_cache_policy(
        policy: DocumentPolicy,
        cache_policy: CachePolicy,
        store: Arc<dyn Store>,
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
            store,
            clock,
        })
    }

    /// The server's rules with the scopes of the resources open to self-registered
    /// clients added.
    async fn current_policy(&self) -> Result<DocumentPolicy, String> {
        let resources = self.store.list_resources().await.map_err(|error| {
            tracing::warn!(%error, "could not read the resources for a client ID metadata document");
            "the server could not check the document now; try again shortly".to_string()
        })?;
        let mut policy = self.policy.clone();
        for resource in resources.into_iter().filter(|r| r.self_registered_clients) {
            for scope in resource.scopes {
                if !policy.scopes.contains(&scope) {
                    policy.scopes.push(scope);
                }
            }
        }
        Ok(policy)
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
            .get_with(client_id, |body| async move {
                let document = parse_json::<ClientMetadataDocument>(&body)?;
                let policy = self.current_policy().await?;
                client_from_document(client_id, document, &policy, now)
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
