//! The replay cache (RFC 9449 §11.1): every accepted proof is remembered until it would no
//! longer be accepted anyway, in bounded memory.
//!
//! A proof is kept as 16 bytes of its `Proof::replay_digest` (the SHA-256 of its key's
//! thumbprint and its `jti`) and the second its `iat` leaves the window: about 40 bytes an
//! entry with the map's overhead. The entries are spread over shards, each behind its own
//! mutex, so that concurrent requests rarely wait for each other; a lookup and an insert are
//! the whole hot path. When a shard is full, its expired entries are swept out (at most once
//! per second of the clock, and only when one has expired); when it is still full, the proof
//! is refused. Forgetting an unexpired proof instead would let a replay of it through.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Below this capacity, one shard: small caches (tests) fill exactly at their capacity.
const SHARDING_FROM: usize = 1024;
const SHARDS: usize = 16;

pub(crate) struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

struct Shard {
    /// First 16 bytes of the replay digest → the last second the proof is acceptable.
    entries: HashMap<u128, i64>,
    /// No entry expires before this second: sweeping earlier frees nothing.
    earliest_expiry: i64,
}

/// What [`ReplayCache::remember`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayOutcome {
    /// Not seen before; now remembered.
    New,
    /// Seen before, and still within its window.
    Replayed,
    /// Not seen, but there is no room to remember it: refuse the proof.
    Full,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = if capacity < SHARDING_FROM { 1 } else { SHARDS };
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: HashMap::new(),
                        earliest_expiry: i64::MAX,
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(shards),
        }
    }

    /// Most entries held at once.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Entries held now, expired ones not yet swept included.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).entries.len()).sum()
    }

    /// Remembers the proof with `digest` until `until` (seconds), unless it was seen.
    pub(crate) fn remember(&self, digest: [u8; 32], until: i64, now: i64) -> ReplayOutcome {
        let mut key_bytes = [0u8; 16];
        key_bytes.copy_from_slice(&digest[..16]);
        let key = u128::from_le_bytes(key_bytes);
        let shard = &self.shards[usize::from(digest[16]) % self.shards.len()];
        let mut shard = lock(shard);
        if let Some(&kept_until) = shard.entries.get(&key) {
            // Remembered until `until`, not at it (`Proof::replay_until` is the first
            // second the proof is refused anyway), as Sigil's store counts it.
            if kept_until > now {
                return ReplayOutcome::Replayed;
            }
        } else if shard.entries.len() >= self.per_shard {
            if now >= shard.earliest_expiry {
                shard.sweep(now);
            }
            if shard.entries.len() >= self.per_shard {
                return ReplayOutcome::Full;
            }
        }
        shard.entries.insert(key, until);
        shard.earliest_expiry = shard.earliest_expiry.min(until);
        ReplayOutcome::New
    }
}

impl Shard {
    /// Drops every entry whose window has passed.
    fn sweep(&mut self, now: i64) {
        let mut earliest = i64::MAX;
        self.entries.retain(|_, until| {
            let keep = *until > now;
            if keep {
                earliest = earliest.min(*until);
            }
            keep
        });
        self.earliest_expiry = earliest;
    }
}

/// A poisoned shard is still a consistent map (every update is one insert or retain).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    match shard.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(n.to_be_bytes()).into()
    }

    #[test]
    fn a_proof_is_refused_while_its_window_lasts_and_accepted_after() {
        let cache = ReplayCache::new(10);
        assert_eq!(cache.remember(digest(1), 100, 50), ReplayOutcome::New);
        assert_eq!(cache.remember(digest(1), 100, 60), ReplayOutcome::Replayed);
        assert_eq!(cache.remember(digest(1), 100, 99), ReplayOutcome::Replayed);
        assert_eq!(cache.remember(digest(2), 100, 60), ReplayOutcome::New);
        // Kept until 100, not at it: `replay_until` is the first second the proof is
        // refused for its iat anyway.
        assert_eq!(cache.remember(digest(1), 200, 100), ReplayOutcome::New);
    }

    #[test]
    fn a_full_cache_refuses_new_proofs_until_old_ones_expire() {
        let cache = ReplayCache::new(3);
        for n in 0..3 {
            assert_eq!(
                cache.remember(digest(n), 100 + i64::from(n), 10),
                ReplayOutcome::New
            );
        }
        assert_eq!(cache.remember(digest(9), 200, 10), ReplayOutcome::Full);
        assert_eq!(cache.len(), 3);
        // Nothing is forgotten to make room: every proof is still refused as a replay.
        for n in 0..3 {
            assert_eq!(cache.remember(digest(n), 300, 50), ReplayOutcome::Replayed);
        }
        // At 101, the proofs kept until 100 and until 101 (not at it) are gone: two
        // places are free.
        assert_eq!(cache.remember(digest(9), 200, 101), ReplayOutcome::New);
        assert_eq!(cache.remember(digest(10), 200, 101), ReplayOutcome::New);
        assert_eq!(cache.remember(digest(11), 200, 101), ReplayOutcome::Full);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_proofs() {
        let cache = ReplayCache::new(5_000);
        let mut refused = 0;
        // Thirty proofs a second, each acceptable for 300 s: many more than fit.
        for n in 0..50_000u32 {
            let now = i64::from(n / 30);
            match cache.remember(digest(n), now + 300, now) {
                ReplayOutcome::New => {}
                ReplayOutcome::Full => refused += 1,
                ReplayOutcome::Replayed => panic!("proof {n} was never sent before"),
            }
            assert!(cache.len() <= cache.capacity());
        }
        assert!(cache.capacity() <= 5_000 + SHARDS);
        assert!(refused > 0, "the flood overflowed the cache");
        // Sweeps made room as proofs expired: more than the capacity were taken in all.
        assert!(50_000 - refused > 10_000, "only {} taken", 50_000 - refused);
    }
}
