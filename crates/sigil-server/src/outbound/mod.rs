//! Fetching documents from URLs that outsiders choose (client ID metadata documents now, a
//! client's `jwks_uri` later), without letting the URL reach what it must not:
//!
//! - `https://` only; `http://127.0.0.1:PORT/…` and `http://[::1]:PORT/…` too when
//!   `allow_loopback` is set (tests and development). No user information in the URL.
//! - Server-side request forgery: the host is resolved by [`VettedResolver`] (tokio's
//!   resolver), and refused if any of its addresses is special-use ([`addresses`]);
//!   the connection goes to exactly the addresses vetted, so a second resolution cannot
//!   swap in another one (DNS rebinding). An IP-literal host never reaches a resolver, so
//!   it is checked before the request is sent. No proxy from the environment is used.
//! - No redirects at all: a 3xx answer is an error ([`FetchError::Redirect`]). The client ID
//!   metadata document draft forbids following them, and a same-origin rule would be one
//!   more thing to get right for no gain.
//! - 2 s to connect, 5 s for everything (resolution, connection, headers and the whole body:
//!   a server that dribbles its answer is cut off), the body read in chunks and given up
//!   as soon as it passes the limit (a `Content-Length` over it is refused before the body
//!   is read), `Content-Type` JSON when asked, status 200 only, at most
//!   [`OutboundSettings::max_concurrent`] fetches at once.
//!
//! Errors are typed and say what was refused; they never carry the body, and a header
//! value from the server appears only escaped and shortened. Nothing here logs a body.
//! [`cache`] adds single-flight and caching on top.

pub mod addresses;
pub mod cache;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest wait for a TCP connection (and for the host name's resolution).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a whole fetch may take, from resolution to the last byte of the body.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetches under way at once, beyond which a new one is refused ([`FetchError::Busy`]).
pub const MAX_CONCURRENT_FETCHES: usize = 32;

/// How the fetcher behaves; [`Default`] is what production uses.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Accept loopback addresses (and `http://` on a loopback IP literal). Tests and
    /// development only: it lets whoever picks the URL reach this host's own services.
    pub allow_loopback: bool,
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_concurrent: usize,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            connect_timeout: CONNECT_TIMEOUT,
            total_timeout: TOTAL_TIMEOUT,
            max_concurrent: MAX_CONCURRENT_FETCHES,
        }
    }
}

/// What one fetch accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRules {
    /// Bodies longer than this are refused ([`FetchError::TooLarge`]).
    pub max_bytes: usize,
    /// The answer must be `application/json` or `application/…+json`.
    pub require_json: bool,
}

/// What the server said about caching its answer (`Cache-Control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// `max-age=N`.
    MaxAge(u64),
    /// `no-store` or `no-cache`.
    DoNotKeep,
    /// Nothing usable.
    Unspecified,
}

/// A fetched body.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub freshness: Freshness,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the body: it is whatever the server sent.
        f.debug_struct("Fetched")
            .field("bytes", &self.body.len())
            .field("freshness", &self.freshness)
            .finish()
    }
}

/// Why a fetch was refused or failed. The texts are safe to show: they hold no byte of
/// the body, and server-chosen header values only escaped and cut short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("the URL is not valid: {0}")]
    InvalidUrl(&'static str),
    #[error("only https:// URLs are fetched")]
    NotHttps,
    #[error("the host {host} is a special-use address ({reason}), which is never fetched from")]
    ForbiddenAddress { host: String, reason: &'static str },
    #[error("the host name does not resolve")]
    Unresolved,
    #[error("the server could not be reached")]
    Connect,
    #[error("the server did not answer in full within {0:?}")]
    Timeout(Duration),
    #[error("the server answered with a redirect (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    #[error("the server answered HTTP {0} instead of 200")]
    Status(u16),
    #[error("the answer is not JSON (Content-Type {0})")]
    ContentType(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("too many outbound fetches are under way; try again shortly")]
    Busy,
    #[error("the transfer failed")]
    Transport,
    /// The body arrived but is not an acceptable document; the text says why.
    #[error("{0}")]
    Invalid(String),
}

/// The outbound HTTP client: one per purpose, cheap to share.
pub struct Outbound {
    client: reqwest::Client,
    settings: OutboundSettings,
    permits: Arc<Semaphore>,
}

impl Outbound {
    pub fn new(settings: OutboundSettings) -> Result<Self, String> {
        let resolver = VettedResolver {
            allow_loopback: settings.allow_loopback,
            timeout: settings.connect_timeout,
        };
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!settings.allow_loopback)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("sigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("outbound HTTP client: {e}"))?;
        Ok(Self {
            client,
            permits: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            settings,
        })
    }

    pub fn settings(&self) -> &OutboundSettings {
        &self.settings
    }

    /// Checks `url` against the URL and address rules without fetching it.
    pub fn check_url(&self, url: &str) -> Result<url::Url, FetchError> {
        check_url(url, self.settings.allow_loopback)
    }

    /// Fetches `url` under the module's rules and `rules`.
    pub async fn fetch(&self, url: &str, rules: FetchRules) -> Result<Fetched, FetchError> {
        let url = self.check_url(url)?;
        let _permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| FetchError::Busy)?;
        let deadline = self.settings.total_timeout;
        match tokio::time::timeout(deadline, self.fetch_checked(url, rules)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FetchError::Timeout(deadline)),
        }
    }

    async fn fetch_checked(&self, url: url::Url, rules: FetchRules) -> Result<Fetched, FetchError> {
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.classify(&e))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(FetchError::Redirect(status));
        }
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let headers = response.headers();
        if rules.require_json {
            let content_type = headers
                .get(reqwest::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            match content_type.as_deref() {
                Some(value) if is_json_media_type(value) => {}
                Some(value) => return Err(FetchError::ContentType(escaped(value, 80))),
                None => return Err(FetchError::ContentType("missing".into())),
            }
        }
        let freshness = freshness(headers.get_all(reqwest::header::CACHE_CONTROL));
        if response
            .content_length()
            .is_some_and(|length| length > rules.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(rules.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e))? {
            if body.len() + chunk.len() > rules.max_bytes {
                return Err(FetchError::TooLarge(rules.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, freshness })
    }

    /// What a reqwest error comes to: our resolver's refusal is found in its sources.
    fn classify(&self, error: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(current) = source {
            if let Some(refused) = current.downcast_ref::<ResolveRefusal>() {
                return refused.0.clone();
            }
            source = current.source();
        }
        if error.is_timeout() {
            FetchError::Timeout(self.settings.total_timeout)
        } else if error.is_connect() {
            FetchError::Connect
        } else if error.is_redirect() {
            FetchError::Redirect(error.status().map_or(300, |s| s.as_u16()))
        } else {
            FetchError::Transport
        }
    }
}

/// The URL rules: parsed, `https` (or `http` on a loopback IP literal with
/// `allow_loopback`), a host, no user information, and an IP-literal host checked here
/// since it is never resolved.
pub fn check_url(text: &str, allow_loopback: bool) -> Result<url::Url, FetchError> {
    let url = url::Url::parse(text).map_err(|_| FetchError::InvalidUrl("it does not parse"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::InvalidUrl("it has user information"));
    }
    let host = url.host().ok_or(FetchError::InvalidUrl("it has no host"))?;
    let literal: Option<IpAddr> = match host {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && literal.is_some_and(|ip| ip.is_loopback()) => {}
        _ => return Err(FetchError::NotHttps),
    }
    if let Some(ip) = literal {
        if let Some(reason) = addresses::refusal(ip, allow_loopback) {
            return Err(FetchError::ForbiddenAddress {
                host: escaped(&host.to_string(), 80),
                reason: reason.describe(),
            });
        }
    }
    Ok(url)
}

/// `application/json`, or `application/<something>+json`, parameters allowed.
pub fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.".contains(&b))
            })
}

/// Reads `Cache-Control` (every header of that name): `no-store` or `no-cache` win over
/// `max-age`, which must be a whole number of seconds.
pub fn freshness<'a>(
    values: impl IntoIterator<Item = &'a reqwest::header::HeaderValue>,
) -> Freshness {
    let mut max_age = None;
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let directive = directive.trim();
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Freshness::DoNotKeep;
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Some(seconds) = argument.and_then(|a| a.parse::<u64>().ok()) {
                    max_age = Some(max_age.map_or(seconds, |m: u64| m.min(seconds)));
                }
            }
        }
    }
    max_age.map_or(Freshness::Unspecified, Freshness::MaxAge)
}

/// `text` with every character outside printable ASCII escaped, cut at `limit` characters
/// (for putting a server's or a client's words into a message).
pub fn escaped(text: &str, limit: usize) -> String {
    let mut out: String = text
        .chars()
        .flat_map(char::escape_default)
        .take(limit)
        .collect();
    if text
        .chars()
        .flat_map(char::escape_default)
        .nth(limit)
        .is_some()
    {
        out.push('…');
    }
    out
}

/// The resolver's refusal, carried through reqwest's error as a source.
#[derive(Debug)]
struct ResolveRefusal(FetchError);

impl std::fmt::Display for ResolveRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ResolveRefusal {}

/// Resolves with tokio's resolver (the system's `getaddrinfo`) and refuses a name any of
/// whose addresses is special-use; reqwest connects to exactly the addresses returned.
struct VettedResolver {
    allow_loopback: bool,
    timeout: Duration,
}

impl Resolve for VettedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let allow_loopback = self.allow_loopback;
        let timeout = self.timeout;
        Box::pin(async move {
            let refuse = |error: FetchError| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(ResolveRefusal(error))
            };
            let found = tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), 0)))
                .await
                .map_err(|_| refuse(FetchError::Timeout(timeout)))?
                .map_err(|_| refuse(FetchError::Unresolved))?;
            let addresses: Vec<SocketAddr> = found.collect();
            if addresses.is_empty() {
                return Err(refuse(FetchError::Unresolved));
            }
            for address in &addresses {
                if let Some(reason) = addresses::refusal(address.ip(), allow_loopback) {
                    return Err(refuse(FetchError::ForbiddenAddress {
                        host: escaped(&host, 80),
                        reason: reason.describe(),
                    }));
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn url_rules() {
        for (url, allow_loopback) in [
            ("https://client.example/app.json", false),
            ("https://client.example:8443/app.json", false),
            ("http://127.0.0.1:9000/app.json", true),
            ("http://[::1]:9000/app.json", true),
            ("https://127.0.0.1:9000/app.json", true),
        ] {
            assert!(check_url(url, allow_loopback).is_ok(), "{url}");
        }
        let refused =
            |url: &str, allow_loopback: bool| check_url(url, allow_loopback).expect_err(url);
        assert_eq!(
            refused("http://client.example/a", false),
            FetchError::NotHttps
        );
        assert_eq!(
            refused("http://client.example/a", true),
            FetchError::NotHttps
        );
        assert_eq!(refused("http://127.0.0.1:9/a", false), FetchError::NotHttps);
        assert_eq!(refused("http://10.0.0.1:9/a", true), FetchError::NotHttps);
        assert_eq!(
            refused("ftp://client.example/a", false),
            FetchError::NotHttps
        );
        assert!(matches!(
            refused("https://user@client.example/a", false),
            FetchError::InvalidUrl(_)
        ));
        assert!(matches!(
            refused("not a url", false),
            FetchError::InvalidUrl(_)
        ));
        for literal in [
            "https://127.0.0.1/a",
            "https://2130706433/a",
            "https://0x7f.1/a",
            "https://10.1.2.3/a",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/a",
            "https://[::ffff:169.254.169.254]/a",
            "https://[fd00::1]/a",
            "https://0/a",
        ] {
            assert!(
                matches!(refused(literal, false), FetchError::ForbiddenAddress { .. }),
                "{literal}"
            );
        }
        assert!(matches!(
            refused("https://169.254.169.254/a", true),
            FetchError::ForbiddenAddress { .. }
        ));
    }

    #[test]
    fn json_media_types() {
        for value in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/jwk-set+json",
            "application/vnd.example+json ; q=1",
        ] {
            assert!(is_json_media_type(value), "{value}");
        }
        for value in [
            "text/json",
            "application/jsonp",
            "application/+json",
            "text/html",
            "",
        ] {
            assert!(!is_json_media_type(value), "{value}");
        }
    }

    #[test]
    fn cache_control() {
        let parse = |values: &[&str]| {
            let values: Vec<HeaderValue> = values
                .iter()
                .map(|v| HeaderValue::from_str(v).expect("header"))
                .collect();
            freshness(values.iter())
        };
        assert_eq!(parse(&["max-age=600"]), Freshness::MaxAge(600));
        assert_eq!(parse(&["public, Max-Age=\"60\""]), Freshness::MaxAge(60));
        assert_eq!(parse(&["max-age=600", "max-age=30"]), Freshness::MaxAge(30));
        assert_eq!(parse(&["max-age=600, no-store"]), Freshness::DoNotKeep);
        assert_eq!(parse(&["no-cache"]), Freshness::DoNotKeep);
        assert_eq!(parse(&["max-age=-5"]), Freshness::Unspecified);
        assert_eq!(parse(&["private"]), Freshness::Unspecified);
        assert_eq!(parse(&[]), Freshness::Unspecified);
    }

    #[test]
    fn escaping_keeps_messages_printable_and_short() {
        assert_eq!(escaped("text/html", 80), "text/html");
        assert_eq!(escaped("a\u{1b}[31mb\n", 80), "a\\u{1b}[31mb\\n");
        assert_eq!(
            escaped(&"x".repeat(100), 10),
            format!("{}…", "x".repeat(10))
        );
    }
}
