//! Mail: rendering Sigil's messages, the durable outbox, and delivery (SMTP through lettre,
//! or `.eml` files when no SMTP server is configured).
//!
//! `queue` renders a message (`render.rs`), seals it under the mail key (`seal.rs`) and
//! stores it in the outbox, then wakes the worker; the worker (on every replica, and one
//! pass in the commands that mail) claims due messages, delivers them (`transport.rs`) and
//! marks each sent, or failed with a next attempt (`retry.rs`) or given up. A message is
//! delivered at least once: a process that dies between delivering and marking sends it
//! again after the claim's lease. Logs name a message by id and kind, never by its body
//! or link.

mod render;
mod retry;
mod seal;
mod transport;

pub use render::{render, subject, Letterhead, RenderError, Rendered};
pub use retry::next_attempt_at;
pub use seal::{MailKey, SealError, MAIL_KEY_FILE};
pub use transport::{write_eml, DeliveryError, Security, SmtpUrl, Transport};

use crate::metrics::{MailEvent, MailMetrics};
use async_trait::async_trait;
use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use sigil_core::clock::Clock;
use sigil_core::mail::{Mail, MailQueue};
use sigil_core::store::{OutboxMessage, Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a claimed message stays with the worker that claimed it; another replica may
/// take it over after that (the worker died).
const LEASE_SECONDS: i64 = 300;
/// The longest one delivery may take; shorter than the lease.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the worker looks for due messages when nothing wakes it: messages queued by
/// another replica or a command, and retries that have come due.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The pause after a pass that failed on the database.
const STORE_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// The mail options of `sigil serve` (and of the commands that send mail).
#[derive(Debug, Clone, clap::Args)]
pub struct MailArgs {
    /// SMTP server for Sigil's mail: smtp://HOST:PORT (plain, for loopback only),
    /// smtp+starttls://HOST:PORT or smtps://HOST:PORT, credentials as USER:PASSWORD@ in
    /// the URL. Without it, each message is written as a .eml file under --mail-dir.
    #[arg(long, env = "SIGIL_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Where messages are written when no SMTP server is configured.
    #[arg(long, env = "SIGIL_MAIL_DIR", default_value = "data/mail")]
    pub mail_dir: PathBuf,

    /// Sender of Sigil's messages.
    #[arg(
        long,
        env = "SIGIL_MAIL_FROM",
        default_value = "Sigil <sigil@localhost>"
    )]
    pub mail_from: String,
}

/// Renders, seals, queues and delivers Sigil's mail.
pub struct Mailer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    letterhead: Letterhead,
    sender: Address,
    key: MailKey,
    transport: Transport,
    wake: Notify,
    metrics: Arc<MailMetrics>,
}

impl Mailer {
    /// Opens the mailer: the transport from `args`, the sealing key from `keys_dir`
    /// (generated on first use).
    pub fn open(
        args: &MailArgs,
        keys_dir: &Path,
        issuer: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, String> {
        let from: Mailbox = args.mail_from.parse().map_err(|e| {
            format!(
                "--mail-from {:?} is not a mail address (`Name <user@example.com>` or `user@example.com`): {e}",
                args.mail_from
            )
        })?;
        let issuer = issuer.trim_end_matches('/').to_string();
        let host = url::Url::parse(&issuer)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_else(|| "localhost".into());
        let transport = Transport::open(
            args.smtp_url.as_deref(),
            &args.mail_dir,
            host.trim_start_matches('[').trim_end_matches(']'),
        )?;
        let key = MailKey::load_or_create(keys_dir)?;
        Ok(Arc::new(Self {
            store,
            clock,
            sender: from.email.clone(),
            letterhead: Letterhead {
                from,
                issuer,
                message_id_domain: host,
            },
            key,
            transport,
            wake: Notify::new(),
            metrics: Arc::new(MailMetrics::default()),
        }))
    }

    /// One line for the start-up output: where mail goes.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// The mailer's counters, for `/metrics`.
    pub fn metrics(&self) -> Arc<MailMetrics> {
        self.metrics.clone()
    }

    /// Runs the delivery worker until the process ends: a pass over the due messages
    /// whenever a message is queued here, and every few seconds for the rest. A pass that
    /// fails (the database is away) is logged and tried again after a pause.
    pub fn spawn_worker(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        use tracing::Instrument;
        tokio::spawn(
            async move {
                loop {
                    // Each pass in its own task: even a bug that panics ends one pass, not
                    // the worker.
                    let mailer = self.clone();
                    match tokio::spawn(async move { mailer.deliver_due().await }.in_current_span()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "mail delivery pass failed; trying again shortly");
                            tokio::time::sleep(STORE_RETRY_PAUSE).await;
                        }
                        Err(error) => {
                            tracing::error!(%error, "mail delivery pass stopped");
                            tokio::time::sleep(STORE_RETRY_PAUSE).await;
                        }
                    }
                    self.refresh_outbox_gauges().await;
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                    }
                }
            }
            .instrument(tracing::info_span!("task", task = "mail")),
        )
    }

    /// Delivers every message that is due now, once each; returns how many were sent.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let mut sent = 0;
        loop {
            let now = self.clock.now();
            let Some(message) = self
                .store
                .claim_mail(now, now.saturating_add(LEASE_SECONDS))
                .await?
            else {
                return Ok(sent);
            };
            if self.deliver(&message).await? {
                sent += 1;
            }
        }
    }

    /// Delivers one claimed message and records the outcome. Returns whether it was sent.
    async fn deliver(&self, message: &OutboxMessage) -> Result<bool, StoreError> {
        let envelope = message
            .recipient
            .parse::<Address>()
            .ok()
            .and_then(|to| Envelope::new(Some(self.sender.clone()), vec![to]).ok());
        let envelope = match envelope {
            Some(envelope) => envelope,
            None => {
                return self
                    .failed(message, "the recipient is not a valid mail address", true)
                    .await
            }
        };
        let formatted = match self.key.open(&message.id, &message.sealed) {
            Ok(formatted) => formatted,
            Err(error) => return self.failed(message, &error.to_string(), false).await,
        };
        let delivery = self.transport.deliver(&message.id, &envelope, formatted);
        match tokio::time::timeout(DELIVERY_TIMEOUT, delivery).await {
            Ok(Ok(())) => {
                self.store
                    .mark_mail_sent(&message.id, self.clock.now())
                    .await?;
                self.metrics.count(MailEvent::Sent, &message.kind);
                tracing::info!(id = %message.id, kind = %message.kind, attempt = message.attempts + 1, "mail sent");
                Ok(true)
            }
            Ok(Err(error)) => {
                self.failed(message, &error.message, error.is_permanent)
                    .await
            }
            Err(_) => {
                let error = format!("delivery took longer than {}s", DELIVERY_TIMEOUT.as_secs());
                self.failed(message, &error, false).await
            }
        }
    }

    /// Records a failed attempt: retried later, or given up when `is_permanent` or when the
    /// message is too old. `error` is the transport's text, never the message.
    async fn failed(
        &self,
        message: &OutboxMessage,
        error: &str,
        is_permanent: bool,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let attempt = message.attempts + 1;
        let next = if is_permanent {
            None
        } else {
            next_attempt_at(message.created_at, attempt, now)
        };
        self.store
            .mark_mail_failed(&message.id, error, next, now)
            .await?;
        self.metrics.count(MailEvent::FailedAttempt, &message.kind);
        match next {
            Some(at) => tracing::warn!(
                id = %message.id,
                kind = %message.kind,
                attempt,
                retry_in_seconds = at - now,
                error,
                "mail delivery failed; will try again"
            ),
            None => {
                self.metrics.count(MailEvent::GaveUp, &message.kind);
                tracing::error!(
                    id = %message.id,
                    kind = %message.kind,
                    attempt,
                    error,
                    "mail delivery failed; giving the message up"
                );
            }
        }
        Ok(false)
    }

    async fn refresh_outbox_gauges(&self) {
        match self.store.outbox_counts().await {
            Ok(counts) => {
                let age = counts
                    .oldest_pending_at
                    .map(|at| self.clock.now() - at)
                    .unwrap_or(0);
                self.metrics
                    .set_outbox(counts.pending, counts.retrying, age);
            }
            Err(error) => tracing::debug!(%error, "cannot read the outbox counts"),
        }
    }
}

#[async_trait]
impl MailQueue for Mailer {
    /// Renders and seals the message, stores it in the outbox and wakes the worker. Returns
    /// once the message is stored, without waiting for its delivery.
    async fn queue(&self, mail: Mail) -> Result<(), StoreError> {
        let id = sigil_core::secret::random_token(16);
        let kind = mail.kind.name();
        let now = self.clock.now();
        let formatted = self
            .letterhead
            .format(&id, &mail, now)
            .map_err(|e| StoreError::Other(format!("cannot render the {kind} message: {e}")))?;
        let sealed = self
            .key
            .seal(&id, &formatted)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let message = OutboxMessage {
            id,
            recipient: mail.to,
            kind: kind.to_string(),
            sealed,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            given_up_at: None,
        };
        self.store.enqueue_mail(&message).await?;
        self.metrics.count(MailEvent::Queued, kind);
        tracing::info!(id = %message.id, kind = %kind, "mail queued");
        self.wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
