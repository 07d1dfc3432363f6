//! Delivering OpenID Connect Back-Channel Logout 1.0 logout tokens (§2.5): the worker that
//! empties the `logout_deliveries` outbox core's `LogoutQueue` fills, on every replica.
//!
//! Each pass claims due deliveries one statement at a time (each has one holder for
//! [`LEASE_SECONDS`]), signs a fresh logout token for each (§2.4), and POSTs it as
//! `logout_token=…` to the client's registered URI, a few at once. A 2xx is delivered; a
//! 3xx (redirects are not followed) or a 4xx (but 408 and 429) means the client refused
//! the token, which a retry would not change, so it is given up; anything else (5xx, a timeout, no connection) is tried again
//! with backoff (`sigil_core::backchannel::next_attempt_at`). Nothing here blocks a
//! logout: the page answers once the delivery is stored, and the worker is woken at once.
//! A process killed between storing and delivering leaves the row to the next worker.
//! Logs name a delivery by id and client, never the token.

use sigil_core::authority::Authority;
use sigil_core::backchannel::{next_attempt_at, LogoutQueue};
use sigil_core::clock::Clock;
use sigil_core::store::{LogoutDelivery, Store, StoreError};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How long a claimed delivery stays with its worker before another may take it over.
const LEASE_SECONDS: i64 = 30;
/// The longest one POST may take, connection included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the worker looks for due deliveries when nothing woke it: logouts queued by
/// another replica or a command, and retries that came due.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The pause after a pass that failed on the database.
const STORE_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;
/// The most of a client's answer that is read (its body is not used).
const MAX_ANSWER_BYTES: usize = 4096;

/// Counters and gauges for `/metrics`.
#[derive(Default)]
pub struct LogoutMetrics {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    given_up: AtomicU64,
    pending: AtomicI64,
    retrying: AtomicI64,
    oldest_pending_age: AtomicI64,
    /// The queue's own counts (queued, dropped), read at scrape time.
    queue: std::sync::OnceLock<LogoutQueue>,
}

impl LogoutMetrics {
    /// Writes the back-channel logout series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let (queued, dropped) = self
            .queue
            .get()
            .map_or((0, 0), |q| (q.queued_count(), q.dropped()));
        let counters = [
            (
                "sigil_backchannel_logout_queued_total",
                "Logout tokens queued for delivery by this process.",
                queued,
            ),
            (
                "sigil_backchannel_logout_delivered_total",
                "Logout tokens a client accepted.",
                self.delivered.load(Ordering::Relaxed),
            ),
            (
                "sigil_backchannel_logout_delivery_failures_total",
                "Failed delivery attempts (each retried later or given up).",
                self.failed_attempts.load(Ordering::Relaxed),
            ),
            (
                "sigil_backchannel_logout_given_up_total",
                "Logouts given up: refused by the client, or undelivered for a day.",
                self.given_up.load(Ordering::Relaxed),
            ),
            (
                "sigil_backchannel_logout_dropped_total",
                "Logouts not queued because their client had too many undelivered.",
                dropped,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let gauges = [
            (
                "sigil_backchannel_logout_pending",
                "Logouts in the outbox neither delivered nor given up.",
                &self.pending,
            ),
            (
                "sigil_backchannel_logout_retrying",
                "Pending logouts whose delivery failed at least once.",
                &self.retrying,
            ),
            (
                "sigil_backchannel_logout_oldest_pending_age_seconds",
                "Age of the oldest pending logout (0 when none is).",
                &self.oldest_pending_age,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// What became of one attempt.
enum Outcome {
    Delivered,
    /// Try again later (`error` holds no secret).
    Retry(String),
    /// Give up now.
    Refused(String),
}

/// The delivery worker and what it needs.
pub struct LogoutDeliverer {
    authority: Arc<Authority>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    metrics: Arc<LogoutMetrics>,
}

impl LogoutDeliverer {
    pub fn new(authority: Arc<Authority>, store: Arc<dyn Store>) -> Result<Arc<Self>, String> {
        // No redirects: the registered URI is the only place a token goes.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .user_agent("Sigil back-channel logout")
            .build()
            .map_err(|e| format!("cannot build the logout delivery client: {e}"))?;
        let metrics = Arc::new(LogoutMetrics::default());
        let _ = metrics.queue.set(authority.logout_queue().clone());
        Ok(Arc::new(Self {
            clock: authority.clock(),
            authority,
            store,
            http,
            metrics,
        }))
    }

    pub fn metrics(&self) -> Arc<LogoutMetrics> {
        self.metrics.clone()
    }

    /// Runs the worker until the process ends: a pass whenever a logout is queued in this
    /// process, and every [`POLL_INTERVAL`] otherwise.
    pub fn spawn_worker(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(
            async move {
                loop {
                    let deliverer = self.clone();
                    // Each pass in its own task: a bug that panics ends one pass only.
                    let pass = tokio::spawn(
                        async move { deliverer.deliver_due().await }.in_current_span(),
                    );
                    match pass.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "logout delivery pass failed; trying again shortly");
                            tokio::time::sleep(STORE_RETRY_PAUSE).await;
                        }
                        Err(error) => {
                            tracing::error!(%error, "logout delivery pass stopped");
                            tokio::time::sleep(STORE_RETRY_PAUSE).await;
                        }
                    }
                    self.refresh_gauges().await;
                    tokio::select! {
                        () = self.authority.logout_queue().queued() => {}
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                }
            }
            .instrument(tracing::info_span!("task", task = "backchannel_logout")),
        )
    }

    /// Delivers every logout due now, [`CONCURRENCY`] at a time; returns how many were
    /// delivered.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut in_flight = tokio::task::JoinSet::new();
        let mut delivered = 0;
        loop {
            while in_flight.len() >= CONCURRENCY {
                delivered += joined(in_flight.join_next().await)?;
            }
            let now = self.clock.now();
            let Some(delivery) = self
                .store
                .claim_logout(now, now.saturating_add(LEASE_SECONDS))
                .await?
            else {
                break;
            };
            let deliverer = self.clone();
            in_flight.spawn(async move { deliverer.deliver(delivery).await }.in_current_span());
        }
        while let Some(done) = in_flight.join_next().await {
            delivered += joined(Some(done))?;
        }
        Ok(delivered)
    }

    /// One claimed delivery: sign, POST, record.
    async fn deliver(&self, delivery: LogoutDelivery) -> Result<bool, StoreError> {
        let outcome = self.attempt(&delivery).await;
        let now = self.clock.now();
        let attempt = delivery.attempts + 1;
        match outcome {
            Outcome::Delivered => {
                self.store.mark_logout_delivered(&delivery.id, now).await?;
                self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id = %delivery.id, client = %delivery.client_id, attempt, "logout token delivered");
                Ok(true)
            }
            Outcome::Retry(error) => {
                let next = next_attempt_at(delivery.created_at, attempt, now);
                self.store
                    .mark_logout_failed(&delivery.id, &error, next, now)
                    .await?;
                self.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
                match next {
                    Some(at) => {
                        tracing::warn!(id = %delivery.id, client = %delivery.client_id, attempt, retry_in_seconds = at - now, error, "logout token delivery failed; will try again")
                    }
                    None => {
                        self.metrics.given_up.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(id = %delivery.id, client = %delivery.client_id, attempt, error, "logout token delivery failed for a day; giving it up");
                    }
                }
                Ok(false)
            }
            Outcome::Refused(error) => {
                self.store
                    .mark_logout_failed(&delivery.id, &error, None, now)
                    .await?;
                self.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
                self.metrics.given_up.fetch_add(1, Ordering::Relaxed);
                tracing::error!(id = %delivery.id, client = %delivery.client_id, attempt, error, "logout token refused; giving it up");
                Ok(false)
            }
        }
    }

    async fn attempt(&self, delivery: &LogoutDelivery) -> Outcome {
        let client = match self.authority.find_client(&delivery.client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => return Outcome::Refused("the client is gone".into()),
            Err(error) => {
                return Outcome::Retry(format!("cannot read the client: {}", error.code.as_str()))
            }
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            return Outcome::Refused("the client no longer has a back-channel logout URI".into());
        };
        let token = match self
            .authority
            .sign_logout_token(&client.id, &delivery.subject, delivery.sid.as_deref())
            .await
        {
            Ok(token) => token,
            Err(error) => {
                return Outcome::Retry(format!(
                    "cannot sign the logout token: {}",
                    error.code.as_str()
                ))
            }
        };
        let sent = self
            .http
            .post(&uri)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                // Read (a little of) the answer so the connection can be reused.
                let _ = read_some(response).await;
                if status.is_success() {
                    Outcome::Delivered
                } else if status.is_redirection() {
                    // Redirects are not followed: the registered URI is the only place a
                    // token goes, and one that redirects will not stop doing so.
                    Outcome::Refused(format!(
                        "the client answered {} (a redirect, not followed)",
                        status.as_u16()
                    ))
                } else if status.is_client_error() && !matches!(status.as_u16(), 408 | 429) {
                    Outcome::Refused(format!("the client answered {}", status.as_u16()))
                } else {
                    Outcome::Retry(format!("the client answered {}", status.as_u16()))
                }
            }
            Err(error) if error.is_timeout() => {
                Outcome::Retry(format!("no answer within {}s", DELIVERY_TIMEOUT.as_secs()))
            }
            Err(error) if error.is_connect() => Outcome::Retry("cannot connect".into()),
            Err(_) => Outcome::Retry("the request failed".into()),
        }
    }

    async fn refresh_gauges(&self) {
        match self.store.logout_counts().await {
            Ok(counts) => {
                let age = counts
                    .oldest_pending_at
                    .map(|at| self.clock.now() - at)
                    .unwrap_or(0);
                self.metrics
                    .pending
                    .store(counts.pending, Ordering::Relaxed);
                self.metrics
                    .retrying
                    .store(counts.retrying, Ordering::Relaxed);
                self.metrics
                    .oldest_pending_age
                    .store(age.max(0), Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(%error, "cannot read the logout outbox counts"),
        }
    }
}

/// A finished delivery task's count (1 delivered, 0 not); a panicked task counts 0.
fn joined(
    done: Option<Result<Result<bool, StoreError>, tokio::task::JoinError>>,
) -> Result<usize, StoreError> {
    match done {
        Some(Ok(Ok(delivered))) => Ok(usize::from(delivered)),
        Some(Ok(Err(error))) => Err(error),
        Some(Err(error)) => {
            tracing::error!(%error, "a logout delivery stopped");
            Ok(0)
        }
        None => Ok(0),
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body.
async fn read_some(mut response: reqwest::Response) -> usize {
    let mut read = 0;
    while read < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    read
}
