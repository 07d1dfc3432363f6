//! Mail: rendering Sigil's messages, the durable outbox, and delivery (SMTP through lettre,
//! or `.eml` files when no SMTP server is configured).
//!
//! PLACEHOLDER: the interface is final; the bodies are filled in by the mail work.

use async_trait::async_trait;
use sigil_core::clock::Clock;
use sigil_core::mail::{Mail, MailQueue};
use sigil_core::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    #[allow(dead_code)]
    clock: Arc<dyn Clock>,
}

impl Mailer {
    /// Opens the mailer: the transport from `args`, the sealing key from `keys_dir`
    /// (generated on first use).
    pub fn open(
        _args: &MailArgs,
        _keys_dir: &Path,
        _issuer: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self { store, clock }))
    }

    /// One line for the start-up output: where mail goes.
    pub fn describe(&self) -> String {
        "mail: not built yet".into()
    }

    /// Runs the delivery worker until the process ends.
    pub fn spawn_worker(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {})
    }

    /// Delivers every message that is due now, once each; returns how many were sent.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let _ = &self.store;
        Ok(0)
    }
}

#[async_trait]
impl MailQueue for Mailer {
    async fn queue(&self, _mail: Mail) -> Result<(), StoreError> {
        Err(StoreError::Other("mail is not built yet".into()))
    }
}
