//! Where messages go: an SMTP server (lettre's async client on tokio, TLS by native-tls)
//! named by `--smtp-url`, or, without one, one `.eml` file per message under `--mail-dir`
//! (directory 0700, files 0600, each written under a temporary name and renamed, so a reader
//! never sees half a message).

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one SMTP command may take before the attempt counts as failed.
const SMTP_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: no TLS at all. For a relay on the loopback interface.
    Plain,
    /// `smtp+starttls://`: plain connection upgraded with STARTTLS, which is required.
    StartTls,
    /// `smtps://`: TLS from the first byte (implicit TLS, RFC 8314).
    Tls,
}

/// A parsed `--smtp-url`. Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

impl SmtpUrl {
    /// Parses `smtp://`, `smtp+starttls://` or `smtps://[USER[:PASSWORD]@]HOST[:PORT]`.
    /// The user name and password are percent-decoded. Error messages never repeat the URL
    /// (it may hold a password).
    pub fn parse(input: &str) -> Result<Self, String> {
        let url = url::Url::parse(input.trim())
            .map_err(|e| format!("--smtp-url is not a valid URL: {e}"))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (Security::Plain, 25),
            "smtp+starttls" => (Security::StartTls, 587),
            "smtps" => (Security::Tls, 465),
            other => {
                return Err(format!(
                    "--smtp-url: unknown scheme {other:?}; use smtp://HOST:PORT (plain, loopback only), smtp+starttls://HOST:PORT or smtps://HOST:PORT"
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("--smtp-url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(
                "--smtp-url takes no path, query or fragment: only [USER:PASSWORD@]HOST:PORT"
                    .into(),
            );
        }
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("--smtp-url: the {what} is not UTF-8 once percent-decoded"))
        };
        let username = match url.username() {
            "" => None,
            name => Some(decode(name, "user name")?),
        };
        let password = url.password().map(|p| decode(p, "password")).transpose()?;
        if password.is_some() && username.is_none() {
            return Err("--smtp-url has a password but no user name".into());
        }
        let parsed = Self {
            security,
            port: url.port().unwrap_or(default_port),
            host,
            username,
            password,
        };
        if parsed.security == Security::Plain && parsed.username.is_some() && !parsed.is_loopback()
        {
            return Err("--smtp-url: smtp:// would send the password in clear to a host that is not on this machine; use smtp+starttls:// or smtps://".into());
        }
        Ok(parsed)
    }

    /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`).
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// "smtp.example.com:587 (STARTTLS required, with authentication)": never the
    /// credentials themselves.
    pub fn describe(&self) -> String {
        let mode = match self.security {
            Security::Plain => "plain SMTP, no TLS",
            Security::StartTls => "STARTTLS required",
            Security::Tls => "implicit TLS",
        };
        let auth = if self.username.is_some() {
            ", with authentication"
        } else {
            ""
        };
        format!("{}:{} ({mode}{auth})", self.host, self.port)
    }
}

/// Where delivered messages go.
pub enum Transport {
    Smtp {
        url: SmtpUrl,
        client: Box<AsyncSmtpTransport<Tokio1Executor>>,
    },
    Files {
        dir: PathBuf,
    },
}

/// A failed delivery. Its text is the transport's error (lettre's says what went wrong
/// in the conversation, never the message), safe to log and store.
#[derive(Debug)]
pub struct DeliveryError {
    pub message: String,
    /// The server refused the message for good (a 5xx answer that retrying cannot change).
    pub is_permanent: bool,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Transport {
    /// The SMTP client for `url`, or files under `mail_dir` without one. `hello_name` is
    /// the name Sigil gives itself in EHLO (the issuer's host).
    pub fn open(smtp_url: Option<&str>, mail_dir: &Path, hello_name: &str) -> Result<Self, String> {
        let Some(input) = smtp_url.filter(|u| !u.trim().is_empty()) else {
            return Ok(Self::Files {
                dir: mail_dir.to_path_buf(),
            });
        };
        let url = SmtpUrl::parse(input)?;
        if url.security == Security::Plain && !url.is_loopback() {
            tracing::warn!(host = %url.host, "--smtp-url is plain smtp:// to a host that is not on this machine: messages (and their links) cross the network unencrypted; use smtp+starttls:// or smtps://");
        }
        let tls = |host: &str| {
            TlsParameters::new(host.to_string())
                .map_err(|e| format!("--smtp-url: cannot set up TLS: {e}"))
        };
        let tls = match url.security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(tls(&url.host)?),
            Security::Tls => Tls::Wrapper(tls(&url.host)?),
        };
        let hello = match hello_name.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(hello_name.to_string()),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .hello_name(hello)
            .timeout(Some(SMTP_COMMAND_TIMEOUT));
        if let Some(username) = &url.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                url.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Self::Smtp {
            client: Box::new(builder.build()),
            url,
        })
    }

    /// The start-up line: where mail goes.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { url, .. } => format!("mail: sent by SMTP to {}", url.describe()),
            Self::Files { dir } => format!(
                "mail: no SMTP configured: messages are written as .eml files under {}",
                dir.display()
            ),
        }
    }

    /// Delivers one formatted message.
    pub async fn deliver(
        &self,
        id: &str,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        match self {
            Self::Smtp { client, .. } => client
                .send_raw(envelope, &message)
                .await
                .map(|_| ())
                .map_err(|e| DeliveryError {
                    is_permanent: is_permanent_refusal(&e),
                    message: e.to_string(),
                }),
            Self::Files { dir } => {
                let dir = dir.clone();
                let id = id.to_string();
                tokio::task::spawn_blocking(move || write_eml(&dir, &id, &message))
                    .await
                    .map_err(|e| DeliveryError {
                        message: format!("file writer stopped: {e}"),
                        is_permanent: false,
                    })?
                    .map_err(|e| DeliveryError {
                        message: e,
                        is_permanent: false,
                    })
            }
        }
    }
}

/// A 5xx answer refuses the message for good, except those about Sigil's own
/// authentication (530, 534, 535, 538), which the operator can fix: those are retried.
fn is_permanent_refusal(error: &lettre::transport::smtp::Error) -> bool {
    if !error.is_permanent() {
        return false;
    }
    let code = error.status().map(|c| c.to_string()).unwrap_or_default();
    !matches!(code.as_str(), "530" | "534" | "535" | "538")
}

/// Writes `<id>.eml` under `dir` (made 0700 if missing), mode 0600, through a temporary
/// file renamed into place.
pub fn write_eml(dir: &Path, id: &str, message: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("the message id is not a plain file name".into());
    }
    let failed = |e: std::io::Error| format!("mail directory {}: {e}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    let tmp = dir.join(format!(".{id}.{}.tmp", sigil_core::secret::random_token(6)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(message)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{id}.eml")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_schemes_parse_with_their_ports() {
        let plain = SmtpUrl::parse("smtp://127.0.0.1:2525").expect("plain");
        assert_eq!(plain.security, Security::Plain);
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 2525));
        assert!(plain.is_loopback());
        let starttls = SmtpUrl::parse("smtp+starttls://mail.example.com").expect("starttls");
        assert_eq!(starttls.security, Security::StartTls);
        assert_eq!(starttls.port, 587);
        assert!(!starttls.is_loopback());
        let tls = SmtpUrl::parse("smtps://mail.example.com").expect("tls");
        assert_eq!((tls.security, tls.port), (Security::Tls, 465));
        let v6 = SmtpUrl::parse("smtp://[::1]:25").expect("v6");
        assert_eq!(v6.host, "::1");
        assert!(v6.is_loopback());
    }

    #[test]
    fn credentials_are_percent_decoded_and_never_shown() {
        let url = SmtpUrl::parse("smtps://me%40example.com:p%3Ass%2Fw%20rd@mail.example.com:465")
            .expect("parses");
        assert_eq!(url.username.as_deref(), Some("me@example.com"));
        assert_eq!(url.password.as_deref(), Some("p:ss/w rd"));
        let shown = format!("{} {url:?}", url.describe());
        assert!(!shown.contains("p:ss"), "{shown}");
        assert!(!shown.contains("me@example.com") || shown.contains("Some(\"me@example.com\")"));
        assert!(url.describe().contains("with authentication"));
        assert_eq!(
            url.describe(),
            "mail.example.com:465 (implicit TLS, with authentication)"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_a_password() {
        for (input, expected) in [
            ("http://mail.example.com", "unknown scheme"),
            ("mail.example.com:25", "unknown scheme"),
            ("not a url", "not a valid URL"),
            ("smtp://", "no host"),
            ("smtp://host:99999", "not a valid URL"),
            ("smtp://host:25/path", "no path"),
            ("smtp://host:25?tls=1", "no path"),
            ("smtp://:secret@host:25", "no user name"),
            ("smtp://user:secret@mail.example.com:25", "in clear"),
        ] {
            let error = SmtpUrl::parse(input).expect_err(input);
            assert!(error.contains(expected), "{input}: {error}");
            assert!(!error.contains("secret"), "{input}: {error}");
        }
        SmtpUrl::parse("smtp://user:secret@localhost:25")
            .expect("loopback may authenticate in clear");
    }

    #[test]
    fn without_smtp_messages_become_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("mail");
        let transport = Transport::open(None, &dir, "sigil.test").expect("files");
        assert_eq!(
            transport.describe(),
            format!(
                "mail: no SMTP configured: messages are written as .eml files under {}",
                dir.display()
            )
        );
        write_eml(&dir, "abc_DEF-1", b"Subject: x\r\n\r\nbody").expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("abc_DEF-1.eml")), 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).expect("dir").count(),
            1,
            "no temporary file left"
        );
        assert!(write_eml(&dir, "../escape", b"x").is_err());
    }
}
