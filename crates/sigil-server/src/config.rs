//! The command line: one clap structure, parsed once in `main`. Every option of `serve`
//! also reads an environment variable `SIGIL_<OPTION>`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Sigil: an OAuth 2.0 / OpenID Connect authorization server.
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, long_about = None)]
pub struct Cli {
    /// Database URL: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "SIGIL_DATABASE_URL",
        default_value = "sqlite://data/sigil.db",
        global = true
    )]
    pub database_url: String,

    /// Directory of the signing keys (private keys: keep it private, never commit it).
    #[arg(long, env = "SIGIL_KEYS_DIR", default_value = "keys", global = true)]
    pub keys_dir: PathBuf,

    /// Log format.
    #[arg(long, env = "SIGIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// `--sign-up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignUpArg {
    Closed,
    Open,
    Invite,
}

impl From<SignUpArg> for sigil_core::accounts::SignUpMode {
    fn from(arg: SignUpArg) -> Self {
        match arg {
            SignUpArg::Closed => Self::Closed,
            SignUpArg::Open => Self::Open,
            SignUpArg::Invite => Self::Invite,
        }
    }
}

/// `--mfa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MfaArg {
    Optional,
    RequiredForAdmins,
    Required,
}

impl From<MfaArg> for sigil_core::factors::MfaPolicy {
    fn from(arg: MfaArg) -> Self {
        match arg {
            MfaArg::Optional => Self::Optional,
            MfaArg::RequiredForAdmins => Self::RequiredForAdmins,
            MfaArg::Required => Self::Required,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage upstream identity providers ("sign in with …").
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Manage signing keys: list, rotate, prune.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read and check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Initial access tokens for dynamic client registration (`--registration token`).
    #[command(subcommand)]
    RegistrationToken(RegistrationTokenCommand),
    /// Protected resources (RFC 8707 `resource` values) and the scopes each accepts.
    #[command(subcommand)]
    Resource(ResourceCommand),
}

#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// Make an initial access token; it is printed once (only its hash is stored).
    Create(RegistrationTokenCreateArgs),
    /// List the initial access tokens (ids, uses left, expiry; never the tokens).
    List(JsonArgs),
    /// Revoke an initial access token.
    Revoke(RegistrationTokenRefArgs),
}

#[derive(Debug, Args)]
pub struct RegistrationTokenCreateArgs {
    /// How many registrations the token may make.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub uses: i64,
    /// How long the token stays valid.
    #[arg(long, default_value = "1d", value_parser = parse_positive_duration)]
    pub expires: Duration,
    /// Print {"id":…,"token":…,"expires_at":…} as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegistrationTokenRefArgs {
    /// The token's id (from `registration-token list`).
    #[arg(long, allow_hyphen_values = true)]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ResourceCommand {
    /// Register a protected resource, or replace the settings of the one with this URI.
    Add(ResourceAddArgs),
    /// List the registered resources.
    List(JsonArgs),
    /// Remove a resource (tokens already issued for it stay valid until they expire).
    Remove(ResourceRefArgs),
}

#[derive(Debug, Args)]
pub struct ResourceAddArgs {
    /// The resource identifier: an absolute URI without a fragment, as clients send it in
    /// `resource` (e.g. https://api.example.com/mcp).
    #[arg(long)]
    pub uri: String,
    /// The name people see on the consent page and in the console.
    #[arg(long)]
    pub name: String,
    /// A scope the resource accepts (e.g. todo:read); repeat for several.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Refuse it to clients that registered themselves (dynamic registration, client ID
    /// metadata documents): only clients that list it with --audience may ask for it.
    #[arg(long)]
    pub no_self_registered_clients: bool,
}

#[derive(Debug, Args)]
pub struct ResourceRefArgs {
    /// The resource identifier.
    #[arg(long)]
    pub uri: String,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print audit log entries, newest first.
    List(AuditListArgs),
    /// Check the hash chain of the whole log; report the first entry where it breaks.
    Verify,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only actions starting with this (e.g. sign_in. or client.created).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries by this actor (a user name, cli, or - for nobody).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only entries about this target (a client id, user name or kid).
    #[arg(long)]
    pub target: Option<String>,
    /// How many entries.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Who may register a client through `POST /register` (RFC 7591).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistrationMode {
    /// Nobody: clients are registered by an administrator (console or `sigil client add`).
    Closed,
    /// Anyone holding an initial access token from `sigil registration-token create`.
    Token,
    /// Anyone, within the per-address rate limit and caps.
    Open,
}

/// Dynamic client registration (RFC 7591, RFC 7592) and self-registered clients.
#[derive(Debug, Clone, Args)]
pub struct RegistrationArgs {
    /// Dynamic client registration at POST /register: closed (the default), token (an
    /// initial access token from `sigil registration-token create` is required) or open.
    #[arg(long, env = "SIGIL_REGISTRATION", value_enum, default_value_t = RegistrationMode::Closed)]
    pub registration: RegistrationMode,

    /// Registrations one client address may make per hour.
    #[arg(long, env = "SIGIL_REGISTRATION_RATE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub registration_rate: u32,

    /// Self-registered clients one address may have at a time.
    #[arg(long, env = "SIGIL_REGISTRATION_MAX_PER_ADDRESS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub registration_max_per_address: u32,

    /// Self-registered clients in all.
    #[arg(long, env = "SIGIL_REGISTRATION_MAX_CLIENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub registration_max_clients: u32,

    /// A self-registered client that has got no code or token this long after it
    /// registered is removed.
    #[arg(long, env = "SIGIL_REGISTRATION_UNUSED_TTL", default_value = "7d", value_parser = parse_duration)]
    pub registration_unused_ttl: Duration,

    /// Scopes a client that registered itself (dynamic registration or a client ID
    /// metadata document) may ask for, beside the scopes of registered resources;
    /// space-separated.
    #[arg(
        long,
        env = "SIGIL_SELF_REGISTERED_SCOPES",
        default_value = "openid profile email offline_access"
    )]
    pub self_registered_scopes: String,
}

/// Pushed authorization requests (RFC 9126, `POST /par`).
#[derive(Debug, Clone, Args)]
pub struct PushedRequestArgs {
    /// Every client must send its authorization requests to POST /par first and bring
    /// the request_uri to /authorize (RFC 9126 pushed authorization requests); without
    /// it, only the clients registered with --require-pushed-authorization-requests must.
    #[arg(long, env = "SIGIL_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS")]
    pub require_pushed_authorization_requests: bool,

    /// Pushed authorization requests one client may make per minute (the lifetime of a
    /// request_uri), counted on each replica; more are answered 429.
    #[arg(long, env = "SIGIL_PUSHED_REQUESTS_MAX_PER_CLIENT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub pushed_requests_max_per_client: u32,
}

/// DPoP (RFC 9449): sender-constrained tokens.
#[derive(Debug, Clone, Args)]
pub struct DpopArgs {
    /// DPoP proofs at /token, /par and /userinfo must carry a nonce Sigil gave in the
    /// DPoP-Nonce header (RFC 9449 §8): a client's first proof is answered
    /// use_dpop_nonce with one. Replicas that share the keys directory share the nonces.
    #[arg(long, env = "SIGIL_DPOP_NONCE")]
    pub dpop_nonce: bool,

    /// How old a DPoP proof (its iat) may be; each proof's jti is remembered in the
    /// database this long, so that it is used once.
    #[arg(long, env = "SIGIL_DPOP_PROOF_MAX_AGE", default_value = "5m", value_parser = parse_positive_duration)]
    pub dpop_proof_max_age: Duration,
}

/// The activity counters behind the admin console's charts.
#[derive(Debug, Clone, Args)]
pub struct ActivityArgs {
    /// How often each replica writes the activity it counted (sign-ins, tokens, reuse,
    /// throttled requests, 5xx answers) to the database; between writes, counts are kept
    /// in memory only, so a crash loses at most this much. Between 100ms and 1m.
    #[arg(long, env = "SIGIL_ACTIVITY_FLUSH_INTERVAL", default_value = "5s", value_parser = parse_flush_interval)]
    pub activity_flush_interval: Duration,

    /// How long the per-minute activity counts are kept (the 24-hour chart reads them);
    /// at least 1d.
    #[arg(long, env = "SIGIL_ACTIVITY_MINUTE_RETENTION", default_value = "2d", value_parser = parse_minute_retention)]
    pub activity_minute_retention: Duration,

    /// How long the hourly activity counts (in total and per client) are kept (the 7-day
    /// chart and the clients' figures read them); at least 7d.
    #[arg(long, env = "SIGIL_ACTIVITY_RETENTION", default_value = "90d", value_parser = parse_hour_retention)]
    pub activity_retention: Duration,
}

/// The activity flush interval: between 100 ms and a minute.
pub fn parse_flush_interval(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < Duration::from_millis(100) || duration > Duration::from_secs(60) {
        return Err(format!(
            "--activity-flush-interval is between 100ms and 1m, got {value:?}"
        ));
    }
    Ok(duration)
}

/// The retention of the per-minute counts: at least a day (the 24-hour chart).
pub fn parse_minute_retention(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < Duration::from_secs(86_400) {
        return Err(format!(
            "--activity-minute-retention is at least 1d (the 24-hour chart reads it), got {value:?}"
        ));
    }
    Ok(duration)
}

/// The retention of the hourly counts: at least 7 days (the 7-day chart).
pub fn parse_hour_retention(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < Duration::from_secs(7 * 86_400) {
        return Err(format!(
            "--activity-retention is at least 7d (the 7-day chart reads it), got {value:?}"
        ));
    }
    Ok(duration)
}

/// Options of `sigil serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Issuer identifier: the public base URL of this server (no trailing slash).
    #[arg(long, env = "SIGIL_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,

    /// Address to listen on.
    #[arg(long, env = "SIGIL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    #[command(flatten)]
    pub lifetimes: Lifetimes,

    #[command(flatten)]
    pub passwords: PasswordArgs,

    #[command(flatten)]
    pub registration: RegistrationArgs,

    #[command(flatten)]
    pub client_documents: crate::client_documents::ClientDocumentArgs,

    #[command(flatten)]
    pub pushed_requests: PushedRequestArgs,

    #[command(flatten)]
    pub dpop: DpopArgs,

    #[command(flatten)]
    pub activity: ActivityArgs,

    /// Refresh-token idle lifetime: a token unused this long expires.
    #[arg(long, env = "SIGIL_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,

    /// Absolute lifetime of a refresh-token family, however often it rotates.
    #[arg(long, env = "SIGIL_REFRESH_TOKEN_ABSOLUTE_TTL", default_value = "90d", value_parser = parse_duration)]
    pub refresh_token_absolute_ttl: Duration,

    /// Refresh-token idle lifetime for public clients (single-page and native apps, which
    /// cannot keep a secret): shorter than a confidential client's by default. A client's
    /// own --refresh-token-ttl still wins.
    #[arg(long, env = "SIGIL_PUBLIC_CLIENT_REFRESH_TOKEN_TTL", default_value = "1d", value_parser = parse_duration)]
    pub public_client_refresh_token_ttl: Duration,

    /// Absolute lifetime of a public client's refresh-token family, however often it
    /// rotates (at most --refresh-token-absolute-ttl).
    #[arg(long, env = "SIGIL_PUBLIC_CLIENT_REFRESH_TOKEN_ABSOLUTE_TTL", default_value = "7d", value_parser = parse_duration)]
    pub public_client_refresh_token_absolute_ttl: Duration,

    /// Refresh reuse grace window. 0s (the default) is strict: a second use of a refresh
    /// token revokes its whole family, even a concurrent one. With e.g. 10s, a replay of
    /// the token within that time of its rotation gets the same successor tokens again
    /// (for browser tabs and apps that refresh at once); later it still revokes. At most 60s.
    #[arg(long, env = "SIGIL_REFRESH_REUSE_GRACE", default_value = "0s", value_parser = parse_grace)]
    pub refresh_reuse_grace: Duration,

    /// Failed sign-ins per account name before each further attempt must wait (1s,
    /// doubling with every failure, at most 15 minutes).
    #[arg(long, env = "SIGIL_SIGN_IN_FREE_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..))]
    pub sign_in_free_failures: i64,

    /// Failed sign-ins per client address before it must wait. 0 turns the per-address
    /// count off: do that behind a reverse proxy, where every client has the proxy's address.
    #[arg(long, env = "SIGIL_SIGN_IN_FREE_FAILURES_PER_ADDRESS", default_value_t = 20, value_parser = clap::value_parser!(i64).range(0..))]
    pub sign_in_free_failures_per_address: i64,

    /// The first wait after the free failures are used up; each further failure doubles it,
    /// up to 15 minutes. Between 1s and 15m.
    #[arg(long, env = "SIGIL_SIGN_IN_FIRST_WAIT", default_value = "1s", value_parser = parse_first_wait)]
    pub sign_in_first_wait: Duration,

    /// Idle lifetime of a browser sign-in session.
    #[arg(long, env = "SIGIL_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// Name of the browser session cookie; default sigil_session, or __Host-sigil_session
    /// under an https issuer. Lets two servers share one host name (in tests).
    #[arg(long, env = "SIGIL_SESSION_COOKIE_NAME", value_parser = parse_cookie_name)]
    pub session_cookie_name: Option<String>,

    /// Who may create an account from the sign-in page: closed (only admins make
    /// accounts), open (anybody, who then verifies their e-mail address), or invite
    /// (whoever has an admin's invitation link).
    #[arg(long, env = "SIGIL_SIGN_UP", value_enum, default_value_t = SignUpArg::Closed)]
    pub sign_up: SignUpArg,

    /// Who must sign in with a second factor (an authenticator app or a passkey):
    /// optional (nobody must, anybody may), required-for-admins, or required (everybody).
    /// An admin may also require it of one user. Whoever must and has none adds one at
    /// their next sign-in, before any code is issued.
    #[arg(long, env = "SIGIL_MFA", value_enum, default_value_t = MfaArg::Optional)]
    pub mfa: MfaArg,

    #[command(flatten)]
    pub mail: crate::mail::MailArgs,

    /// How often the keys directory is checked for new, rotated or pruned keys.
    #[arg(long, env = "SIGIL_KEYS_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub keys_poll_interval: Duration,

    /// How long a client record may be served from memory on hot paths.
    #[arg(long, env = "SIGIL_CLIENT_CACHE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub client_cache_ttl: Duration,

    /// Threads that sign tokens (RSA) at once; default: the number of CPUs.
    #[arg(long, env = "SIGIL_SIGNING_WORKERS")]
    pub signing_workers: Option<usize>,

    /// Largest number of database connections in the pool.
    #[arg(long, env = "SIGIL_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before it is answered 503
    /// (the database counts as down).
    #[arg(long, env = "SIGIL_DB_ACQUIRE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,

    /// The longest a request may take, body included; slower ones get 503. Bounds slow
    /// clients that trickle a body and requests stuck on a stalled dependency.
    #[arg(long, env = "SIGIL_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// How long a client may take to send a request head (request line and headers). The
    /// same clock bounds the wait for the next request on a kept-alive connection: hyper
    /// starts it as soon as the previous response is written. Slower clients are cut off.
    #[arg(long, env = "SIGIL_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// A connection on which no byte moves for this long while no request is being handled
    /// is closed: a kept-alive connection waiting for its next request (also bounded by
    /// --header-read-timeout, whichever is shorter), or a client that stops reading its answer.
    #[arg(long, env = "SIGIL_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Most client connections open at once. At the cap, a new connection closes the
    /// longest-idle open one (no request in progress), or is closed at once if every one is
    /// busy. Default: the process's open-file limit (RLIMIT_NOFILE) less a reserve for the
    /// database pool, key files, logs and the metrics listener.
    #[arg(long, env = "SIGIL_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// After SIGTERM or Ctrl-C: how long open connections get to finish their requests
    /// before they are closed and the process exits.
    #[arg(long, env = "SIGIL_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Address of a separate listener that serves only `GET /metrics` (e.g. 127.0.0.1:9090).
    /// Without it, metrics are not served at all: never on the public listener.
    #[arg(long, env = "SIGIL_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Also fetch private_key_jwt clients' keys (jwks_uri) from loopback addresses, over
    /// http://127.0.0.1:PORT/… too. For tests and development only: whoever registers a
    /// client could then make Sigil call services on this host.
    #[arg(long, env = "SIGIL_JWKS_URI_ALLOW_LOOPBACK")]
    pub jwks_uri_allow_loopback: bool,

    /// Password of the admin account created on first start (default: random, shown once:
    /// on the terminal, or written to a 0600 file when standard output is not a terminal).
    #[arg(long, env = "SIGIL_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

/// Token lifetimes; shared by `serve` and `keys` (which must know how long tokens live).
#[derive(Debug, Clone, Args)]
pub struct Lifetimes {
    /// Access-token lifetime.
    #[arg(long, env = "SIGIL_ACCESS_TOKEN_TTL", default_value = "10m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,

    /// ID-token lifetime.
    #[arg(long, env = "SIGIL_ID_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub id_token_ttl: Duration,

    /// `Cache-Control: max-age` of the JWKS; a rotated key starts signing only after it.
    #[arg(long, env = "SIGIL_JWKS_MAX_AGE", default_value = "10m", value_parser = parse_duration)]
    pub jwks_max_age: Duration,
}

/// argon2id parameters for new password hashes and the size of the hashing pool.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// argon2id memory in KiB (OWASP: 19456).
    #[arg(long, env = "SIGIL_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    #[arg(long, env = "SIGIL_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    #[arg(long, env = "SIGIL_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; default: the number of CPUs.
    #[arg(long, env = "SIGIL_PASSWORD_WORKERS")]
    pub password_workers: Option<usize>,
    /// Password checks allowed to wait for a worker; beyond it requests get 503.
    #[arg(long, env = "SIGIL_PASSWORD_QUEUE", default_value_t = 64)]
    pub password_queue: usize,
}

impl PasswordArgs {
    pub fn params(&self) -> sigil_core::password::Argon2Params {
        sigil_core::password::Argon2Params {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add(UserAddArgs),
    /// List users, or those matching --search.
    List(ListArgs),
    /// Change a user's profile or admin role.
    Update(UserUpdateArgs),
    /// Set a user's password (read from standard input); ends their sessions and refresh tokens.
    SetPassword(UserPasswordArgs),
    /// Disable a user: no sign-in; sessions and refresh tokens revoked at once.
    Disable(UserRefArgs),
    /// Enable a disabled user.
    Enable(UserRefArgs),
    /// Sign a user out everywhere: every browser session, refresh token and access token
    /// of theirs stops counting at once.
    SignOut(UserRefArgs),
    /// Revoke what a user granted a client (consent and refresh tokens).
    RevokeGrant(UserRevokeGrantArgs),
    /// Invite someone to sign up (with --sign-up invite): mails them a single-use link to
    /// /signup?invite=… and prints it.
    Invite(UserInviteArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Case-insensitive text to look for.
    #[arg(long)]
    pub search: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UserRefArgs {
    #[arg(long)]
    pub username: String,
}

#[derive(Debug, Args)]
pub struct UserUpdateArgs {
    #[arg(long)]
    pub username: String,
    /// New email address ("" to clear).
    #[arg(long)]
    pub email: Option<String>,
    /// Mark the email address verified or not.
    #[arg(long)]
    pub email_verified: Option<bool>,
    /// New display name ("" to clear).
    #[arg(long)]
    pub name: Option<String>,
    /// Grant (true) or remove (false) the admin role.
    #[arg(long)]
    pub admin: Option<bool>,
}

#[derive(Debug, Args)]
pub struct UserPasswordArgs {
    #[arg(long)]
    pub username: String,
    /// Read the password from standard input (required).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    /// The user must choose a new password at next sign-in.
    #[arg(long)]
    pub must_change: bool,
    #[command(flatten)]
    pub passwords: PasswordArgs,
}

#[derive(Debug, Args)]
pub struct UserRevokeGrantArgs {
    #[arg(long)]
    pub username: String,
    /// The client's id (it may start with `-`: ids are base64url).
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: String,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: Option<String>,
    /// Display name (the `name` claim).
    #[arg(long)]
    pub name: Option<String>,
    /// Give the user the admin role.
    #[arg(long)]
    pub admin: bool,
    /// The e-mail address does not count as verified: the user is mailed a verification
    /// link instead.
    #[arg(long, requires = "email")]
    pub unverified_email: bool,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub passwords: PasswordArgs,
    #[command(flatten)]
    pub mail: crate::mail::MailArgs,
    /// The server's issuer URL, for links in mail.
    #[arg(long, env = "SIGIL_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
}

#[derive(Debug, Args)]
pub struct UserInviteArgs {
    /// Where the invitation goes.
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub mail: crate::mail::MailArgs,
    /// The server's issuer URL, for the link.
    #[arg(long, env = "SIGIL_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
}

#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Add an upstream identity provider; its client secret is read from standard input.
    Add(Box<ProviderAddArgs>),
    /// List the providers.
    List(ProviderListArgs),
    /// Remove a provider (accounts linked through it stay, and sign in again if it is
    /// added back with the same issuer).
    Remove(ProviderRefArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKindArg {
    /// OpenID Connect: endpoints and keys from the issuer's discovery document.
    Oidc,
    /// Plain OAuth 2.0 with explicit endpoints and a userinfo URL (GitHub style).
    Oauth2,
}

#[derive(Debug, Args)]
pub struct ProviderAddArgs {
    /// The provider's id: the path segment of /login/provider/ID (lower-case letters,
    /// digits and '-').
    #[arg(long)]
    pub id: String,
    /// The name the sign-in page shows ("Sign in with NAME").
    #[arg(long)]
    pub name: String,
    /// How Sigil talks to it: oidc (discovery from the issuer) or oauth2 (explicit URLs).
    #[arg(long, value_enum, default_value_t = ProviderKindArg::Oidc)]
    pub kind: ProviderKindArg,
    /// The issuer: where discovery starts (OpenID Connect), or the name the identities are
    /// kept under (OAuth 2.0, e.g. https://github.com).
    #[arg(long)]
    pub issuer: String,
    /// Sigil's client id at the provider.
    #[arg(long)]
    pub client_id: String,
    /// Read Sigil's client secret at the provider from standard input (required: a secret
    /// never goes on the command line).
    #[arg(long, required = true)]
    pub client_secret_stdin: bool,
    /// Scopes to ask for, space- or comma-separated (OpenID Connect default: "openid
    /// profile email").
    #[arg(long)]
    pub scopes: Option<String>,
    /// An unknown identity gets a new account, whatever --sign-up says.
    #[arg(long)]
    pub create_users: bool,
    /// Count the provider's email_verified (otherwise its addresses are never verified).
    #[arg(long)]
    pub trust_email: bool,
    /// Accept http:// URLs on a loopback address (tests and development only).
    #[arg(long)]
    pub allow_http: bool,
    /// OAuth 2.0: the authorization endpoint.
    #[arg(long)]
    pub authorize_url: Option<String>,
    /// OAuth 2.0: the token endpoint.
    #[arg(long)]
    pub token_url: Option<String>,
    /// OAuth 2.0: the userinfo URL (a JSON object about the user).
    #[arg(long)]
    pub userinfo_url: Option<String>,
    /// OAuth 2.0: the userinfo member that identifies the user (default sub; GitHub: id).
    #[arg(long)]
    pub subject_claim: Option<String>,
    /// The server's issuer URL, to print the redirect URI to register at the provider.
    #[arg(long, env = "SIGIL_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub sigil_issuer: String,
}

#[derive(Debug, Args)]
pub struct ProviderListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProviderRefArgs {
    /// The provider's id.
    #[arg(long)]
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id (and its secret, shown only this once).
    Add(ClientAddArgs),
    /// List clients, or those matching --search.
    List(ListArgs),
    /// Show one client's settings.
    Show(ClientRefArgs),
    /// Replace a client's settings (the same options as add; its type, id and secret stay).
    Update(ClientUpdateArgs),
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret(ClientRefArgs),
    /// Delete a client with its refresh tokens and consents.
    Delete(ClientRefArgs),
}

#[derive(Debug, Args)]
pub struct ClientRefArgs {
    /// The client's id (it may start with `-`: ids are base64url).
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClientUpdateArgs {
    /// The client's id (it may start with `-`: ids are base64url).
    #[arg(long, allow_hyphen_values = true)]
    pub client_id: String,
    #[command(flatten)]
    pub settings: ClientSettings,
}

#[derive(Debug, Args)]
pub struct ClientAddArgs {
    #[command(flatten)]
    pub settings: ClientSettings,
    /// A public client (no secret): browser and native apps.
    #[arg(long)]
    pub public: bool,
    /// How the client authenticates; default: client_secret_basic (none with --public).
    #[arg(long, value_enum)]
    pub token_endpoint_auth_method: Option<AuthMethodArg>,
    /// Print {"client_id":…,"client_secret":…} as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A client's settings, for `client add` and `client update`.
#[derive(Debug, Args)]
pub struct ClientSettings {
    #[arg(long)]
    pub name: String,
    /// An allowed redirect URI (exact match); repeat for several.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// An allowed post-logout redirect URI; repeat for several.
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Comma-separated grant types (authorization_code, refresh_token, password, client_credentials).
    #[arg(long, value_delimiter = ',')]
    pub grant_types: Option<Vec<String>>,
    /// Comma-separated scopes the client may ask for (default: openid,profile,email,offline_access).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// An audience (resource server) tokens may be issued for; the first is the default.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// A first-party client skips the consent page.
    #[arg(long)]
    pub first_party: bool,
    /// Issue refresh tokens even without the offline_access scope.
    #[arg(long)]
    pub always_issue_refresh_token: bool,
    /// Access-token lifetime for this client (at most 1d); default: the server's.
    #[arg(long, value_parser = parse_duration)]
    pub access_token_ttl: Option<Duration>,
    /// Refresh-token idle lifetime for this client; default: the server's
    /// (--public-client-refresh-token-ttl for a public client).
    #[arg(long, value_parser = parse_duration)]
    pub refresh_token_ttl: Option<Duration>,
    /// A browser origin (scheme://host[:port]) allowed to call /token, /revoke and
    /// /userinfo from JavaScript (CORS), for a single-page app; repeat for several.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Where Sigil POSTs a logout token when a session this client signed in to ends
    /// (OpenID Connect Back-Channel Logout 1.0); https, or http on a loopback IP.
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// The client needs the session id (sid) in logout tokens (Sigil sends it whenever
    /// the sign-in came from a browser session).
    #[arg(long)]
    pub backchannel_logout_session_required: bool,
    /// For a private_key_jwt client: the https URL of its JWK Set (public keys).
    #[arg(long)]
    pub jwks_uri: Option<String>,
    /// For a private_key_jwt client: a file holding its JWK Set (public keys, JSON).
    #[arg(long)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// The client must send its authorization requests through POST /par first
    /// (RFC 9126 pushed authorization requests).
    #[arg(long)]
    pub require_pushed_authorization_requests: bool,
    /// Every token request of the client must carry a DPoP proof, so all its tokens are
    /// bound to its key (RFC 9449 dpop_bound_access_tokens).
    #[arg(long)]
    pub require_dpop: bool,
}

/// How a new client authenticates (RFC 7591 `token_endpoint_auth_method`), named as the
/// RFC names it (`private_key_jwt`); the kebab-case forms are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethodArg {
    /// A generated secret, sent in HTTP Basic (or the body).
    #[value(name = "client_secret_basic", alias = "client-secret-basic")]
    ClientSecretBasic,
    /// A generated secret, sent in the body (or HTTP Basic).
    #[value(name = "client_secret_post", alias = "client-secret-post")]
    ClientSecretPost,
    /// A JWT signed with the client's own key (RFC 7523); give --jwks-uri or --jwks-file.
    #[value(name = "private_key_jwt", alias = "private-key-jwt")]
    PrivateKeyJwt,
    /// No authentication: a public client (the same as --public).
    None,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys and their state (next, active, retired).
    List(KeysArgs),
    /// Publish a new key now; it starts signing once the JWKS cache lifetime has passed.
    Rotate(KeysRotateArgs),
    /// Delete retired keys that no still-valid token can have been signed with.
    Prune(KeysArgs),
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub lifetimes: Lifetimes,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub lifetimes: Lifetimes,
    /// Sign with the new key at once (after a key compromise). Verifiers holding a cached
    /// JWKS will reject new tokens until they refetch it.
    #[arg(long)]
    pub immediately: bool,
}

/// Parses `90s`, `10m`, `1h`, `30d` and the like.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("invalid duration {value:?}: {e}"))
}

/// A duration greater than zero (a zero timeout would close every connection at once).
pub fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err(format!("must be greater than zero, got {value:?}"));
    }
    Ok(duration)
}

/// The first sign-in wait: whole seconds, at least 1s, at most the longest wait (15m).
pub fn parse_first_wait(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(900) {
        return Err(format!(
            "--sign-in-first-wait is between 1s and 15m, got {value:?}"
        ));
    }
    Ok(duration)
}

/// A cookie name: 1 to 64 letters, digits, `-` or `_` (so that it needs no quoting).
pub fn parse_cookie_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(value.to_string())
    } else {
        Err(format!(
            "a cookie name is 1 to 64 letters, digits, '-' or '_', got {value:?}"
        ))
    }
}

/// Whole seconds of a duration, as the protocol uses them.
pub fn secs(duration: Duration) -> i64 {
    duration.as_secs().min(i64::MAX as u64) as i64
}

/// The refresh reuse grace window: a duration of at most 60 seconds. A longer window
/// would let a stolen token be replayed for long without revoking anything.
pub fn parse_grace(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration > Duration::from_secs(60) {
        return Err(format!(
            "--refresh-reuse-grace is at most 60s (a longer window keeps stolen tokens useful), got {value:?}"
        ));
    }
    Ok(duration)
}
