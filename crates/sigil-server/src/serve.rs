//! `sigil serve`: open the database, load keys, bootstrap the first admin, and run the
//! HTTP server (and the metrics listener, if asked for) until SIGTERM or Ctrl-C, letting
//! in-flight requests finish within the shutdown timeout.

use crate::config::{secs, Cli, ServeArgs};
use crate::connections::{self, ConnectionLimits, Shutdown};
use crate::error::CommandError;
use crate::http::{app, metrics_app};
use crate::keyfiles::{spawn_watcher, KeyDir};
use crate::state::{AppState, CachedDocument};
use crate::store::{Database, DatabaseOptions};
use sigil_core::accounts::{Accounts, AccountsConfig};
use sigil_core::admin::Admin;
use sigil_core::clock::{Clock, SystemClock};
use sigil_core::cpu::CpuPool;
use sigil_core::keys::KeyRing;
use sigil_core::password::PasswordHasher;
use sigil_core::registration::{RegistrationConfig, RegistrationMode, Registrations};
use sigil_core::secret::{random_token, Secret};
use sigil_core::{Authority, AuthorityConfig};

/// The factor key's file in the keys directory: it seals TOTP secrets and keys the
/// recovery-code hashes (see `sigil_core::factors::seal`).
pub const FACTOR_KEY_FILE: &str = "factors.key";
/// The key DPoP nonces are made with (32 bytes, in the keys directory).
pub const DPOP_NONCE_KEY_FILE: &str = "dpop-nonce.key";
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Number of CPUs, for default pool sizes.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Builds the application state from options, an opened database and the key directory
/// (generating the first key if there is none).
pub async fn build_state(
    args: &ServeArgs,
    database: Database,
    keys: &KeyDir,
) -> Result<AppState, CommandError> {
    let issuer = args.issuer.trim_end_matches('/').to_string();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(CommandError::Invalid(format!(
            "--issuer must be an http(s) URL, got {issuer:?}"
        )));
    }
    let clock = Arc::new(SystemClock);
    let now = clock.now();
    let dir = keys.clone();
    let (set, devices) = tokio::task::spawn_blocking(move || {
        dir.create()?;
        dir.tighten_permissions()?;
        if let Some(kid) = dir.ensure_key(now)? {
            tracing::info!(%kid, "generated the first signing key");
        }
        Ok::<_, crate::keyfiles::KeyDirError>((dir.load()?, dir.device_key()?))
    })
    .await
    .map_err(|e| CommandError::Invalid(format!("key loading failed: {e}")))??;
    let ring = Arc::new(KeyRing::new(set));
    let params = args.passwords.params();
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(params))
        .await
        .map_err(|e| CommandError::Invalid(e.to_string()))?
        .map_err(CommandError::Invalid)?;
    let mut config = AuthorityConfig::new(issuer.clone());
    config.mfa = args.mfa.into();
    config.access_token_ttl = secs(args.lifetimes.access_token_ttl);
    config.id_token_ttl = secs(args.lifetimes.id_token_ttl);
    config.refresh_token_ttl = secs(args.refresh_token_ttl);
    config.refresh_token_absolute_ttl = secs(args.refresh_token_absolute_ttl);
    config.public_client_refresh_token_ttl = secs(args.public_client_refresh_token_ttl);
    config.public_client_refresh_token_absolute_ttl =
        secs(args.public_client_refresh_token_absolute_ttl).min(config.refresh_token_absolute_ttl);
    config.client_cache_ttl = secs(args.client_cache_ttl);
    config.self_registered_scopes =
        sigil_core::scope::ScopeSet::parse(&args.registration.self_registered_scopes)
            .map_err(|e| {
                CommandError::Invalid(format!("--self-registered-scopes: {}", e.description))
            })?
            .to_vec();
    config.refresh_reuse_grace = secs(args.refresh_reuse_grace);
    config.require_pushed_authorization_requests =
        args.pushed_requests.require_pushed_authorization_requests;
    config.pushed_requests_max_per_client = args.pushed_requests.pushed_requests_max_per_client;
    config.dpop.proof_max_age = secs(args.dpop.dpop_proof_max_age);
    if args.dpop.dpop_nonce {
        let key = crate::keyfiles::load_or_create_secret(
            keys.path(),
            DPOP_NONCE_KEY_FILE,
            "DPoP nonce key",
        )
        .and_then(|key| sigil_core::dpop::NonceKey::new(&key, sigil_core::dpop::NONCE_PERIOD))
        .map_err(CommandError::Invalid)?;
        config.dpop.nonces = Some(key);
    }
    config.throttle.account_free_failures = args.sign_in_free_failures;
    config.throttle.address_free_failures = args.sign_in_free_failures_per_address;
    config.throttle.base_delay = secs(args.sign_in_first_wait);
    let password_workers = args.passwords.password_workers.unwrap_or_else(cpus);
    let signing_workers = args.signing_workers.unwrap_or_else(cpus);
    let client_documents = client_documents(args, &config, database.store(), clock.clone())?;
    let mut authority = Authority::new(
        config,
        database.store(),
        ring,
        clock,
        Arc::new(hasher),
        CpuPool::new(
            "sigil-hash",
            password_workers,
            args.passwords.password_queue,
        ),
        CpuPool::new("sigil-sign", signing_workers, 4096),
    )
    .with_client_documents(client_documents);
    let key_fetcher = crate::outbound::Outbound::new(crate::outbound::OutboundSettings {
        allow_loopback: args.jwks_uri_allow_loopback,
        ..Default::default()
    })
    .map_err(CommandError::Invalid)?;
    authority.set_client_key_source(Arc::new(crate::client_keys::ClientKeyFetcher::new(
        Arc::new(key_fetcher),
        authority.clock(),
    )));
    let sessions = crate::sessions::AnySessionStore::open(&database)
        .await
        .map_err(|e| CommandError::Database(crate::store::map_err(e)))?;
    // Builds the common-password set now, not at the first password set.
    let common = sigil_core::password_rules::common_password_count();
    tracing::debug!(common, "common passwords loaded");
    let mailer = crate::mail::Mailer::open(
        &args.mail,
        keys.path(),
        &issuer,
        database.store(),
        authority.clock(),
    )
    .map_err(CommandError::Invalid)?;
    let mut accounts_config = AccountsConfig::new(issuer.clone());
    accounts_config.sign_up = args.sign_up.into();
    accounts_config.throttle = authority.config().throttle;
    let accounts = Accounts::for_authority(&authority, mailer.clone(), accounts_config);
    let factor_key =
        crate::keyfiles::load_or_create_secret(keys.path(), FACTOR_KEY_FILE, "factor key")
            .map_err(CommandError::Invalid)?;
    let mut factors_config = sigil_core::factors::FactorsConfig::new(issuer.clone());
    factors_config.policy = authority.config().mfa;
    factors_config.throttle = authority.config().throttle;
    let factor_key = Arc::new(
        sigil_core::factors::FactorKey::from_bytes(factor_key)
            .map_err(|e| CommandError::Invalid(e.to_string()))?,
    );
    let factors = sigil_core::factors::SecondFactors::for_authority(
        &authority,
        mailer.clone(),
        factor_key.clone(),
        factors_config,
    );
    let federation = sigil_core::federation::Federation::for_authority(&authority, factor_key);
    let upstreams = crate::upstream::Upstreams::new().map_err(CommandError::Invalid)?;
    let is_https = issuer.starts_with("https://");
    let authority = Arc::new(authority);
    let logouts = crate::backchannel::LogoutDeliverer::new(authority.clone(), database.store())
        .map_err(CommandError::Invalid)?;
    let registrations = Registrations::for_authority(
        &authority,
        RegistrationConfig {
            mode: match args.registration.registration {
                crate::config::RegistrationMode::Closed => RegistrationMode::Closed,
                crate::config::RegistrationMode::Token => RegistrationMode::Token,
                crate::config::RegistrationMode::Open => RegistrationMode::Open,
            },
            per_address_per_hour: args.registration.registration_rate,
            max_per_address: args.registration.registration_max_per_address,
            max_clients: args.registration.registration_max_clients,
            unused_ttl: secs(args.registration.registration_unused_ttl),
        },
    );
    let discovery = CachedDocument::new(&discovery_document(
        authority.config(),
        registrations.mode(),
    ));
    Ok(AppState {
        accounts: Arc::new(accounts),
        factors: Arc::new(factors),
        passkeys: Arc::new(crate::passkeys::Passkeys::for_issuer(&issuer)),
        federation: Arc::new(federation),
        upstreams: Arc::new(upstreams),
        mailer,
        session_cookie: args
            .session_cookie_name
            .clone()
            .unwrap_or_else(|| crate::sessions::cookie_name(is_https).to_string()),
        admin: Arc::new(Admin::for_authority(&authority)),
        authority,
        sessions,
        session_ttl: secs(args.session_ttl),
        request_timeout: args.request_timeout,
        database,
        discovery: Arc::new(discovery),
        registrations: Arc::new(registrations),
        jwks_max_age: args.lifetimes.jwks_max_age.as_secs(),
        keys_dir: keys.clone(),
        metrics: Arc::new(crate::metrics::Metrics::new()),
        devices: Arc::new(devices),
        cors: Arc::new(crate::http::cors::AllowedOrigins::new(
            args.client_cache_ttl,
        )),
        logouts,
        activity: crate::activity::Settings::from(&args.activity),
    })
}

/// Client ID metadata documents: URL client ids fetched under the outbound limits, with
/// the scopes self-registered clients may have.
fn client_documents(
    args: &ServeArgs,
    config: &AuthorityConfig,
    store: Arc<dyn sigil_core::store::Store>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<crate::client_documents::MetadataDocuments>, CommandError> {
    let allow_loopback = args.client_documents.cimd_allow_loopback;
    if allow_loopback {
        tracing::warn!(
            "--cimd-allow-loopback is on: client ID metadata documents are fetched from loopback addresses too (tests and development only)"
        );
    }
    let policy = sigil_core::cimd::DocumentPolicy {
        allow_loopback,
        scopes: config.self_registered_scopes.clone(),
    };
    crate::client_documents::MetadataDocuments::new(policy, store, clock)
        .map(Arc::new)
        .map_err(CommandError::Invalid)
}

/// The server metadata (OIDC Discovery, RFC 8414), with the registration endpoint when
/// registration is not closed (RFC 8414 §2: present only where clients may register).
fn discovery_document(
    config: &sigil_core::AuthorityConfig,
    registration: RegistrationMode,
) -> serde_json::Value {
    let issuer = config.issuer.as_str();
    let mut document = sigil_core::discovery::metadata(config);
    if registration != RegistrationMode::Closed {
        document["registration_endpoint"] =
            serde_json::Value::from(format!("{}/register", issuer.trim_end_matches('/')));
    }
    document
}

/// The file a generated first-admin password is written to when standard output is not a
/// terminal (under Docker or systemd it is the log).
pub const ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// On first start with an empty user table: creates `admin` with a one-time password
/// (random unless given). A generated password is shown once and never logged: on the
/// terminal when standard output is one, else written to a new 0600 file
/// [`ADMIN_PASSWORD_FILE`] beside the SQLite database (or in the keys directory, for
/// PostgreSQL), whose path is printed instead.
pub async fn bootstrap_admin(
    state: &AppState,
    given_password: Option<&str>,
) -> Result<(), CommandError> {
    let generated = given_password.is_none();
    let password = given_password
        .map(str::to_string)
        .unwrap_or_else(|| random_token(18));
    let created = state
        .admin
        .create_first_admin(Secret::new(password.clone()), generated)
        .await
        .map_err(|error| match error {
            sigil_core::admin::AdminError::Store(e) => CommandError::Database(e),
            other => CommandError::Invalid(other.to_string()),
        })?;
    if created.is_none() {
        // A user exists already, or another replica bootstrapped at the same moment.
        return Ok(());
    }
    let issuer = &state.authority.config().issuer;
    let shown = if !generated {
        "the one given in SIGIL_ADMIN_PASSWORD".to_string()
    } else if std::io::stdout().is_terminal() {
        format!("{password}   (shown only this once; change it at first sign-in)")
    } else {
        let path = admin_password_path(state);
        write_admin_password(&path, &password, issuer)?;
        tracing::info!(path = %path.display(), "wrote the first admin's one-time password to a file");
        format!(
            "written to {} (mode 0600; delete it after the first sign-in)",
            path.display()
        )
    };
    println!("Created the first admin account.");
    println!("  user name:  admin");
    println!("  password:   {shown}");
    println!("  admin page: {issuer}/admin");
    tracing::info!("created the bootstrap admin account");
    Ok(())
}

/// Where [`bootstrap_admin`] writes a generated password: beside the SQLite database file,
/// or in the keys directory (already private, 0700) for PostgreSQL.
pub fn admin_password_path(state: &AppState) -> PathBuf {
    let dir = match &state.database {
        Database::Sqlite(store) => store
            .pool()
            .connect_options()
            .get_filename()
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from(".")),
        Database::Postgres(_) => state.keys_dir.path().to_path_buf(),
    };
    dir.join(ADMIN_PASSWORD_FILE)
}

/// Writes the password to a new file only its owner can read, replacing any old one (a
/// leftover of an earlier database), never through a symbolic link.
fn write_admin_password(path: &Path, password: &str, issuer: &str) -> Result<(), CommandError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |e: std::io::Error| {
        CommandError::Invalid(format!(
            "cannot write the first admin's password to {}: {e} (or set SIGIL_ADMIN_PASSWORD)",
            path.display()
        ))
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    writeln!(
        file,
        "Sigil's first admin account (one-time password: change it at first sign-in, then delete this file)\nuser name:  admin\npassword:   {password}\nadmin page: {issuer}/admin"
    )
    .and_then(|()| file.sync_all())
    .map_err(failed)
}

/// Runs the server.
pub async fn serve(cli: &Cli, args: &ServeArgs) -> Result<(), CommandError> {
    let options = DatabaseOptions {
        max_connections: args.db_max_connections,
        acquire_timeout: args.db_acquire_timeout,
    };
    let database = Database::open(&cli.database_url, &options).await?;
    let keys = KeyDir::new(&cli.keys_dir);
    let state = build_state(args, database.clone(), &keys).await?;
    // An empty SIGIL_ADMIN_PASSWORD (a blank line in an env file) counts as unset: never an
    // admin with an empty password.
    let given_password = args.admin_password.as_deref().filter(|p| !p.is_empty());
    bootstrap_admin(&state, given_password).await?;
    let watcher = spawn_watcher(
        keys,
        state.authority.keys().clone(),
        args.keys_poll_interval,
    );
    let housekeeping = spawn_housekeeping(state.clone());
    let activity_writer = crate::activity::spawn_writer(state.clone());
    let last_write = state.clone();
    state.metrics.attach_mail(state.mailer.metrics());
    let mail_worker = state.mailer.clone().spawn_worker();
    state.metrics.attach_logouts(state.logouts.metrics());
    let logout_worker = state.logouts.clone().spawn_worker();
    let listener = bind(args.bind).await?;
    let metrics_listener = match args.metrics_bind {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let max_connections = args
        .max_connections
        .unwrap_or_else(|| connections::default_max_connections(args.db_max_connections));
    let limits = ConnectionLimits {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
    };
    let addr = listener.local_addr()?;
    let mail = state.mailer.describe();
    tracing::info!("{mail}");
    println!("{mail}");
    tracing::info!(%addr, issuer = %state.authority.config().issuer, database = database.kind(), max_connections, "sigil is ready");
    println!("sigil listening on http://{addr}");
    let (trigger, shutdown) = Shutdown::new();
    let metrics = match metrics_listener {
        Some(listener) => {
            let metrics_addr = listener.local_addr()?;
            tracing::info!(addr = %metrics_addr, "metrics served at /metrics");
            println!("metrics at http://{metrics_addr}/metrics");
            let limits = ConnectionLimits {
                max_connections: connections::METRICS_MAX_CONNECTIONS,
                ..limits
            };
            Some(tokio::spawn(connections::serve(
                listener,
                metrics_app(state.clone()),
                limits,
                shutdown.clone(),
                args.shutdown_timeout,
            )))
        }
        None => None,
    };
    let signal = tokio::spawn(async move {
        connections::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        trigger.trigger();
    });
    connections::serve(
        listener,
        app(state),
        limits,
        shutdown,
        args.shutdown_timeout,
    )
    .await;
    activity_writer.abort();
    // What the last requests counted goes out before the database closes.
    crate::activity::write(&last_write).await;
    signal.abort();
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    watcher.abort();
    housekeeping.abort();
    mail_worker.abort();
    logout_worker.abort();
    database.close().await;
    tracing::info!("sigil stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, CommandError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CommandError::Bind { addr, source })
}

/// Deletes expired refresh families, deny-list entries and sessions once an hour.
fn spawn_housekeeping(state: AppState) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    tokio::spawn(
        async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(3600));
            loop {
                ticker.tick().await;
                match state.authority.delete_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted expired records"),
                    Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
                }
                let now = tower_sessions::cookie::time::OffsetDateTime::now_utc();
                match state.registrations.delete_unused().await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "removing unused self-registered clients failed")
                    }
                }
                crate::activity::prune(&state).await;
                match state.sessions.delete_expired(&state.database, now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "session housekeeping failed"),
                }
            }
        }
        .instrument(tracing::info_span!("task", task = "housekeeping")),
    )
}
