//! The mailer on the in-memory store and a fixed clock: queueing seals, the `.eml`
//! transport delivers, a refused connection is retried with backoff.

use super::*;
use sigil_core::clock::FixedClock;
use sigil_core::mail::{Link, MailKind};
use sigil_core::store::memory::MemoryStore;
use sigil_core::store::MailOutbox;

const TOKEN: &str = "tok_SECRET_abc123";

fn args(smtp_url: Option<String>, mail_dir: &Path) -> MailArgs {
    MailArgs {
        smtp_url,
        mail_dir: mail_dir.to_path_buf(),
        mail_from: "Sigil <sigil@example.com>".into(),
    }
}

fn verification() -> Mail {
    Mail {
        to: "ann@example.com".into(),
        kind: MailKind::VerifyEmail {
            username: "ann".into(),
            link: Link::new(format!("https://id.example.com/verify-email?token={TOKEN}")),
            hours: 24,
        },
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    mail_dir: PathBuf,
    store: Arc<MemoryStore>,
    clock: Arc<FixedClock>,
    mailer: Arc<Mailer>,
}

fn setup(smtp_url: Option<String>) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mail_dir = tmp.path().join("mail");
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let mailer = Mailer::open(
        &args(smtp_url, &mail_dir),
        &tmp.path().join("keys"),
        "https://id.example.com/",
        store.clone(),
        clock.clone(),
    )
    .expect("mailer");
    Setup {
        _tmp: tmp,
        mail_dir,
        store,
        clock,
        mailer,
    }
}

async fn only_message(store: &MemoryStore) -> OutboxMessage {
    let mut all = store.list_outbox(None, 10).await.expect("list");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

#[tokio::test]
async fn a_queued_message_is_sealed_then_written_as_a_file() {
    let s = setup(None);
    s.mailer.queue(verification()).await.expect("queued");
    let queued = only_message(&s.store).await;
    assert_eq!(queued.kind, "verify_email");
    assert_eq!(queued.recipient, "ann@example.com");
    assert!(!queued.sealed.is_empty());
    assert!(!queued.sealed.contains(TOKEN));
    assert!(!s.mail_dir.exists(), "nothing is written before delivery");

    assert_eq!(s.mailer.deliver_due().await.expect("pass"), 1);
    let sent = only_message(&s.store).await;
    assert_eq!(sent.sent_at, Some(s.clock.now()));
    assert!(sent.sealed.is_empty(), "cleared once sent");
    let file = s.mail_dir.join(format!("{}.eml", queued.id));
    let text = std::fs::read_to_string(&file).expect("eml");
    assert!(text.contains("To: ann@example.com\r\n"));
    assert!(text.contains("Subject: Confirm your e-mail address\r\n"));
    assert_eq!(s.mailer.deliver_due().await.expect("pass"), 0, "sent once");
}

#[tokio::test]
async fn a_refused_connection_is_retried_later_with_backoff() {
    // A port nothing listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let s = setup(Some(format!("smtp://127.0.0.1:{port}")));
    assert_eq!(
        s.mailer.describe(),
        format!("mail: sent by SMTP to 127.0.0.1:{port} (plain SMTP, no TLS)")
    );
    s.mailer.queue(verification()).await.expect("queued");
    let start = s.clock.now();
    assert_eq!(s.mailer.deliver_due().await.expect("pass"), 0);
    let first = only_message(&s.store).await;
    assert_eq!(first.attempts, 1);
    assert_eq!(first.next_attempt_at, start + 30);
    assert!(first
        .last_error
        .as_deref()
        .is_some_and(|e| !e.contains(TOKEN)));
    assert!(!first.sealed.is_empty(), "kept for the next attempt");

    assert_eq!(
        s.mailer.deliver_due().await.expect("pass"),
        0,
        "not due yet"
    );
    assert_eq!(only_message(&s.store).await.attempts, 1);

    s.clock.advance(30);
    assert_eq!(s.mailer.deliver_due().await.expect("pass"), 0);
    let second = only_message(&s.store).await;
    assert_eq!(second.attempts, 2);
    assert_eq!(second.next_attempt_at, start + 30 + 60);

    s.clock.advance(retry::GIVE_UP_AFTER_SECONDS);
    assert_eq!(s.mailer.deliver_due().await.expect("pass"), 0);
    let given_up = only_message(&s.store).await;
    assert!(given_up.given_up_at.is_some());
    assert!(given_up.sealed.is_empty());
}

#[tokio::test]
async fn the_worker_delivers_within_moments_of_queueing() {
    let s = setup(None);
    let worker = s.mailer.clone().spawn_worker();
    // Let the worker's first (empty) pass finish, so the message is not simply caught by it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.mailer.queue(verification()).await.expect("queued");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if only_message(&s.store).await.sent_at.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.abort();
}

#[test]
fn bad_options_are_start_up_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let open = |args: &MailArgs| {
        Mailer::open(
            args,
            &tmp.path().join("keys"),
            "https://id.example.com",
            Arc::new(MemoryStore::new()),
            Arc::new(FixedClock::new(0)),
        )
        .err()
    };
    let mut bad_from = args(None, tmp.path());
    bad_from.mail_from = "not an address".into();
    assert!(open(&bad_from).is_some_and(|e| e.contains("--mail-from")));
    let bad_url = args(
        Some("smtp://user:hunter2@mail.example.com:25".into()),
        tmp.path(),
    );
    let error = open(&bad_url).expect("refused");
    assert!(
        error.contains("--smtp-url") && !error.contains("hunter2"),
        "{error}"
    );
    assert!(open(&args(None, tmp.path())).is_none());
}

#[test]
fn every_kind_has_its_metric_series() {
    let link = || Link::new("https://x.test/?token=t".into());
    let kinds = [
        MailKind::VerifyEmail {
            username: "a".into(),
            link: link(),
            hours: 1,
        },
        MailKind::Invitation {
            link: link(),
            days: 1,
        },
        MailKind::PasswordReset {
            username: "a".into(),
            link: link(),
            minutes: 1,
        },
        MailKind::PasswordChanged {
            username: "a".into(),
            by_reset: false,
        },
        MailKind::ConfirmNewEmail {
            username: "a".into(),
            link: link(),
            hours: 1,
        },
        MailKind::EmailChanged {
            username: "a".into(),
            new_email: "b@x.test".into(),
        },
    ];
    for kind in kinds {
        assert!(
            crate::metrics::MAIL_KINDS.contains(&kind.name()),
            "{}",
            kind.name()
        );
    }
}
