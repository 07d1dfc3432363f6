//! The non-serving commands: `migrate`, `user …`, `client …`, `keys list|rotate|prune`,
//! `audit list|verify`. User and client changes go through the same core operations as the
//! admin console and are audited with the actor `cli`.

use crate::config::{
    secs, AuditListArgs, AuthMethodArg, ClientAddArgs, ClientRefArgs, ClientSettings,
    ClientUpdateArgs, JsonArgs, KeysArgs, KeysRotateArgs, ListArgs, PasswordArgs,
    RegistrationTokenCreateArgs, RegistrationTokenRefArgs, ResourceAddArgs, ResourceRefArgs,
    UserAddArgs, UserInviteArgs, UserPasswordArgs, UserRefArgs, UserRevokeGrantArgs,
    UserUpdateArgs,
};
use crate::error::CommandError;
use crate::keyfiles::KeyDir;
use crate::store::{Database, DatabaseOptions};
use sigil_core::accounts::{AccountError, Accounts, AccountsConfig};
use sigil_core::admin::{Admin, AdminError, AuditVerdict, NewUser, ProfileUpdate};
use sigil_core::audit::{AuditFilter, Caller, ChainBreak};
use sigil_core::client::{AuthMethod, Client, ClientRegistration};
use sigil_core::clock::{Clock, SystemClock};
use sigil_core::cpu::CpuPool;
use sigil_core::keys::KeyState;
use sigil_core::password::PasswordHasher;
use sigil_core::secret::Secret;
use sigil_core::user::{validate_username, User};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

async fn open(database_url: &str) -> Result<Database, CommandError> {
    let options = DatabaseOptions {
        max_connections: 2,
        ..DatabaseOptions::default()
    };
    Ok(Database::open(database_url, &options).await?)
}

/// `sigil migrate`
pub async fn migrate(database_url: &str) -> Result<(), CommandError> {
    let options = DatabaseOptions {
        max_connections: 1,
        ..DatabaseOptions::default()
    };
    let database = Database::connect(database_url, &options).await?;
    let applied = database.migrate().await?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!("applied migrations: {applied:?}");
    }
    database.close().await;
    Ok(())
}

/// The administration service for a command: the database alone, and a password hasher
/// (with one worker thread) only for the commands that set a password. Its actions are
/// audited with the actor `cli`.
fn admin(database: &Database, passwords: Option<&PasswordArgs>) -> Result<Admin, CommandError> {
    let admin = Admin::new(database.store(), Arc::new(SystemClock));
    let Some(passwords) = passwords else {
        return Ok(admin);
    };
    let hasher = PasswordHasher::new(passwords.params()).map_err(CommandError::Invalid)?;
    Ok(admin.with_password_hashing(Arc::new(hasher), CpuPool::new("sigil-hash", 1, 4)))
}

fn admin_error(error: AdminError) -> CommandError {
    match error {
        AdminError::Store(e) => CommandError::Database(e),
        AdminError::NotFound => CommandError::Invalid("no such record".into()),
        other => CommandError::Invalid(other.to_string()),
    }
}

fn read_password() -> Result<Secret, CommandError> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input)
        .to_string();
    Ok(Secret::new(password))
}

async fn find_user_named(admin: &Admin, username: &str) -> Result<User, CommandError> {
    admin
        .find_user_by_username(username)
        .await
        .map_err(admin_error)?
        .ok_or_else(|| CommandError::Invalid(format!("no user named {username:?}")))
}

/// The account service for a command that mails (`user add --unverified-email`, `user
/// invite`): the outbox in the database, delivered by the running server or, right away, by
/// this command's own delivery pass.
fn accounts(
    database: &Database,
    keys_dir: &Path,
    mail: &crate::mail::MailArgs,
    issuer: &str,
    passwords: &PasswordArgs,
) -> Result<(Accounts, Arc<crate::mail::Mailer>), CommandError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let issuer = issuer.trim_end_matches('/');
    let mailer = crate::mail::Mailer::open(mail, keys_dir, issuer, database.store(), clock.clone())
        .map_err(CommandError::Invalid)?;
    let hasher = PasswordHasher::new(passwords.params()).map_err(CommandError::Invalid)?;
    let accounts = Accounts::new(
        database.store(),
        clock,
        (Arc::new(hasher), CpuPool::new("sigil-hash", 1, 4)),
        mailer.clone(),
        AccountsConfig::new(issuer),
    );
    Ok((accounts, mailer))
}

fn account_error(error: AccountError) -> CommandError {
    match error {
        AccountError::Store(e) => CommandError::Database(e),
        AccountError::Fields(fields) => {
            CommandError::Invalid(sigil_core::accounts::field_messages(&fields))
        }
        other => CommandError::Invalid(other.to_string()),
    }
}

/// Says where a command's message went: into the outbox, which the running server (any
/// replica) delivers within seconds. The command does not deliver it itself: with other
/// mail settings than the server's, it would send the server's other pending messages the
/// wrong way.
fn queued_note() {
    eprintln!("the message is in the outbox: the running server delivers it within seconds");
}

/// `sigil user invite --email E`
pub async fn user_invite(
    database_url: &str,
    keys_dir: &Path,
    args: &UserInviteArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let (accounts, _mailer) = accounts(
        &database,
        keys_dir,
        &args.mail,
        &args.issuer,
        // An invitation sets no password: the cheapest hasher will do.
        &PasswordArgs {
            argon2_memory_kib: 8,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            password_workers: Some(1),
            password_queue: 1,
        },
    )?;
    let link = accounts
        .invite(&Caller::cli(), &args.email)
        .await
        .map_err(account_error)?;
    queued_note();
    println!("{}", link.expose());
    Ok(())
}

/// `sigil user add … --password-stdin`
pub async fn user_add(
    database_url: &str,
    keys_dir: &Path,
    args: &UserAddArgs,
) -> Result<(), CommandError> {
    validate_username(&args.username).map_err(|e| CommandError::Invalid(e.into()))?;
    let password = read_password()?;
    let database = open(database_url).await?;
    let admin = admin(&database, Some(&args.passwords))?;
    let new = NewUser {
        username: args.username.clone(),
        email: args.email.clone(),
        name: args.name.clone(),
        is_admin: args.admin,
        must_change_password: false,
        unverified_email: args.unverified_email,
    };
    let user = admin
        .create_user(&Caller::cli(), new, password)
        .await
        .map_err(admin_error)?;
    if args.unverified_email {
        let (accounts, _mailer) = accounts(
            &database,
            keys_dir,
            &args.mail,
            &args.issuer,
            &args.passwords,
        )?;
        accounts
            .mail_verification(&Caller::cli(), &user.id)
            .await
            .map_err(account_error)?;
        queued_note();
    }
    println!(
        "{}",
        serde_json::json!({ "user_id": user.id, "username": user.username })
    );
    database.close().await;
    Ok(())
}

fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "user_id": user.id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "email_verified": user.email_verified,
        "is_admin": user.is_admin,
        "is_disabled": user.is_disabled,
        "created_at": user.created_at,
    })
}

/// `sigil user list`
pub async fn user_list(database_url: &str, args: &ListArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let users = admin(&database, None)?
        .list_users(args.search.as_deref(), args.limit)
        .await
        .map_err(admin_error)?;
    database.close().await;
    if args.json {
        let list: Vec<_> = users.iter().map(user_json).collect();
        println!("{}", serde_json::Value::from(list));
        return Ok(());
    }
    println!(
        "{:<24}  {:<32}  {:<6}  STATUS",
        "USERNAME", "EMAIL", "ADMIN"
    );
    for user in users {
        println!(
            "{:<24}  {:<32}  {:<6}  {}",
            user.username,
            user.email.as_deref().unwrap_or("-"),
            if user.is_admin { "yes" } else { "no" },
            if user.is_disabled {
                "disabled"
            } else {
                "active"
            }
        );
    }
    Ok(())
}

/// `sigil user update`
pub async fn user_update(database_url: &str, args: &UserUpdateArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let mut user = find_user_named(&admin, &args.username).await?;
    if args.email.is_some() || args.name.is_some() || args.email_verified.is_some() {
        let update = ProfileUpdate {
            email: args.email.clone().or(user.email.clone()),
            email_verified: args.email_verified.unwrap_or(user.email_verified),
            name: args.name.clone().or(user.name.clone()),
        };
        user = admin
            .update_profile(&Caller::cli(), &user.id, update)
            .await
            .map_err(admin_error)?;
    }
    if let Some(is_admin) = args.admin {
        user = admin
            .set_admin(&Caller::cli(), &user.id, is_admin)
            .await
            .map_err(admin_error)?;
    }
    println!("{}", user_json(&user));
    database.close().await;
    Ok(())
}

/// `sigil user set-password --password-stdin`
pub async fn user_set_password(
    database_url: &str,
    args: &UserPasswordArgs,
) -> Result<(), CommandError> {
    let password = read_password()?;
    let database = open(database_url).await?;
    let admin = admin(&database, Some(&args.passwords))?;
    let user = find_user_named(&admin, &args.username).await?;
    admin
        .reset_password(&Caller::cli(), &user.id, password, args.must_change)
        .await
        .map_err(admin_error)?;
    println!(
        "password of {} set; their sessions and refresh tokens ended",
        user.username
    );
    database.close().await;
    Ok(())
}

/// `sigil user disable` / `sigil user enable`
pub async fn user_set_disabled(
    database_url: &str,
    args: &UserRefArgs,
    is_disabled: bool,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let user = find_user_named(&admin, &args.username).await?;
    admin
        .set_disabled(&Caller::cli(), &user.id, is_disabled)
        .await
        .map_err(admin_error)?;
    if is_disabled {
        println!(
            "{} disabled; sessions and refresh tokens revoked",
            user.username
        );
    } else {
        println!("{} enabled", user.username);
    }
    database.close().await;
    Ok(())
}

/// `sigil user sign-out`: sign a user out everywhere.
pub async fn user_sign_out(database_url: &str, args: &UserRefArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let user = find_user_named(&admin, &args.username).await?;
    admin
        .sign_out_everywhere(&Caller::cli(), &user.id)
        .await
        .map_err(admin_error)?;
    println!(
        "{} signed out everywhere; sessions, refresh tokens and access tokens revoked",
        user.username
    );
    database.close().await;
    Ok(())
}

/// `sigil user revoke-grant`
pub async fn user_revoke_grant(
    database_url: &str,
    args: &UserRevokeGrantArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let user = find_user_named(&admin, &args.username).await?;
    admin
        .revoke_grant(&Caller::cli(), &user.id, &args.client_id)
        .await
        .map_err(admin_error)?;
    println!("revoked what {} granted {}", user.username, args.client_id);
    database.close().await;
    Ok(())
}

fn registration(
    settings: &ClientSettings,
    is_public: bool,
    auth_method: Option<AuthMethodArg>,
) -> Result<ClientRegistration, CommandError> {
    let jwks =
        match &settings.jwks_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                CommandError::Invalid(format!("--jwks-file {}: {e}", path.display()))
            })?),
            None => None,
        };
    let auth_method = auth_method.map(|method| match method {
        AuthMethodArg::ClientSecretBasic => AuthMethod::ClientSecretBasic,
        AuthMethodArg::ClientSecretPost => AuthMethod::ClientSecretPost,
        AuthMethodArg::PrivateKeyJwt => AuthMethod::PrivateKeyJwt,
        AuthMethodArg::None => AuthMethod::None,
    });
    Ok(ClientRegistration {
        name: settings.name.clone(),
        is_public,
        redirect_uris: settings.redirect_uris.clone(),
        post_logout_redirect_uris: settings.post_logout_redirect_uris.clone(),
        grant_types: settings.grant_types.clone(),
        scopes: settings.scopes.clone(),
        audiences: settings.audiences.clone(),
        is_first_party: settings.first_party,
        always_issue_refresh_token: settings.always_issue_refresh_token,
        access_token_ttl: settings.access_token_ttl.map(secs),
        refresh_token_ttl: settings.refresh_token_ttl.map(secs),
        allowed_origins: settings.allowed_origins.clone(),
        backchannel_logout_uri: settings.backchannel_logout_uri.clone(),
        backchannel_logout_session_required: settings.backchannel_logout_session_required,
        token_endpoint_auth_method: auth_method,
        jwks,
        jwks_uri: settings.jwks_uri.clone(),
        require_pushed_authorization_requests: settings.require_pushed_authorization_requests,
        dpop_bound_access_tokens: settings.require_dpop,
    })
}

fn client_json(client: &Client) -> serde_json::Value {
    serde_json::json!({
        "client_id": client.id,
        "name": client.name,
        "type": if client.is_confidential() { "confidential" } else { "public" },
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scopes": client.scopes,
        "audiences": client.audiences,
        "first_party": client.is_first_party,
        "always_issue_refresh_token": client.always_issue_refresh_token,
        "access_token_ttl": client.access_token_ttl,
        "refresh_token_ttl": client.refresh_token_ttl,
        "allowed_origins": client.allowed_origins,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "jwks_uri": client.jwks_uri,
        "jwks": client.jwks.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
        "require_pushed_authorization_requests": client.require_pushed_authorization_requests,
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
        "self_registered": client.registration.is_some(),
        "registered_from": client.registered_from,
    })
}

fn print_client(client: &Client, secret: Option<&Secret>, json: bool) {
    if json {
        let mut out = serde_json::json!({ "client_id": client.id });
        if let Some(secret) = secret {
            out["client_secret"] = secret.expose().into();
        }
        println!("{out}");
        return;
    }
    println!("client_id:     {}", client.id);
    if let Some(secret) = secret {
        println!("client_secret: {}", secret.expose());
        println!("The secret is shown only this once: only its hash is stored.");
    }
    let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
    println!("grant types:   {}", grants.join(", "));
    println!("scopes:        {}", client.scopes.join(" "));
}

/// `sigil client add …`
pub async fn client_add(database_url: &str, args: &ClientAddArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let (client, secret) = admin
        .create_client(
            &Caller::cli(),
            registration(
                &args.settings,
                args.public || args.token_endpoint_auth_method == Some(AuthMethodArg::None),
                args.token_endpoint_auth_method,
            )?,
        )
        .await
        .map_err(admin_error)?;
    database.close().await;
    print_client(&client, secret.as_ref(), args.json);
    Ok(())
}

/// `sigil client list`
pub async fn client_list(database_url: &str, args: &ListArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let clients = admin(&database, None)?
        .list_clients(args.search.as_deref(), args.limit)
        .await
        .map_err(admin_error)?;
    database.close().await;
    if args.json {
        let list: Vec<_> = clients.iter().map(client_json).collect();
        println!("{}", serde_json::Value::from(list));
        return Ok(());
    }
    println!("{:<24}  {:<12}  NAME", "CLIENT ID", "TYPE");
    for client in clients {
        println!(
            "{:<24}  {:<12}  {}",
            client.id,
            if client.is_confidential() {
                "confidential"
            } else {
                "public"
            },
            client.name
        );
    }
    Ok(())
}

/// `sigil client show`
pub async fn client_show(database_url: &str, args: &ClientRefArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let client = admin(&database, None)?
        .find_client(&args.client_id)
        .await
        .map_err(admin_error)?
        .ok_or_else(|| CommandError::Invalid(format!("no client {:?}", args.client_id)))?;
    database.close().await;
    let json = client_json(&client);
    if args.json {
        println!("{json}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    Ok(())
}

/// `sigil client update`
pub async fn client_update(
    database_url: &str,
    args: &ClientUpdateArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let client = admin
        .update_client(
            &Caller::cli(),
            &args.client_id,
            registration(&args.settings, false, None)?,
        )
        .await
        .map_err(admin_error)?;
    database.close().await;
    println!("{}", client_json(&client));
    Ok(())
}

/// `sigil client rotate-secret`
pub async fn client_rotate_secret(
    database_url: &str,
    args: &ClientRefArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    let (client, secret) = admin
        .rotate_client_secret(&Caller::cli(), &args.client_id)
        .await
        .map_err(admin_error)?;
    database.close().await;
    print_client(&client, Some(&secret), args.json);
    Ok(())
}

/// `sigil client delete`
pub async fn client_delete(database_url: &str, args: &ClientRefArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let admin = admin(&database, None)?;
    admin
        .delete_client(&Caller::cli(), &args.client_id)
        .await
        .map_err(admin_error)?;
    database.close().await;
    println!("deleted client {}", args.client_id);
    Ok(())
}

/// `sigil audit list`
pub async fn audit_list(database_url: &str, args: &AuditListArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let filter = AuditFilter {
        action_prefix: args.action.clone(),
        actor: args.actor.clone(),
        target: args.target.clone(),
        before_seq: None,
        limit: args.limit.clamp(1, 10_000),
    };
    let entries = admin(&database, None)?
        .list_audit(&filter)
        .await
        .map_err(admin_error)?;
    database.close().await;
    for entry in entries {
        let r = &entry.record;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "seq": entry.seq, "at": r.at, "actor": r.actor, "actor_id": r.actor_id,
                    "action": r.action, "target": r.target, "detail": r.detail,
                    "address": r.address, "hash": entry.hash,
                })
            );
        } else {
            println!(
                "#{:<6} {}  {:<16} {:<28} {:<24} {}{}",
                entry.seq,
                rfc3339(r.at),
                r.actor,
                r.action,
                r.target.as_deref().unwrap_or("-"),
                r.detail,
                r.address
                    .as_deref()
                    .map(|a| format!(" (from {a})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `sigil audit verify`: walks the whole chain. Exit status 0 when intact; an error naming
/// the first broken entry otherwise.
pub async fn audit_verify(database_url: &str) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let verdict = admin(&database, None)?.verify_audit_log().await;
    database.close().await;
    match verdict.map_err(admin_error)? {
        AuditVerdict::Intact {
            entries,
            last: Some((seq, hash)),
        } => {
            println!("audit log intact: {entries} entries, #1 to #{seq}; last hash {hash}")
        }
        AuditVerdict::Intact { last: None, .. } => println!("audit log is empty"),
        AuditVerdict::Broken {
            at: ChainBreak { seq, reason },
            verified,
        } => {
            return Err(CommandError::Invalid(format!(
                "audit log chain broken at entry #{seq}: {reason} ({verified} entries before it verified)"
            )))
        }
    }
    Ok(())
}

/// Records a key action made from the command line. The key files are the truth; if the
/// database cannot be reached the action stands and a warning says it was not recorded.
async fn audit_key_action(database_url: &str, action: &str, kid: &str, detail: String) {
    let recorded = async {
        let database = open(database_url).await?;
        admin(&database, None)?
            .record_key_action(&Caller::cli(), action, kid, &detail)
            .await;
        database.close().await;
        Ok::<(), CommandError>(())
    };
    if let Err(error) = recorded.await {
        eprintln!("sigil: warning: {action} of {kid} not recorded in the audit log: {error}");
    }
}

fn rfc3339(unix: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn load(dir: &Path) -> Result<(KeyDir, sigil_core::keys::KeySet), CommandError> {
    let keys = KeyDir::new(dir);
    let set = keys.load()?;
    Ok((keys, set))
}

/// `sigil keys list`
pub fn keys_list(dir: &Path, _args: &KeysArgs) -> Result<(), CommandError> {
    let (_, set) = load(dir)?;
    if set.is_empty() {
        println!(
            "no keys in {} (sigil serve creates the first one)",
            dir.display()
        );
        return Ok(());
    }
    let now = SystemClock.now();
    println!(
        "{:<44}  {:<8}  {:<20}  {:<20}  RETIRED",
        "KID", "STATE", "CREATED", "ACTIVATES"
    );
    for (key, state) in set.states(now) {
        let retired = match state {
            KeyState::Retired { retired_at } => rfc3339(retired_at),
            _ => "-".into(),
        };
        println!(
            "{:<44}  {:<8}  {:<20}  {:<20}  {}",
            key.kid(),
            state.name(),
            rfc3339(key.created_at()),
            rfc3339(key.activates_at()),
            retired
        );
    }
    Ok(())
}

/// `sigil keys rotate`: the new key is published now and signs once every JWKS cache
/// (max-age) has had the chance to see it.
pub async fn keys_rotate(
    database_url: &str,
    dir: &Path,
    args: &KeysRotateArgs,
) -> Result<(), CommandError> {
    let keys = KeyDir::new(dir);
    let (kid, activates_at) = crate::keyfiles::rotate(
        &keys,
        SystemClock.now(),
        secs(args.lifetimes.jwks_max_age),
        args.immediately,
    )?;
    println!(
        "published key {kid}; it signs from {}",
        rfc3339(activates_at)
    );
    let how = if args.immediately {
        " (immediately)"
    } else {
        ""
    };
    audit_key_action(
        database_url,
        "key.rotated",
        &kid,
        format!("published; signs from {}{how}", rfc3339(activates_at)),
    )
    .await;
    Ok(())
}

/// `sigil keys prune`: removes retired keys whose every token has expired.
pub async fn keys_prune(
    database_url: &str,
    dir: &Path,
    args: &KeysArgs,
) -> Result<(), CommandError> {
    let keys = KeyDir::new(dir);
    let database = open(database_url).await?;
    let client_max = admin(&database, None)?
        .longest_client_access_token_ttl()
        .await
        .map_err(admin_error)?;
    database.close().await;
    let max_ttl = sigil_core::keys::longest_token_ttl(
        secs(args.lifetimes.access_token_ttl),
        secs(args.lifetimes.id_token_ttl),
        client_max,
    );
    let pruned = crate::keyfiles::prune(&keys, SystemClock.now(), max_ttl)?;
    if pruned.is_empty() {
        println!("nothing to prune");
    }
    for kid in pruned {
        println!("pruned key {kid}");
        audit_key_action(
            database_url,
            "key.pruned",
            &kid,
            "removed from the JWKS".into(),
        )
        .await;
    }
    Ok(())
}

/// The federation service of a command: the database, and the factor key (beside the
/// signing keys, made if missing) that seals client secrets.
fn federation(
    database: &Database,
    keys_dir: &Path,
) -> Result<sigil_core::federation::Federation, CommandError> {
    // A key made here, in a directory the servers do not read, would seal a secret they
    // cannot open: the key must exist already (the server makes it at its first start).
    if !keys_dir.join(crate::serve::FACTOR_KEY_FILE).exists() {
        return Err(CommandError::Invalid(format!(
            "there is no {} in {}: start the server once (it makes the key), or give the --keys-dir the servers use",
            crate::serve::FACTOR_KEY_FILE,
            keys_dir.display()
        )));
    }
    let key = crate::keyfiles::load_or_create_secret(
        keys_dir,
        crate::serve::FACTOR_KEY_FILE,
        "factor key",
    )
    .map_err(CommandError::Invalid)?;
    let key = sigil_core::factors::FactorKey::from_bytes(key)
        .map_err(|e| CommandError::Invalid(e.to_string()))?;
    Ok(sigil_core::federation::Federation::new(
        database.store(),
        Arc::new(SystemClock),
        Arc::new(key),
    ))
}

fn federation_error(error: sigil_core::federation::FederationError) -> CommandError {
    match error {
        sigil_core::federation::FederationError::Store(e) => CommandError::Database(e),
        other => CommandError::Invalid(other.to_string()),
    }
}

/// `sigil provider add`
pub async fn provider_add(
    database_url: &str,
    keys_dir: &Path,
    args: &crate::config::ProviderAddArgs,
) -> Result<(), CommandError> {
    use sigil_core::federation::{NewProvider, ProviderKind};
    let secret = read_password()?;
    let new = NewProvider {
        id: args.id.clone(),
        name: args.name.clone(),
        kind: match args.kind {
            crate::config::ProviderKindArg::Oidc => ProviderKind::Oidc,
            crate::config::ProviderKindArg::Oauth2 => ProviderKind::OAuth2,
        },
        issuer: args.issuer.clone(),
        client_id: args.client_id.clone(),
        scopes: args.scopes.clone(),
        authorize_url: args.authorize_url.clone(),
        token_url: args.token_url.clone(),
        userinfo_url: args.userinfo_url.clone(),
        subject_claim: args.subject_claim.clone(),
        create_users: args.create_users,
        trust_email: args.trust_email,
        allow_http: args.allow_http,
    };
    let database = open(database_url).await?;
    let result = federation(&database, keys_dir)?
        .add_provider(&Caller::cli(), new, &secret)
        .await;
    database.close().await;
    let provider = result.map_err(federation_error)?;
    println!("added provider {}", provider.id);
    println!(
        "register this redirect URI at the provider: {}",
        provider.redirect_uri(args.sigil_issuer.trim_end_matches('/'))
    );
    Ok(())
}

fn provider_json(provider: &sigil_core::federation::Provider) -> serde_json::Value {
    serde_json::json!({
        "id": provider.id,
        "name": provider.name,
        "kind": provider.kind.as_str(),
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "scopes": provider.scopes,
        "authorize_url": provider.authorize_url,
        "token_url": provider.token_url,
        "userinfo_url": provider.userinfo_url,
        "subject_claim": provider.subject_claim,
        "create_users": provider.create_users,
        "trust_email": provider.trust_email,
        "allow_http": provider.allow_http,
        "created_at": provider.created_at,
    })
}

/// `sigil provider list`
pub async fn provider_list(
    database_url: &str,
    args: &crate::config::ProviderListArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let providers = database.store().list_providers().await;
    database.close().await;
    let providers = providers.map_err(CommandError::Database)?;
    if args.json {
        let list: Vec<_> = providers.iter().map(provider_json).collect();
        println!("{}", serde_json::Value::from(list));
        return Ok(());
    }
    println!("{:<16}  {:<7}  {:<40}  NAME", "ID", "KIND", "ISSUER");
    for p in providers {
        println!(
            "{:<16}  {:<7}  {:<40}  {}",
            p.id,
            p.kind.as_str(),
            p.issuer,
            p.name
        );
    }
    Ok(())
}

/// `sigil provider remove`
pub async fn provider_remove(
    database_url: &str,
    args: &crate::config::ProviderRefArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let store = database.store();
    let federation = sigil_core::federation::Federation::new(
        store,
        Arc::new(SystemClock),
        Arc::new(
            sigil_core::factors::FactorKey::generate()
                .map_err(|e| CommandError::Invalid(e.to_string()))?,
        ),
    );
    let result = federation.remove_provider(&Caller::cli(), &args.id).await;
    database.close().await;
    match result {
        Ok(()) => {
            println!("removed provider {}", args.id);
            Ok(())
        }
        Err(sigil_core::federation::FederationError::NotFound) => Err(CommandError::Invalid(
            format!("no provider with the id {:?}", args.id),
        )),
        Err(e) => Err(federation_error(e)),
    }
}

fn registrations(database: &Database) -> sigil_core::registration::Registrations {
    sigil_core::registration::Registrations::new(database.store(), Arc::new(SystemClock))
}

/// `sigil registration-token create`
pub async fn registration_token_create(
    database_url: &str,
    args: &RegistrationTokenCreateArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let made = registrations(&database)
        .create_initial_token(&Caller::cli(), args.uses, secs(args.expires))
        .await;
    database.close().await;
    let (token, secret) = made?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "id": token.id,
                "token": secret.expose(),
                "uses": token.uses_left,
                "expires_at": token.expires_at,
            })
        );
    } else {
        println!("token:   {}", secret.expose());
        println!("id:      {}", token.id);
        println!(
            "good for {} registration(s) until {}",
            token.uses_left,
            rfc3339(token.expires_at)
        );
        println!("The token is shown only this once: only its hash is stored. Registrants send it as Authorization: Bearer <token> to POST /register.");
    }
    Ok(())
}

/// `sigil registration-token list`
pub async fn registration_token_list(
    database_url: &str,
    args: &JsonArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let tokens = registrations(&database).list_initial_tokens().await;
    database.close().await;
    for token in tokens? {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": token.id,
                    "uses_left": token.uses_left,
                    "expires_at": token.expires_at,
                    "created_at": token.created_at,
                })
            );
        } else {
            println!(
                "{}  {} use(s) left  expires {}",
                token.id,
                token.uses_left,
                rfc3339(token.expires_at)
            );
        }
    }
    Ok(())
}

/// `sigil registration-token revoke`
pub async fn registration_token_revoke(
    database_url: &str,
    args: &RegistrationTokenRefArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let revoked = registrations(&database)
        .revoke_initial_token(&Caller::cli(), &args.id)
        .await;
    database.close().await;
    if !revoked? {
        return Err(CommandError::Invalid(format!(
            "no initial access token {}",
            args.id
        )));
    }
    println!("revoked initial access token {}", args.id);
    Ok(())
}

fn resource_json(resource: &sigil_core::resource::Resource) -> serde_json::Value {
    serde_json::json!({
        "uri": resource.uri,
        "name": resource.name,
        "scopes": resource.scopes,
        "self_registered_clients": resource.self_registered_clients,
    })
}

/// `sigil resource add`
pub async fn resource_add(database_url: &str, args: &ResourceAddArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let saved = admin(&database, None)?
        .put_resource(
            &Caller::cli(),
            &args.uri,
            &args.name,
            &args.scopes,
            !args.no_self_registered_clients,
        )
        .await;
    database.close().await;
    let resource = saved.map_err(admin_error)?;
    println!("{}", resource_json(&resource));
    Ok(())
}

/// `sigil resource list`
pub async fn resource_list(database_url: &str, args: &JsonArgs) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let listed = admin(&database, None)?.list_resources().await;
    database.close().await;
    for resource in listed.map_err(admin_error)? {
        if args.json {
            println!("{}", resource_json(&resource));
        } else {
            println!(
                "{}  {:?}  scopes: {}{}",
                resource.uri,
                resource.name,
                if resource.scopes.is_empty() {
                    "(none)".to_string()
                } else {
                    resource.scopes.join(" ")
                },
                if resource.self_registered_clients {
                    ""
                } else {
                    "  (not for self-registered clients)"
                }
            );
        }
    }
    Ok(())
}

/// `sigil resource remove`
pub async fn resource_remove(
    database_url: &str,
    args: &ResourceRefArgs,
) -> Result<(), CommandError> {
    let database = open(database_url).await?;
    let removed = admin(&database, None)?
        .delete_resource(&Caller::cli(), &args.uri)
        .await;
    database.close().await;
    removed.map_err(admin_error)?;
    println!("removed resource {}", args.uri);
    Ok(())
}
