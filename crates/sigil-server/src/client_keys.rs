//! `ClientKeyFetcher`: the keys `private_key_jwt` clients publish at their `jwks_uri`,
//! fetched for core (its [`ClientKeySource`]) through the hardened outbound fetcher
//! ([`crate::outbound`]: https only, special-use addresses refused, no redirects, 2 s to
//! connect and 5 s in all, the body cut at 64 KiB, JSON only).
//!
//! Each URL's set is parsed once and kept for the server's `Cache-Control: max-age`,
//! clamped between [`KEYS_FLOOR`] and [`KEYS_CEILING`]. One fetch per URL at a time:
//! requests that need the same set wait for the fetch under way (single-flight). An
//! assertion whose `kid` the set in hand lacks makes core ask for a fresh copy; that
//! refetch happens at most once per [`REFETCH_COOL_DOWN`] per URL, whatever the number of
//! unknown `kid`s sent. A failed fetch is remembered for [`FAILURE_TTL`]; a failed refetch
//! keeps the set in hand.

use crate::outbound::cache::CachePolicy;
use crate::outbound::{FetchError, FetchRules, Outbound};
use sigil_core::client_keys::{
    ClientKeySet, ClientKeySource, KeySourceError, MAX_FETCHED_JWKS_BYTES,
};
use sigil_core::clock::Clock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shortest time a fetched key set is kept (seconds), whatever its headers say.
pub const KEYS_FLOOR: i64 = 5 * 60;
/// Longest time a fetched key set is kept (seconds): a key the client removed stops
/// working within this time even if it is never asked for by an unknown `kid`.
pub const KEYS_CEILING: i64 = 3600;
/// Least time between two refetches caused by unknown `kid`s, per URL (seconds).
pub const REFETCH_COOL_DOWN: i64 = 30;
/// How long a failed fetch is remembered before the URL is tried again (seconds).
pub const FAILURE_TTL: i64 = 10;
/// Most URLs remembered at once; beyond it the memory starts over.
const MAX_URLS: usize = 1000;

/// What is known of one URL.
#[derive(Default)]
struct Entry {
    keys: Option<Arc<ClientKeySet>>,
    expires_at: i64,
    /// When an unknown `kid` last made this URL be fetched again.
    refetched_at: Option<i64>,
    /// The last failure, and until when it is answered without a new fetch.
    failure: Option<(KeySourceError, i64)>,
}

/// The server's [`ClientKeySource`].
pub struct ClientKeyFetcher {
    outbound: Arc<Outbound>,
    clock: Arc<dyn Clock>,
    policy: CachePolicy,
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
    fetches: AtomicU64,
}

impl ClientKeyFetcher {
    pub fn new(outbound: Arc<Outbound>, clock: Arc<dyn Clock>) -> Self {
        Self {
            outbound,
            clock,
            policy: CachePolicy {
                floor: KEYS_FLOOR,
                ceiling: KEYS_CEILING,
                failure_ttl: FAILURE_TTL,
                max_entries: MAX_URLS,
            },
            entries: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Fetches made since start (successful or not).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn entry(&self, uri: &str) -> Arc<tokio::sync::Mutex<Entry>> {
        let Ok(mut entries) = self.entries.lock() else {
            // A poisoned lock (a panic elsewhere): serve without remembering.
            return Arc::default();
        };
        if let Some(entry) = entries.get(uri) {
            return entry.clone();
        }
        if entries.len() >= MAX_URLS {
            entries.clear();
        }
        let entry: Arc<tokio::sync::Mutex<Entry>> = Arc::default();
        entries.insert(uri.to_string(), entry.clone());
        entry
    }

    /// One fetch of `uri`: the parsed set and how long it may be kept, or the failure
    /// and how long to remember it (not at all when only too many fetches were under way,
    /// which says nothing about this URL).
    async fn fetch(&self, uri: &str) -> Result<(Arc<ClientKeySet>, i64), (KeySourceError, i64)> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let rules = FetchRules {
            max_bytes: MAX_FETCHED_JWKS_BYTES,
            require_json: true,
        };
        let fetched = self.outbound.fetch(uri, rules).await.map_err(|error| {
            tracing::info!(%error, "a client's jwks_uri could not be fetched");
            let kept = if error == FetchError::Busy {
                0
            } else {
                self.policy.failure_ttl
            };
            (KeySourceError(error.to_string()), kept)
        })?;
        let keys = ClientKeySet::parse(&fetched.body).map_err(|why| {
            tracing::info!(why, "a client's jwks_uri holds no usable keys");
            (KeySourceError(why.to_string()), self.policy.failure_ttl)
        })?;
        Ok((Arc::new(keys), self.policy.lifetime(fetched.freshness)))
    }
}

#[async_trait::async_trait]
impl ClientKeySource for ClientKeyFetcher {
    async fn keys_at(
        &self,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<Arc<ClientKeySet>, KeySourceError> {
        let entry = self.entry(jwks_uri);
        // Held across the fetch: whoever needs this URL meanwhile waits for its outcome.
        let mut entry = entry.lock().await;
        let now = self.clock.now();
        let fresh = entry.keys.clone().filter(|_| now < entry.expires_at);
        if let Some(keys) = fresh {
            let cooling_down = entry
                .refetched_at
                .is_some_and(|at| now - at < REFETCH_COOL_DOWN);
            if !refresh || cooling_down {
                return Ok(keys);
            }
            entry.refetched_at = Some(now);
            return match self.fetch(jwks_uri).await {
                Ok((keys, lifetime)) => {
                    entry.keys = Some(keys.clone());
                    entry.expires_at = now.saturating_add(lifetime);
                    entry.failure = None;
                    Ok(keys)
                }
                // The set in hand stays good until it expires.
                Err(_) => Ok(keys),
            };
        }
        if let Some((error, until)) = &entry.failure {
            if now < *until {
                return Err(error.clone());
            }
        }
        if refresh {
            entry.refetched_at = Some(now);
        }
        match self.fetch(jwks_uri).await {
            Ok((keys, lifetime)) => {
                entry.keys = Some(keys.clone());
                entry.expires_at = now.saturating_add(lifetime);
                entry.failure = None;
                Ok(keys)
            }
            Err((error, kept)) => {
                entry.keys = None;
                entry.failure = Some((error.clone(), now.saturating_add(kept)));
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundSettings;
    use sigil_core::clock::FixedClock;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A JWK Set server on a loopback port: answers every request with the current
    /// document and `Cache-Control`, and counts the requests.
    struct KeyServer {
        url: String,
        document: Arc<Mutex<(u16, String)>>,
        requests: Arc<AtomicUsize>,
    }

    async fn key_server(cache_control: &'static str) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/jwks.json",
            listener.local_addr().expect("address")
        );
        let document = Arc::new(Mutex::new((200, String::new())));
        let requests = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (document.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (served, counted) = (served.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = served.lock().expect("lock").clone();
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nCache-Control: {cache_control}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        KeyServer {
            url,
            document,
            requests,
        }
    }

    /// A JWK Set of one RSA public key (made once) under each of `kids`.
    fn set_of(kids: &[&str]) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        static KEY: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
        let (n, e) = KEY.get_or_init(|| {
            let rsa = openssl::rsa::Rsa::generate(2048).expect("rsa");
            (
                URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
                URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
            )
        });
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|kid| serde_json::json!({"kty": "RSA", "kid": kid, "n": n, "e": e}))
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn fetcher(clock: Arc<FixedClock>) -> ClientKeyFetcher {
        let outbound = Outbound::new(OutboundSettings {
            allow_loopback: true,
            ..Default::default()
        })
        .expect("outbound");
        ClientKeyFetcher::new(Arc::new(outbound), clock)
    }

    fn has(set: &ClientKeySet, kid: &str) -> bool {
        set.has_key_for(sigil_core::client_keys::AssertionAlg::Rs256, Some(kid))
    }

    #[tokio::test]
    async fn kept_for_max_age_refetched_once_per_cool_down_and_failures_remembered() {
        let server = key_server("max-age=600").await;
        *server.document.lock().expect("lock") = (200, set_of(&["a"]));
        let clock = Arc::new(FixedClock::new(1_000_000));
        let keys = fetcher(clock.clone());
        let requests = || server.requests.load(Ordering::SeqCst);

        assert!(has(
            &keys.keys_at(&server.url, false).await.expect("keys"),
            "a"
        ));
        assert!(has(
            &keys.keys_at(&server.url, false).await.expect("keys"),
            "a"
        ));
        assert_eq!(requests(), 1, "kept, not fetched again");

        // The client adds a key: an unknown kid refetches once, then cools down.
        *server.document.lock().expect("lock") = (200, set_of(&["a", "b"]));
        assert!(has(
            &keys.keys_at(&server.url, true).await.expect("keys"),
            "b"
        ));
        assert_eq!(requests(), 2);
        keys.keys_at(&server.url, true).await.expect("keys");
        assert_eq!(requests(), 2, "within the cool-down");
        clock.advance(REFETCH_COOL_DOWN);
        keys.keys_at(&server.url, true).await.expect("keys");
        assert_eq!(requests(), 3, "after the cool-down");

        // max-age=600: still fresh at 599 s, fetched again at 600 s.
        clock.advance(599);
        keys.keys_at(&server.url, false).await.expect("keys");
        assert_eq!(requests(), 3);
        clock.advance(1);
        keys.keys_at(&server.url, false).await.expect("keys");
        assert_eq!(requests(), 4);

        // A failed refetch keeps the set in hand; once it expires the failure is answered,
        // and remembered for a while.
        *server.document.lock().expect("lock") = (500, String::new());
        clock.advance(REFETCH_COOL_DOWN);
        assert!(has(
            &keys.keys_at(&server.url, true).await.expect("kept"),
            "a"
        ));
        assert_eq!(requests(), 5);
        clock.advance(600);
        let error = keys.keys_at(&server.url, false).await.expect_err("down");
        assert!(error.0.contains("500"), "{error}");
        assert_eq!(requests(), 6);
        keys.keys_at(&server.url, false)
            .await
            .expect_err("remembered");
        assert_eq!(requests(), 6);
        clock.advance(FAILURE_TTL);
        *server.document.lock().expect("lock") = (200, "{\"keys\": []}".into());
        let error = keys.keys_at(&server.url, false).await.expect_err("no keys");
        assert!(error.0.contains("no key usable"), "{error}");
        assert_eq!(requests(), 7);
        assert_eq!(keys.fetches(), 7);
    }

    #[tokio::test]
    async fn lifetimes_are_clamped_and_plain_http_needs_the_loopback_option() {
        let server = key_server("no-store").await;
        *server.document.lock().expect("lock") = (200, set_of(&["a"]));
        let clock = Arc::new(FixedClock::new(1_000_000));
        let keys = fetcher(clock.clone());
        keys.keys_at(&server.url, false).await.expect("keys");
        clock.advance(KEYS_FLOOR - 1);
        keys.keys_at(&server.url, false).await.expect("keys");
        assert_eq!(
            server.requests.load(Ordering::SeqCst),
            1,
            "no-store: the floor"
        );
        clock.advance(1);
        keys.keys_at(&server.url, false).await.expect("keys");
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);

        let strict = ClientKeyFetcher::new(
            Arc::new(Outbound::new(OutboundSettings::default()).expect("outbound")),
            clock,
        );
        let error = strict
            .keys_at(&server.url, false)
            .await
            .expect_err("http refused");
        assert!(error.0.contains("https"), "{error}");
        assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    }
}
