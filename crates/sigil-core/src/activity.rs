//! Activity counters: how many sign-ins, tokens, refresh-token reuses, throttled requests
//! and server errors happened, by minute, for the admin console's charts.
//!
//! Counting is a memory operation: [`Activity::record`] adds one to a count under a short
//! lock, and the server writes what was counted to the database every few seconds
//! ([`Activity::drain`], then [`crate::store::ActivityStore::add_activity`]). No request
//! waits for a database write to be counted, and every replica's counts add up in the
//! database. Counts whose write failed are put back ([`Activity::restore`]) and go out
//! with the next write.

use crate::clock::Clock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A minute's length, the finest bucket.
pub const MINUTE: i64 = 60;
/// An hour's length, the bucket of the rolled-up counts.
pub const HOUR: i64 = 3600;

/// The most distinct counts held in memory between writes. Counts are kept per minute,
/// metric, label and client, so this is only reached when the database has been
/// unreachable for a long time; past it the oldest minutes are dropped (and logged).
const MAX_PENDING: usize = 100_000;

/// How someone proved who they are at a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// A password (the sign-in page or the password grant).
    Password,
    /// A passkey alone.
    Passkey,
    /// An upstream identity provider.
    Provider,
    /// The second step: an authenticator app's code, a recovery code or a passkey.
    SecondFactor,
}

/// What the counters count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A sign-in step, accepted or refused.
    SignIn { method: SignInMethod, ok: bool },
    /// A token response, under `grant`, to `client_id`.
    TokenIssued {
        grant: &'static str,
        client_id: &'a str,
    },
    /// A refresh token presented again after it was rotated (its family is revoked).
    RefreshReuse { client_id: &'a str },
    /// A request refused by a rate limit.
    Throttled,
    /// An answer with a 5xx status.
    ServerError,
}

/// The metrics as stored (`metric` column), with the labels each can have.
pub mod metric {
    pub const SIGN_IN: &str = "sign_in";
    pub const TOKEN: &str = "token";
    pub const REFRESH_REUSE: &str = "refresh_reuse";
    pub const THROTTLED: &str = "throttled";
    pub const SERVER_ERROR: &str = "server_error";
}

/// The labels of [`metric::SIGN_IN`]: the method, then `.ok` or `.failed`.
pub const SIGN_IN_LABELS: [&str; 8] = [
    "password.ok",
    "password.failed",
    "passkey.ok",
    "passkey.failed",
    "provider.ok",
    "provider.failed",
    "second_factor.ok",
    "second_factor.failed",
];

impl Event<'_> {
    /// The stored metric, label and client (`""` when the event has none).
    fn key(&self) -> (&'static str, &'static str, &str) {
        match *self {
            Event::SignIn { method, ok } => {
                let i = match method {
                    SignInMethod::Password => 0,
                    SignInMethod::Passkey => 2,
                    SignInMethod::Provider => 4,
                    SignInMethod::SecondFactor => 6,
                };
                let label = SIGN_IN_LABELS[if ok { i } else { i + 1 }];
                (metric::SIGN_IN, label, "")
            }
            Event::TokenIssued { grant, client_id } => (metric::TOKEN, grant, client_id),
            Event::RefreshReuse { client_id } => (metric::REFRESH_REUSE, "", client_id),
            Event::Throttled => (metric::THROTTLED, "", ""),
            Event::ServerError => (metric::SERVER_ERROR, "", ""),
        }
    }
}

/// One count to add to the database: `count` events of `metric`/`label` (and `client_id`,
/// or `""`) in the minute starting at `minute` (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ActivityCount {
    pub minute: i64,
    pub metric: &'static str,
    pub label: &'static str,
    pub client_id: String,
    pub count: i64,
}

type Slot = (i64, &'static str, &'static str);

#[derive(Default)]
struct Pending {
    /// (minute, metric, label) -> client id -> count
    counts: HashMap<Slot, HashMap<String, i64>>,
    /// How many (slot, client) counts are held.
    len: usize,
}

impl Pending {
    fn add(&mut self, slot: Slot, client_id: &str, count: i64) {
        let clients = self.counts.entry(slot).or_default();
        // Looked up by `&str` first: the client id is copied only for its first count.
        if let Some(n) = clients.get_mut(client_id) {
            *n += count;
            return;
        }
        clients.insert(client_id.to_string(), count);
        self.len += 1;
    }

    /// Drops the oldest minutes until at most [`MAX_PENDING`] counts are held; returns how
    /// many events were dropped.
    fn bound(&mut self) -> i64 {
        let mut dropped = 0;
        while self.len > MAX_PENDING {
            let Some(oldest) = self.counts.keys().map(|slot| slot.0).min() else {
                break;
            };
            self.counts.retain(|slot, clients| {
                if slot.0 == oldest {
                    dropped += clients.values().sum::<i64>();
                    false
                } else {
                    true
                }
            });
            self.len = self.counts.values().map(HashMap::len).sum();
        }
        dropped
    }
}

/// The counts of one process not yet written to the database.
pub struct Activity {
    clock: Arc<dyn Clock>,
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activity")
            .field("pending", &self.lock().len)
            .finish()
    }
}

impl Activity {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            pending: Mutex::new(Pending::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        match self.pending.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counts one event, in the current minute.
    pub fn record(&self, event: Event<'_>) {
        let (metric, label, client_id) = event.key();
        let minute = minute_of(self.clock.now());
        let mut pending = self.lock();
        pending.add((minute, metric, label), client_id, 1);
        if pending.len > MAX_PENDING {
            keep_bounded(pending);
        }
    }

    /// Takes every count held, in a fixed order (so that concurrent writers lock rows in
    /// the same order).
    pub fn drain(&self) -> Vec<ActivityCount> {
        let taken = std::mem::take(&mut *self.lock());
        let mut counts: Vec<ActivityCount> = taken
            .counts
            .into_iter()
            .flat_map(|((minute, metric, label), clients)| {
                clients
                    .into_iter()
                    .map(move |(client_id, count)| ActivityCount {
                        minute,
                        metric,
                        label,
                        client_id,
                        count,
                    })
            })
            .collect();
        counts.sort();
        counts
    }

    /// Puts back counts taken by [`Activity::drain`] whose write failed.
    pub fn restore(&self, counts: Vec<ActivityCount>) {
        let mut pending = self.lock();
        for c in counts {
            pending.add((c.minute, c.metric, c.label), &c.client_id, c.count);
        }
        keep_bounded(pending);
    }

    /// Whether nothing is waiting to be written.
    pub fn is_empty(&self) -> bool {
        self.lock().len == 0
    }
}

/// Drops the oldest minutes past [`MAX_PENDING`] and says so, after letting go of the lock.
fn keep_bounded(mut pending: std::sync::MutexGuard<'_, Pending>) {
    let dropped = pending.bound();
    drop(pending);
    if dropped > 0 {
        tracing::warn!(
            events = dropped,
            "activity counts could not be written for a long time; the oldest were dropped"
        );
    }
}

/// The start of the minute `at` falls in.
pub fn minute_of(at: i64) -> i64 {
    at - at.rem_euclid(MINUTE)
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: i64) -> i64 {
    at - at.rem_euclid(HOUR)
}

/// The finest of the two stored tables a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// Per-minute totals (all clients), kept for the shorter retention.
    Minute,
    /// Per-hour counts, per client and in total, kept for the longer retention.
    Hour,
}

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Minute => "minute",
            Grain::Hour => "hour",
        }
    }
}

/// A stored count as read back: `count` events of `metric`/`label` in the bucket that
/// starts at `bucket`, for `client_id` (`""`: every client together, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub bucket: i64,
    pub metric: String,
    pub label: String,
    pub client_id: String,
    pub count: i64,
}

/// Which stored counts to read: those of `grain` with `from <= bucket < to`, of one
/// client (`Some`) or the totals (`None`), in buckets of `bucket_seconds` (a multiple of
/// the grain: counts in one such bucket are summed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityQuery {
    pub grain: Grain,
    pub from: i64,
    pub to: i64,
    pub bucket_seconds: i64,
    pub client_id: Option<String>,
}

/// A page of the stored rows themselves, for export: those of `grain` with
/// `from <= bucket < to`, after `after` in (bucket, metric, label, client) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityPage {
    pub grain: Grain,
    pub from: i64,
    pub to: i64,
    pub after: Option<(i64, String, String, String)>,
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    #[test]
    fn counts_add_up_per_minute_and_client_and_drain_in_order() {
        let clock = Arc::new(FixedClock::new(1_000_000_030));
        let activity = Activity::new(clock.clone());
        let cc = Event::TokenIssued {
            grant: "client_credentials",
            client_id: "b",
        };
        activity.record(cc);
        activity.record(cc);
        activity.record(Event::TokenIssued {
            grant: "client_credentials",
            client_id: "a",
        });
        activity.record(Event::SignIn {
            method: SignInMethod::Password,
            ok: false,
        });
        clock.advance(60);
        activity.record(cc);
        let minute = minute_of(1_000_000_030);
        assert_eq!(minute % 60, 0);
        let counts = activity.drain();
        let seen: Vec<(i64, &str, &str, &str, i64)> = counts
            .iter()
            .map(|c| (c.minute, c.metric, c.label, c.client_id.as_str(), c.count))
            .collect();
        assert_eq!(
            seen,
            vec![
                (minute, "sign_in", "password.failed", "", 1),
                (minute, "token", "client_credentials", "a", 1),
                (minute, "token", "client_credentials", "b", 2),
                (minute + 60, "token", "client_credentials", "b", 1),
            ]
        );
        assert!(activity.is_empty());
        activity.restore(counts);
        activity.record(cc);
        let again = activity.drain();
        assert_eq!(again.len(), 4);
        assert_eq!(again[3].count, 2, "restored and new counts add up");
    }

    #[test]
    fn memory_stays_bounded_when_nothing_is_written() {
        let clock = Arc::new(FixedClock::new(0));
        let activity = Activity::new(clock.clone());
        let mut ids = Vec::new();
        for i in 0..(MAX_PENDING + 10) {
            ids.push(format!("client-{i}"));
        }
        for id in &ids {
            activity.record(Event::RefreshReuse { client_id: id });
        }
        clock.advance(60);
        activity.record(Event::Throttled);
        let counts = activity.drain();
        assert!(counts.len() <= MAX_PENDING);
        assert!(
            counts.iter().any(|c| c.metric == metric::THROTTLED),
            "the newest minute is kept"
        );
    }

    #[test]
    fn buckets_start_on_the_minute_and_hour() {
        assert_eq!(minute_of(119), 60);
        assert_eq!(hour_of(7199), 3600);
        assert_eq!(minute_of(-1), -60);
    }
}
