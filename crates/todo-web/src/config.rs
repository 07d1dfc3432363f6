//! The command line of `todo-web`: one clap struct, every option also from the environment.

use clap::Parser;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The TODO app's web front end: signs people in with Sigil and shows their todos from
/// todo-api. The tokens stay on this server (a backend-for-frontend); the browser holds only
/// an opaque session cookie.
#[derive(Parser)]
#[command(name = "todo-web", version, about)]
pub struct Config {
    /// The Sigil issuer URL; its discovery document gives every other endpoint.
    #[arg(long, env = "TODO_WEB_ISSUER")]
    pub issuer: String,
    /// This app's client id at Sigil (a confidential client).
    #[arg(long, env = "TODO_WEB_CLIENT_ID")]
    pub client_id: String,
    /// The client secret Sigil showed when the client was registered.
    #[arg(long, env = "TODO_WEB_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: ClientSecret,
    /// todo-api's base URL (e.g. http://127.0.0.1:8090).
    #[arg(long, env = "TODO_WEB_TODO_API")]
    pub todo_api: url::Url,
    /// Address to listen on.
    #[arg(long, env = "TODO_WEB_BIND", default_value = "127.0.0.1:8091")]
    pub bind: SocketAddr,
    /// The URL browsers reach this app at (default `http://{bind}`). The redirect URI is
    /// `{public-url}/callback`, the back-channel logout URI `{public-url}/backchannel-logout`.
    /// With an https URL the session cookie is `Secure` and named `__Host-todo_web_session`.
    #[arg(long, env = "TODO_WEB_PUBLIC_URL")]
    pub public_url: Option<url::Url>,
    /// A session unused for this many minutes ends (the user signs in again).
    #[arg(long, env = "TODO_WEB_SESSION_IDLE_MINUTES", default_value = "30")]
    pub session_idle_minutes: u64,
    /// How long to keep trying to reach the issuer at start, in seconds.
    #[arg(long, env = "TODO_WEB_DISCOVERY_TIMEOUT_SECS", default_value = "30")]
    pub discovery_timeout_secs: u64,
}

impl Config {
    /// The public URL without a trailing slash: `--public-url`, else `http://{bind}`.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind),
        }
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes.saturating_mul(60))
    }
}

/// The client secret: never printed (its `Debug` is redacted).
#[derive(Clone)]
pub struct ClientSecret(pub String);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

impl std::str::FromStr for ClientSecret {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("the client secret is empty".into());
        }
        Ok(Self(value.to_string()))
    }
}
