//! The PostgreSQL store's circuit breaker: once the database refuses (or does not answer) a
//! connection, reads fail fast as unavailable while one background probe reconnects,
//! instead of each waiting out `--db-acquire-timeout` in sqlx's connect-retry loop.
//!
//! Closed (normal): reads run as usual. Something makes the breaker doubt the database: a
//! read that failed as unavailable (a connection closed, reset or cut), or a read still
//! waiting after [`SLOW_READ`] (sqlx retries a refused connect with backoff until the
//! acquire timeout). Then one probe, a connection of its own outside the pool, tries to
//! connect. If it fails, the breaker opens: every read is refused at once and reads already
//! waiting give up, while the probe tries again every [`PROBE_INTERVAL`]. The first probe
//! that connects closes the breaker.

use sigil_core::store::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Opens a connection to the database and closes it again.
pub(crate) type Probe =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send>> + Send + Sync>;

/// How long the breaker stays open between two probes: the longest a recovered database
/// waits to be used again, apart from the probe's own connect.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A read still waiting after this long has the probe check that the database accepts
/// connections.
pub(crate) const SLOW_READ: Duration = Duration::from_millis(200);
/// While the database accepts connections, slow reads start a probe at most this often.
const SLOW_PROBE_SPACING: Duration = Duration::from_secs(1);
/// The longest a probe waits for a connection: the acquire timeout, at most this.
const PROBE_TIMEOUT_CAP: Duration = Duration::from_secs(1);

/// See the module documentation. Shared (`Arc`) by the store and its pool's hooks.
pub struct Breaker {
    probe: Probe,
    probe_timeout: Duration,
    /// `true` while open; reads that wait watch it to give up as soon as it opens.
    open: tokio::sync::watch::Sender<bool>,
    /// Whether the one probe is running.
    probing: AtomicBool,
    /// When a slow read last started a probe.
    last_slow_probe: Mutex<Option<Instant>>,
    /// When a connection was last found broken. The pool tests a connection that has been
    /// idle since before then before handing it out (see [`Breaker::is_suspect`]).
    lost_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("is_open", &self.is_open())
            .finish()
    }
}

impl Breaker {
    pub(crate) fn new(probe: Probe, acquire_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            probe,
            probe_timeout: acquire_timeout.min(PROBE_TIMEOUT_CAP),
            open: tokio::sync::watch::Sender::new(false),
            probing: AtomicBool::new(false),
            last_slow_probe: Mutex::new(None),
            lost_at: Mutex::new(None),
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Unavailable at once while the breaker is open.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.is_open() {
            Err(refused())
        } else {
            Ok(())
        }
    }

    /// Runs `read`, giving it up as unavailable as soon as the breaker opens (a read has no
    /// side effects, so nothing is lost). A read still waiting after [`SLOW_READ`] has the
    /// probe check the database.
    pub(crate) async fn guard<T>(
        self: &Arc<Self>,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let mut opened = self.open.subscribe();
        let mut read = std::pin::pin!(read);
        let slow = tokio::time::sleep(SLOW_READ);
        let mut slow = std::pin::pin!(slow);
        let mut has_probed = false;
        loop {
            tokio::select! {
                result = &mut read => return result,
                _ = &mut slow, if !has_probed => {
                    has_probed = true;
                    self.probe_if_due();
                }
                _ = opened.wait_for(|open| *open) => return Err(refused()),
            }
        }
    }

    /// A connection was found broken (closed by the server, reset, cut): connections idle
    /// since before now are tested before reuse, and the probe checks the database.
    pub(crate) fn connection_lost(self: &Arc<Self>) {
        *lock(&self.lost_at) = Some(Instant::now());
        self.start_probe();
    }

    /// Whether a pooled connection idle for `idle_for` was already idle when a connection
    /// was last found broken, so may be broken too.
    pub(crate) fn is_suspect(&self, idle_for: Duration) -> bool {
        lock(&self.lost_at).is_some_and(|lost_at| lost_at.elapsed() <= idle_for)
    }

    fn probe_if_due(self: &Arc<Self>) {
        {
            let mut last = lock(&self.last_slow_probe);
            if last.is_some_and(|at| at.elapsed() < SLOW_PROBE_SPACING) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.start_probe();
    }

    /// Starts the probe unless it is running. It holds the breaker weakly: a store dropped
    /// while its database is down stops it.
    fn start_probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move { probe_until_connected(weak).await });
    }
}

async fn probe_until_connected(weak: Weak<Breaker>) {
    loop {
        let Some(breaker) = weak.upgrade() else {
            return;
        };
        let outcome = tokio::time::timeout(breaker.probe_timeout, (breaker.probe)()).await;
        match outcome {
            Ok(Err(error)) if !means_unreachable(&error) => {
                // The server answered (too many connections, say): it is up, and the pool's
                // own waiting and errors say the rest. Not a reason to refuse every read.
                tracing::debug!(%error, "the database answered the probe with an error");
                breaker.open.send_replace(false);
                breaker.probing.store(false, Ordering::SeqCst);
                return;
            }
            Ok(Ok(())) => {
                if breaker.open.send_replace(false) {
                    tracing::info!("the database accepts connections again");
                }
                breaker.probing.store(false, Ordering::SeqCst);
                return;
            }
            failed => {
                if !breaker.open.send_replace(true) {
                    let cause = match failed {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!(
                            "no connection within {} ms",
                            breaker.probe_timeout.as_millis()
                        ),
                    };
                    tracing::warn!(
                        error = %cause,
                        "the database cannot be reached: reads fail fast until a probe reconnects"
                    );
                }
            }
        }
        drop(breaker);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Whether a failed probe means the database cannot be used: no answer at all (refused,
/// reset, TLS, a message cut short), or an answer that it is shutting down or starting up
/// (57P01, 57P03). Any other error from the server means it is up.
fn means_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("57P")),
        _ => true,
    }
}

fn refused() -> StoreError {
    StoreError::Unavailable(
        "the database cannot be reached (a background probe is reconnecting)".into(),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A breaker whose probe fails while `down` is set, counting its attempts.
    fn breaker_with(down: Arc<AtomicBool>, attempts: Arc<AtomicUsize>) -> Arc<Breaker> {
        Breaker::new(
            Box::new(move || {
                let (down, attempts) = (down.clone(), attempts.clone());
                Box::pin(async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    if down.load(Ordering::SeqCst) {
                        Err(sqlx::Error::Io(
                            std::io::ErrorKind::ConnectionRefused.into(),
                        ))
                    } else {
                        Ok(())
                    }
                })
            }),
            Duration::from_secs(1),
        )
    }

    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < Duration::from_secs(5), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn opens_after_a_failed_probe_gives_up_waiting_reads_and_closes_on_reconnect() {
        let (down, attempts) = (Arc::new(AtomicBool::new(true)), Arc::default());
        let breaker = breaker_with(down.clone(), Arc::clone(&attempts));
        assert!(breaker.check().is_ok());
        // A read stuck waiting (like sqlx retrying a refused connect) ends once it opens.
        let started = Instant::now();
        let stuck = breaker.guard(std::future::pending::<Result<(), StoreError>>());
        assert!(matches!(stuck.await, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(breaker.is_open());
        assert!(matches!(breaker.check(), Err(StoreError::Unavailable(_))));
        down.store(false, Ordering::SeqCst);
        wait_until("closes once a probe connects", || !breaker.is_open()).await;
        assert!(breaker.guard(async { Ok(7) }).await.is_ok_and(|n| n == 7));
    }

    #[tokio::test]
    async fn a_lost_connection_makes_idle_ones_suspect_and_one_probe_run() {
        let (down, attempts) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let breaker = breaker_with(down, attempts.clone());
        assert!(!breaker.is_suspect(Duration::from_secs(3600)));
        breaker.connection_lost();
        breaker.connection_lost();
        assert!(breaker.is_suspect(Duration::from_secs(1)));
        assert!(!breaker.is_suspect(Duration::ZERO));
        wait_until("the probe finishes", || {
            !breaker.probing.load(Ordering::SeqCst)
        })
        .await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "one probe at a time");
        assert!(!breaker.is_open(), "a database that accepts stays in use");
    }
}
