//! Fetched documents kept in memory, decoded: one fetch at a time per URL (callers who
//! ask while it runs wait for its outcome: single-flight), kept for the server's
//! `Cache-Control: max-age` clamped between a floor and a ceiling (`no-store`,
//! `no-cache` and no header at all: the floor), a failure kept briefly so that a flood of
//! requests for a broken URL costs one fetch, and a bounded number of URLs.
//!
//! Time comes from a [`Clock`], so that tests move it instead of sleeping.

use super::{FetchError, FetchRules, Freshness, Outbound};
use serde::de::DeserializeOwned;
use sigil_core::clock::Clock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Shortest time a fetched document is kept, whatever its headers say (seconds).
pub const FLOOR: i64 = 5 * 60;
/// Longest time a fetched document is kept, whatever its headers say (seconds).
pub const CEILING: i64 = 24 * 3600;
/// How long a failed fetch (or a document refused) is remembered (seconds).
pub const FAILURE_TTL: i64 = 30;
/// Most URLs remembered at once.
pub const MAX_ENTRIES: usize = 1000;

/// How long outcomes are kept; [`Default`] holds the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub floor: i64,
    pub ceiling: i64,
    pub failure_ttl: i64,
    pub max_entries: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            floor: FLOOR,
            ceiling: CEILING,
            failure_ttl: FAILURE_TTL,
            max_entries: MAX_ENTRIES,
        }
    }
}

impl CachePolicy {
    /// Seconds a document fetched with `freshness` is kept.
    pub fn lifetime(&self, freshness: Freshness) -> i64 {
        let ceiling = self.ceiling.max(self.floor);
        match freshness {
            Freshness::MaxAge(seconds) => i64::try_from(seconds)
                .unwrap_or(i64::MAX)
                .clamp(self.floor, ceiling),
            Freshness::DoNotKeep | Freshness::Unspecified => self.floor,
        }
    }
}

type Outcome<T> = Result<Arc<T>, FetchError>;

/// One URL's outcome: empty while its fetch runs.
struct Slot<T> {
    outcome: OnceCell<(Outcome<T>, i64)>,
}

impl<T> Slot<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            outcome: OnceCell::new(),
        })
    }
    /// Settled and still fresh, or still running: either way, callers share it.
    fn is_usable(&self, now: i64) -> bool {
        self.outcome
            .get()
            .is_none_or(|(_, expires_at)| now < *expires_at)
    }
    fn expires_at(&self) -> Option<i64> {
        self.outcome.get().map(|(_, expires_at)| *expires_at)
    }
}

/// Documents of type `T` by URL.
pub struct DocumentCache<T> {
    outbound: Arc<Outbound>,
    rules: FetchRules,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<String, Arc<Slot<T>>>>,
}

impl<T: Send + Sync + 'static> DocumentCache<T> {
    pub fn new(
        outbound: Arc<Outbound>,
        rules: FetchRules,
        policy: CachePolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            outbound,
            rules,
            policy,
            clock,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The document at `url`: from memory while fresh, else fetched (once, however many
    /// ask at the same time) and turned into a `T` by `decode`, whose error is kept as a
    /// failure ([`FetchError::Invalid`]).
    pub async fn get(
        &self,
        url: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<Arc<T>, FetchError> {
        self.get_with(url, |body| std::future::ready(decode(&body)))
            .await
    }

    /// [`DocumentCache::get`] with a `decode` that may wait (for what else it needs to
    /// read), run only when the document was fetched.
    pub async fn get_with<F, Fut>(&self, url: &str, decode: F) -> Result<Arc<T>, FetchError>
    where
        F: FnOnce(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let slot = self.slot(url);
        let (outcome, _) = slot
            .outcome
            .get_or_init(|| async {
                let outcome = match self.outbound.fetch(url, self.rules).await {
                    Ok(fetched) => decode(fetched.body)
                        .await
                        .map(|document| (Arc::new(document), fetched.freshness))
                        .map_err(FetchError::Invalid),
                    Err(error) => Err(error),
                };
                let now = self.clock.now();
                match outcome {
                    Ok((document, freshness)) => (
                        Ok(document),
                        now.saturating_add(self.policy.lifetime(freshness)),
                    ),
                    Err(error) => {
                        tracing::info!(
                            url = %super::escaped(url, 200),
                            %error,
                            "outbound fetch refused or failed"
                        );
                        // Too many fetches at once says nothing about this URL: not kept.
                        let kept = if error == FetchError::Busy {
                            0
                        } else {
                            self.policy.failure_ttl
                        };
                        (Err(error), now.saturating_add(kept))
                    }
                }
            })
            .await;
        outcome.clone()
    }

    /// [`DocumentCache::get`] for a JSON document: `D` is parsed, then `convert`ed.
    pub async fn get_json<D: DeserializeOwned>(
        &self,
        url: &str,
        convert: impl FnOnce(D) -> Result<T, String>,
    ) -> Result<Arc<T>, FetchError> {
        self.get(url, |bytes| convert(parse_json(bytes)?)).await
    }

    /// Forgets every outcome (the next request for each URL fetches again).
    pub fn clear(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.clear();
        }
    }

    /// How many URLs are remembered (settled or under way).
    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |slots| slots.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The URL's slot to wait on: the current one while usable, else a fresh one.
    fn slot(&self, url: &str) -> Arc<Slot<T>> {
        let now = self.clock.now();
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned lock (a panic elsewhere): serve without caching.
            return Slot::new();
        };
        if let Some(slot) = slots.get(url).filter(|slot| slot.is_usable(now)) {
            return slot.clone();
        }
        slots.remove(url);
        if slots.len() >= self.policy.max_entries {
            slots.retain(|_, slot| slot.is_usable(now));
        }
        if slots.len() >= self.policy.max_entries {
            // Still full of fresh outcomes: the one that expires first makes room.
            let soonest = slots
                .iter()
                .filter_map(|(key, slot)| slot.expires_at().map(|at| (at, key.clone())))
                .min();
            if let Some((_, key)) = soonest {
                slots.remove(&key);
            }
        }
        let slot = Slot::new();
        if slots.len() < self.policy.max_entries {
            slots.insert(url.to_string(), slot.clone());
        }
        slot
    }
}

/// Parses a JSON document into `D`. The error quotes nothing of the document: serde's
/// messages may repeat a value the server sent, so only what names our own fields (a
/// missing or repeated member, the type expected) is kept, with the line and column.
pub fn parse_json<D: DeserializeOwned>(bytes: &[u8]) -> Result<D, String> {
    serde_json::from_slice(bytes).map_err(|error| {
        let at = format!("line {} column {}", error.line(), error.column());
        let message = error.to_string();
        match error.classify() {
            serde_json::error::Category::Data => {
                let text = message.split(" at line ").next().unwrap_or("");
                if let Some(name) = text.strip_prefix("missing field ") {
                    format!(
                        "the document is missing a member {}",
                        super::escaped(name, 80)
                    )
                } else if let Some(name) = text.strip_prefix("duplicate field ") {
                    format!("the document repeats a member {}", super::escaped(name, 80))
                } else if let Some((_, expected)) = text.split_once(", expected ") {
                    format!(
                        "a member has the wrong type or value (expected {}, {at})",
                        super::escaped(expected, 80)
                    )
                } else {
                    format!("a member has an unacceptable value ({at})")
                }
            }
            serde_json::error::Category::Eof => format!("the JSON ends too early ({at})"),
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                format!("the document is not valid JSON ({at})")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_clamped() {
        let policy = CachePolicy::default();
        assert_eq!(policy.lifetime(Freshness::MaxAge(0)), FLOOR);
        assert_eq!(policy.lifetime(Freshness::MaxAge(3600)), 3600);
        assert_eq!(policy.lifetime(Freshness::MaxAge(u64::MAX)), CEILING);
        assert_eq!(policy.lifetime(Freshness::DoNotKeep), FLOOR);
        assert_eq!(policy.lifetime(Freshness::Unspecified), FLOOR);
    }

    #[test]
    fn json_errors_are_escaped() {
        #[derive(Debug, serde::Deserialize)]
        struct Doc {
            #[allow(dead_code)]
            n: u64,
        }
        let error = parse_json::<Doc>(b"{\"n\": \"\\u001b[31mred\"}").expect_err("a string");
        assert!(
            !error.contains('\u{1b}') && !error.contains("red"),
            "{error}"
        );
        assert!(
            error.contains("wrong type or value (expected u64"),
            "{error}"
        );
        let error = parse_json::<Doc>(b"{}").expect_err("missing");
        assert_eq!(error, "the document is missing a member `n`");
        let error = parse_json::<Doc>(b"{\"n\": 1, \"n\": 2}").expect_err("repeated");
        assert_eq!(error, "the document repeats a member `n`");
        let error = parse_json::<Doc>(b"{\"n\": 1 SECRET}").expect_err("syntax");
        assert!(
            !error.contains("SECRET") && error.contains("not valid JSON"),
            "{error}"
        );
        let error = parse_json::<Doc>(b"{").expect_err("short");
        assert!(error.contains("ends too early"), "{error}");
    }
}
