//! Mail end to end: the mailer on a real SQLite store delivering to a real SMTP server
//! (aiosmtpd, Debian's python3-aiosmtpd, writing a Maildir), an SMTP outage that loses
//! nothing, the `.eml` transport, and an outbox that never holds a link token in clear.
//!
//! Without aiosmtpd the SMTP tests print a notice and pass, except under CI=true, where
//! they fail. The interpreter is `SIGIL_TEST_SMTP_PYTHON` (default `/usr/bin/python3`).

use sigil_core::clock::{Clock, FixedClock, SystemClock};
use sigil_core::mail::{Link, Mail, MailKind, MailQueue};
use sigil_core::secret::random_token;
use sigil_core::store::OutboxMessage;
use sigil_server::mail::{MailArgs, Mailer};
use sigil_server::store::{Database, DatabaseOptions};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "http://sigil.test";

/// A running aiosmtpd that stores what it receives in a Maildir; stopped on drop.
struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("SIGIL_TEST_SMTP_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

/// Whether aiosmtpd can run here; without it the test is skipped, except under CI.
fn has_aiosmtpd(test: &str) -> bool {
    let found = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: aiosmtpd is missing (apt-get install python3-aiosmtpd), and CI=true requires it");
        }
        eprintln!("{test}: skipped: aiosmtpd is missing (apt-get install python3-aiosmtpd)");
    }
    found
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Starts aiosmtpd on `port` and waits until it accepts connections.
fn start_smtp(port: u16, dir: &Path) -> SmtpServer {
    let maildir = dir.join(format!("maildir-{port}"));
    let child = Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    let mut server = SmtpServer { child, maildir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("aiosmtpd exited: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

impl SmtpServer {
    /// The messages received so far (a Maildir's `new/`).
    fn received(&self) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| std::fs::read(e.path()).expect("read message"))
            .collect()
    }

    /// Waits (polling) until `count` messages have arrived.
    fn wait_for(&self, count: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages arrived",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A SQLite database in a temporary directory, opened (and migrated) as the server does,
/// with a keys directory beside it.
struct Setup {
    dir: tempfile::TempDir,
    database: Database,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/sigil.db", dir.path().display());
        let database = Database::open(&url, &DatabaseOptions::default())
            .await
            .expect("open database");
        Self { dir, database }
    }

    fn mailer(&self, smtp_url: Option<String>, clock: Arc<dyn Clock>) -> Arc<Mailer> {
        let args = MailArgs {
            smtp_url,
            mail_dir: self.mail_dir(),
            mail_from: "Sigil <sigil@sigil.test>".into(),
        };
        Mailer::open(
            &args,
            &self.dir.path().join("keys"),
            ISSUER,
            self.database.store(),
            clock,
        )
        .expect("mailer")
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    async fn outbox(&self) -> Vec<OutboxMessage> {
        self.database
            .store()
            .list_outbox(None, 100)
            .await
            .expect("list outbox")
    }

    /// Every byte of the database files, for "the token is nowhere in clear".
    fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["sigil.db", "sigil.db-wal"] {
            if let Ok(file) = std::fs::read(self.dir.path().join(name)) {
                bytes.extend(file);
            }
        }
        bytes
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A verification message with a fresh token; returns it with the token.
fn verification(to: &str) -> (Mail, String) {
    let token = random_token(32);
    let mail = Mail {
        to: to.into(),
        kind: MailKind::VerifyEmail {
            username: "ann".into(),
            link: Link::new(format!("{ISSUER}/verify-email?token={token}")),
            hours: 24,
        },
    };
    (mail, token)
}

/// The decoded plain-text and HTML bodies of a multipart/alternative message.
fn bodies(message: &mailparse::ParsedMail<'_>) -> (String, String) {
    assert_eq!(message.ctype.mimetype, "multipart/alternative");
    let part = |mime: &str| {
        message
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .unwrap_or_else(|| panic!("no {mime} part"))
            .get_body()
            .expect("decoded body")
    };
    (part("text/plain"), part("text/html"))
}

fn header(message: &mailparse::ParsedMail<'_>, name: &str) -> String {
    use mailparse::MailHeaderMap;
    message
        .headers
        .get_first_value(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_arrives_at_the_smtp_server() {
    if !has_aiosmtpd("a_queued_message_arrives_at_the_smtp_server") {
        return;
    }
    let setup = Setup::new().await;
    let port = free_port();
    let smtp = start_smtp(port, setup.dir.path());
    let mailer = setup.mailer(
        Some(format!("smtp://127.0.0.1:{port}")),
        Arc::new(SystemClock),
    );
    assert!(mailer.describe().contains(&format!("127.0.0.1:{port}")));
    let worker = mailer.clone().spawn_worker();
    let (mail, token) = verification("ann@example.com");
    mailer.queue(mail).await.expect("queued");
    let queued = setup.outbox().await;
    assert_eq!(queued.len(), 1);
    assert!(!queued[0].sealed.is_empty());
    assert!(!queued[0].sealed.contains(&token), "sealed in the outbox");

    let received = tokio::task::spawn_blocking(move || {
        let received = smtp.wait_for(1);
        (smtp, received)
    })
    .await
    .expect("wait");
    let (_smtp, received) = received;
    assert_eq!(received.len(), 1);
    let message = mailparse::parse_mail(&received[0]).expect("RFC 5322");
    assert_eq!(header(&message, "To"), "ann@example.com");
    assert_eq!(header(&message, "Subject"), "Confirm your e-mail address");
    assert_eq!(header(&message, "From"), "Sigil <sigil@sigil.test>");
    let link = format!("{ISSUER}/verify-email?token={token}");
    let (text, html) = bodies(&message);
    assert!(text.contains(&link), "{text}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    // Marked sent, the sealed copy cleared, and the token nowhere in the database files.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = setup.outbox().await.remove(0);
        if row.sent_at.is_some() {
            assert!(row.sealed.is_empty());
            assert_eq!(row.attempts, 1);
            break;
        }
        assert!(Instant::now() < deadline, "not marked sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    assert!(!contains(&setup.database_bytes(), &token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_loses_nothing_and_delivers_once() {
    if !has_aiosmtpd("an_smtp_outage_loses_nothing_and_delivers_once") {
        return;
    }
    let setup = Setup::new().await;
    let port = free_port();
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let mailer = setup.mailer(Some(format!("smtp://127.0.0.1:{port}")), clock.clone());
    let (mail, token) = verification("bob@example.com");
    mailer.queue(mail).await.expect("queued while SMTP is down");

    assert_eq!(mailer.deliver_due().await.expect("pass"), 0);
    let row = setup.outbox().await.remove(0);
    assert_eq!(row.attempts, 1);
    assert!(row.next_attempt_at > clock.now(), "retried later");
    assert!(row.sent_at.is_none() && row.given_up_at.is_none());
    assert!(!row.sealed.is_empty(), "kept for the retry");
    let error = row.last_error.expect("the error is recorded");
    assert!(!error.contains(&token), "{error}");
    assert!(!contains(&setup.database_bytes(), &token));

    let smtp = start_smtp(port, setup.dir.path());
    assert_eq!(mailer.deliver_due().await.expect("pass"), 0, "not due yet");
    clock.set(row.next_attempt_at);
    assert_eq!(mailer.deliver_due().await.expect("pass"), 1);
    assert_eq!(mailer.deliver_due().await.expect("pass"), 0, "only once");
    clock.advance(3600);
    assert_eq!(mailer.deliver_due().await.expect("pass"), 0, "only once");

    let received = smtp.wait_for(1);
    assert_eq!(received.len(), 1, "delivered exactly once");
    let message = mailparse::parse_mail(&received[0]).expect("RFC 5322");
    assert_eq!(header(&message, "To"), "bob@example.com");
    let (text, _) = bodies(&message);
    assert!(text.contains(&token));
    let row = setup.outbox().await.remove(0);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.sent_at, Some(clock.now() - 3600));
    assert!(row.sealed.is_empty());
    assert!(row.last_error.is_none());
}

#[tokio::test]
async fn without_smtp_each_message_is_a_private_eml_file() {
    let setup = Setup::new().await;
    let mailer = setup.mailer(None, Arc::new(SystemClock));
    assert_eq!(
        mailer.describe(),
        format!(
            "mail: no SMTP configured: messages are written as .eml files under {}",
            setup.mail_dir().display()
        )
    );
    let (mail, token) = verification("carol@example.com");
    mailer.queue(mail).await.expect("queued");
    let row = setup.outbox().await.remove(0);
    assert!(!row.sealed.contains(&token));
    assert!(!contains(&setup.database_bytes(), &token));
    assert_eq!(mailer.deliver_due().await.expect("pass"), 1);

    let dir = setup.mail_dir();
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("mail dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files, vec![dir.join(format!("{}.eml", row.id))]);
    assert_eq!(mode(&files[0]), 0o600);
    let bytes = std::fs::read(&files[0]).expect("read");
    let message = mailparse::parse_mail(&bytes).expect("RFC 5322");
    assert_eq!(header(&message, "To"), "carol@example.com");
    assert_eq!(header(&message, "Subject"), "Confirm your e-mail address");
    assert!(header(&message, "Message-ID").contains(&row.id));
    assert!(!header(&message, "Date").is_empty());
    let (text, html) = bodies(&message);
    assert!(text.contains(&token) && html.contains(&token));

    let row = setup.outbox().await.remove(0);
    assert!(row.sent_at.is_some());
    assert!(row.sealed.is_empty(), "cleared after delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_never_skipped() {
    if !has_aiosmtpd("starttls_is_required_never_skipped") {
        return;
    }
    // aiosmtpd without a certificate offers no STARTTLS: smtp+starttls:// must not fall
    // back to plain, and the message must wait in the outbox.
    let setup = Setup::new().await;
    let port = free_port();
    let smtp = start_smtp(port, setup.dir.path());
    let mailer = setup.mailer(
        Some(format!("smtp+starttls://127.0.0.1:{port}")),
        Arc::new(SystemClock),
    );
    let (mail, _) = verification("dan@example.com");
    mailer.queue(mail).await.expect("queued");
    assert_eq!(mailer.deliver_due().await.expect("pass"), 0);
    let row = setup.outbox().await.remove(0);
    assert_eq!(row.attempts, 1);
    assert!(row.sent_at.is_none() && row.given_up_at.is_none());
    assert!(!row.sealed.is_empty());
    assert!(smtp.received().is_empty(), "nothing sent in clear");
}
