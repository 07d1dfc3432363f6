//! Prometheus metrics, kept in memory and rendered as text at `GET /metrics`: requests by
//! route and status with latency histograms, tokens issued by grant type, sign-in
//! outcomes, throttled requests, refresh-token reuse, the password-hash queue, the
//! database pool and mail (messages by kind and outcome, the outbox). Routes are labelled by their pattern (`/admin/users/{id}`), never by the
//! raw path, so the number of series stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// The grant types a token can be issued under, in a fixed order.
pub const GRANTS: [&str; 4] = [
    "authorization_code",
    "client_credentials",
    "password",
    "refresh_token",
];

/// What is known of one route pattern.
#[derive(Default)]
struct RouteStats {
    /// (method, status) -> count
    responses: BTreeMap<(String, u16), u64>,
    latency: Histogram,
}

/// The server's metrics. One per process; shared through `AppState`.
#[derive(Default)]
pub struct Metrics {
    /// route pattern -> its counts and latencies, under one lock taken once per request
    routes: Mutex<BTreeMap<String, RouteStats>>,
    tokens_issued: [AtomicU64; GRANTS.len()],
    throttled: AtomicU64,
    /// The mailer's counters, once `sigil serve` has attached them.
    mail: OnceLock<Arc<MailMetrics>>,
    /// The back-channel logout worker's counters, once attached.
    logouts: OnceLock<Arc<crate::backchannel::LogoutMetrics>>,
}

/// The kinds of message Sigil sends (`MailKind::name`), in a fixed order.
pub const MAIL_KINDS: [&str; 7] = [
    "account_exists",
    "confirm_new_email",
    "email_changed",
    "invitation",
    "password_changed",
    "password_reset",
    "verify_email",
];

/// Mail counters by kind, kept by the mailer, and the outbox gauges its worker refreshes
/// on every pass.
#[derive(Default)]
pub struct MailMetrics {
    queued: [AtomicU64; MAIL_KINDS.len()],
    sent: [AtomicU64; MAIL_KINDS.len()],
    failed_attempts: [AtomicU64; MAIL_KINDS.len()],
    given_up: [AtomicU64; MAIL_KINDS.len()],
    outbox_pending: AtomicI64,
    outbox_retrying: AtomicI64,
    oldest_pending_age: AtomicI64,
}

/// What happened to a message, for [`MailMetrics::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailEvent {
    Queued,
    Sent,
    FailedAttempt,
    GaveUp,
}

impl MailMetrics {
    /// Counts one event for a message of `kind`; an unknown kind is not counted.
    pub fn count(&self, event: MailEvent, kind: &str) {
        let Some(i) = MAIL_KINDS.iter().position(|k| *k == kind) else {
            return;
        };
        let counters = match event {
            MailEvent::Queued => &self.queued,
            MailEvent::Sent => &self.sent,
            MailEvent::FailedAttempt => &self.failed_attempts,
            MailEvent::GaveUp => &self.given_up,
        };
        counters[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The outbox as the worker last read it: pending and retrying messages, and the age
    /// in seconds of the oldest pending one (0 when none is).
    pub fn set_outbox(&self, pending: i64, retrying: i64, oldest_pending_age: i64) {
        self.outbox_pending.store(pending, Ordering::Relaxed);
        self.outbox_retrying.store(retrying, Ordering::Relaxed);
        self.oldest_pending_age
            .store(oldest_pending_age.max(0), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let families = [
            (
                "sigil_mail_queued_total",
                "Messages queued in the outbox, by kind.",
                &self.queued,
            ),
            (
                "sigil_mail_sent_total",
                "Messages delivered, by kind.",
                &self.sent,
            ),
            (
                "sigil_mail_delivery_failures_total",
                "Failed delivery attempts (each retried later or given up), by kind.",
                &self.failed_attempts,
            ),
            (
                "sigil_mail_given_up_total",
                "Messages given up after their last attempt or a permanent refusal, by kind.",
                &self.given_up,
            ),
        ];
        for (name, help, counters) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (i, kind) in MAIL_KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{kind}\"}} {}",
                    counters[i].load(Ordering::Relaxed)
                );
            }
        }
        let gauges = [
            (
                "sigil_mail_outbox_pending",
                "Messages in the outbox neither sent nor given up.",
                &self.outbox_pending,
            ),
            (
                "sigil_mail_outbox_retrying",
                "Pending messages whose delivery failed at least once.",
                &self.outbox_retrying,
            ),
            (
                "sigil_mail_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending message (0 when none is).",
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

/// Values read from elsewhere at scrape time.
pub struct Gauges {
    pub sign_in_successes: u64,
    pub sign_in_failures: u64,
    pub refresh_reuse_detected: u64,
    pub password_queue_depth: usize,
    pub db_connections_open: u32,
    pub db_connections_idle: usize,
    pub db_connections_max: u32,
    pub signing_keys: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Escapes a label value (Prometheus text format 0.0.4).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one finished request. 429s, and 503s that carry `Retry-After` (a full
    /// password pool), count as throttled.
    pub fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        seconds: f64,
        throttled: bool,
    ) {
        let mut routes = lock(&self.routes);
        // Strings are allocated only the first time a route or a (method, status) is seen.
        if !routes.contains_key(route) {
            routes.insert(route.to_string(), RouteStats::default());
        }
        if let Some(stats) = routes.get_mut(route) {
            match stats
                .responses
                .iter_mut()
                .find(|((m, s), _)| m == method && *s == status)
            {
                Some((_, count)) => *count += 1,
                None => {
                    stats.responses.insert((method.to_string(), status), 1);
                }
            }
            stats.latency.observe(seconds);
        }
        drop(routes);
        if throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Serves the mailer's counters at /metrics from now on (once; later calls are ignored).
    pub fn attach_mail(&self, mail: Arc<MailMetrics>) {
        let _ = self.mail.set(mail);
    }

    /// Serves the back-channel logout counters at /metrics from now on (once).
    pub fn attach_logouts(&self, logouts: Arc<crate::backchannel::LogoutMetrics>) {
        let _ = self.logouts.set(logouts);
    }

    pub fn token_issued(&self, grant: &str) {
        if let Some(i) = GRANTS.iter().position(|g| *g == grant) {
            self.tokens_issued[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let _ = writeln!(
            out,
            "# HELP sigil_http_requests_total HTTP requests by route pattern, method and status."
        );
        let _ = writeln!(out, "# TYPE sigil_http_requests_total counter");
        let routes = lock(&self.routes);
        for (route, stats) in routes.iter() {
            for ((method, status), count) in &stats.responses {
                let _ = writeln!(
                    out,
                    "sigil_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                    label(route),
                    label(method)
                );
            }
        }
        let _ = writeln!(out, "# HELP sigil_http_request_duration_seconds Time to answer a request, by route pattern.");
        let _ = writeln!(out, "# TYPE sigil_http_request_duration_seconds histogram");
        for (route, stats) in routes.iter() {
            let histogram = &stats.latency;
            let route = label(route);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += histogram.counts[i];
                let _ = writeln!(
                    out,
                    "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.counts[BUCKETS.len()];
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum
            );
            let _ = writeln!(
                out,
                "sigil_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        drop(routes);
        let _ = writeln!(
            out,
            "# HELP sigil_tokens_issued_total Successful token responses by grant type."
        );
        let _ = writeln!(out, "# TYPE sigil_tokens_issued_total counter");
        for (i, grant) in GRANTS.iter().enumerate() {
            let _ = writeln!(
                out,
                "sigil_tokens_issued_total{{grant_type=\"{grant}\"}} {}",
                self.tokens_issued[i].load(Ordering::Relaxed)
            );
        }
        let counters = [
            (
                "sigil_sign_in_successes_total",
                "Successful sign-ins (sign-in page and password grant).",
                gauges.sign_in_successes,
            ),
            (
                "sigil_sign_in_failures_total",
                "Failed sign-ins (sign-in page and password grant).",
                gauges.sign_in_failures,
            ),
            (
                "sigil_throttled_requests_total",
                "Requests refused with 429, or 503 with Retry-After (password pool full).",
                self.throttled.load(Ordering::Relaxed),
            ),
            (
                "sigil_refresh_token_reuse_detected_total",
                "Rotated refresh tokens presented again; each revoked its family.",
                gauges.refresh_reuse_detected,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let gauge_values = [
            (
                "sigil_password_hash_queue_depth",
                "Password hashes running or waiting for a worker.",
                gauges.password_queue_depth as u64,
            ),
            (
                "sigil_db_pool_connections",
                "Open database connections.",
                u64::from(gauges.db_connections_open),
            ),
            (
                "sigil_db_pool_idle_connections",
                "Idle database connections.",
                gauges.db_connections_idle as u64,
            ),
            (
                "sigil_db_pool_max_connections",
                "Largest allowed database pool.",
                u64::from(gauges.db_connections_max),
            ),
            (
                "sigil_signing_keys",
                "Published signing keys.",
                gauges.signing_keys as u64,
            ),
        ];
        for (name, help, value) in gauge_values {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(mail) = self.mail.get() {
            mail.render(&mut out);
        }
        if let Some(logouts) = self.logouts.get() {
            logouts.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::new();
        metrics.observe_request("/token", "POST", 200, 0.003, false);
        metrics.observe_request("/token", "POST", 200, 0.2, false);
        metrics.observe_request("/token", "POST", 503, 20.0, true);
        metrics.observe_request("/we\"ird", "GET", 404, 0.0001, false);
        metrics.token_issued("password");
        metrics.token_issued("nonsense");
        let text = metrics.render(&Gauges {
            sign_in_successes: 1,
            sign_in_failures: 2,
            refresh_reuse_detected: 3,
            password_queue_depth: 4,
            db_connections_open: 5,
            db_connections_idle: 6,
            db_connections_max: 7,
            signing_keys: 8,
        });
        assert!(text.contains(
            "sigil_http_requests_total{route=\"/token\",method=\"POST\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "sigil_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "sigil_http_request_duration_seconds_bucket{route=\"/token\",le=\"0.25\"} 2"
        ));
        assert!(text.contains(
            "sigil_http_request_duration_seconds_bucket{route=\"/token\",le=\"+Inf\"} 3"
        ));
        assert!(text.contains("sigil_http_request_duration_seconds_count{route=\"/token\"} 3"));
        assert!(text.contains("route=\"/we\\\"ird\""));
        assert!(text.contains("sigil_tokens_issued_total{grant_type=\"password\"} 1"));
        assert!(text.contains("sigil_throttled_requests_total 1"));
        assert!(text.contains("sigil_db_pool_max_connections 7"));
        assert!(
            !text.contains("sigil_mail_"),
            "no mail series until attached"
        );
    }

    #[test]
    fn mail_counters_by_kind_and_outbox_gauges() {
        let metrics = Metrics::new();
        let mail = Arc::new(MailMetrics::default());
        metrics.attach_mail(mail.clone());
        mail.count(MailEvent::Queued, "verify_email");
        mail.count(MailEvent::Queued, "verify_email");
        mail.count(MailEvent::Sent, "verify_email");
        mail.count(MailEvent::FailedAttempt, "password_reset");
        mail.count(MailEvent::GaveUp, "invitation");
        mail.count(MailEvent::Sent, "no_such_kind");
        mail.set_outbox(3, 1, 42);
        let text = metrics.render(&Gauges {
            sign_in_successes: 0,
            sign_in_failures: 0,
            refresh_reuse_detected: 0,
            password_queue_depth: 0,
            db_connections_open: 0,
            db_connections_idle: 0,
            db_connections_max: 0,
            signing_keys: 0,
        });
        assert!(text.contains("sigil_mail_queued_total{kind=\"verify_email\"} 2\n"));
        assert!(text.contains("sigil_mail_sent_total{kind=\"verify_email\"} 1\n"));
        assert!(text.contains("sigil_mail_sent_total{kind=\"invitation\"} 0\n"));
        assert!(text.contains("sigil_mail_delivery_failures_total{kind=\"password_reset\"} 1\n"));
        assert!(text.contains("sigil_mail_given_up_total{kind=\"invitation\"} 1\n"));
        assert!(
            text.contains("# TYPE sigil_mail_outbox_pending gauge\nsigil_mail_outbox_pending 3\n")
        );
        assert!(text.contains("sigil_mail_outbox_retrying 1\n"));
        assert!(text.contains("sigil_mail_outbox_oldest_pending_age_seconds 42\n"));
    }
}
