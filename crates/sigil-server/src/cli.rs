//! The non-serving commands: `migrate`, `user add`, `client add`, `keys list|rotate|prune`.

use crate::config::{secs, ClientAddArgs, KeysArgs, KeysRotateArgs, UserAddArgs};
use crate::error::CommandError;
use crate::keyfiles::KeyDir;
use crate::store::{Database, DatabaseOptions};
use sigil_core::client::ClientRegistration;
use sigil_core::clock::{Clock, SystemClock};
use sigil_core::keys::KeyState;
use sigil_core::password::PasswordHasher;
use sigil_core::secret::random_token;
use sigil_core::store::StoreError;
use sigil_core::user::{validate_new_password, validate_username, User};
use std::io::Read;
use std::path::Path;
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

/// `sigil user add … --password-stdin`
pub async fn user_add(database_url: &str, args: &UserAddArgs) -> Result<(), CommandError> {
    validate_username(&args.username).map_err(|e| CommandError::Invalid(e.into()))?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input)
        .to_string();
    validate_new_password(&password).map_err(|e| CommandError::Invalid(e.into()))?;
    let params = args.passwords.params();
    let hash = tokio::task::spawn_blocking(move || {
        PasswordHasher::new(params).and_then(|h| h.hash(&password))
    })
    .await
    .map_err(|e| CommandError::Invalid(e.to_string()))?
    .map_err(CommandError::Invalid)?;
    let database = open(database_url).await?;
    let now = SystemClock.now();
    let user = User {
        id: random_token(16),
        username: args.username.clone(),
        email: args.email.clone(),
        email_verified: false,
        name: args.name.clone(),
        password_hash: hash,
        is_admin: args.admin,
        is_disabled: false,
        must_change_password: false,
        created_at: now,
        updated_at: now,
    };
    match database.store().create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(CommandError::Invalid(format!(
                "user name {:?} is taken",
                args.username
            )))
        }
        Err(e) => return Err(e.into()),
    }
    println!(
        "{}",
        serde_json::json!({ "user_id": user.id, "username": user.username })
    );
    database.close().await;
    Ok(())
}

/// `sigil client add …`
pub async fn client_add(database_url: &str, args: &ClientAddArgs) -> Result<(), CommandError> {
    let registration = ClientRegistration {
        name: args.name.clone(),
        is_public: args.public,
        redirect_uris: args.redirect_uris.clone(),
        post_logout_redirect_uris: args.post_logout_redirect_uris.clone(),
        grant_types: args.grant_types.clone(),
        scopes: args.scopes.clone(),
        audiences: args.audiences.clone(),
        is_first_party: args.first_party,
        always_issue_refresh_token: args.always_issue_refresh_token,
        access_token_ttl: None,
        refresh_token_ttl: None,
    };
    let (client, secret) = registration
        .build(SystemClock.now())
        .map_err(CommandError::Invalid)?;
    let database = open(database_url).await?;
    database.store().create_client(&client).await?;
    database.close().await;
    if args.json {
        let mut out = serde_json::json!({ "client_id": client.id });
        if let Some(secret) = &secret {
            out["client_secret"] = secret.expose().into();
        }
        println!("{out}");
    } else {
        println!("client_id:     {}", client.id);
        if let Some(secret) = &secret {
            println!("client_secret: {}", secret.expose());
            println!("The secret is shown only this once: only its hash is stored.");
        }
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        println!("grant types:   {}", grants.join(", "));
        println!("scopes:        {}", client.scopes.join(" "));
    }
    Ok(())
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
pub fn keys_rotate(dir: &Path, args: &KeysRotateArgs) -> Result<(), CommandError> {
    let keys = KeyDir::new(dir);
    let now = SystemClock.now();
    let activates_at = if args.immediately {
        // Strictly after the current signing key, so that the new key wins at once (or
        // within a second) even when both were made in the same second.
        let current = keys
            .load()?
            .signing_key(now)
            .map(|k| k.activates_at())
            .unwrap_or(now);
        now.max(current + 1)
    } else {
        now + secs(args.lifetimes.jwks_max_age)
    };
    let kid = keys.add_new_key(now, activates_at)?;
    println!(
        "published key {kid}; it signs from {}",
        rfc3339(activates_at)
    );
    Ok(())
}

/// `sigil keys prune`: removes retired keys whose every token has expired.
pub async fn keys_prune(
    database_url: &str,
    dir: &Path,
    args: &KeysArgs,
) -> Result<(), CommandError> {
    let (keys, set) = load(dir)?;
    let database = open(database_url).await?;
    let client_max = database.store().max_client_access_token_ttl().await?;
    database.close().await;
    let max_ttl = secs(args.lifetimes.access_token_ttl)
        .max(secs(args.lifetimes.id_token_ttl))
        .max(client_max.unwrap_or(0));
    let prunable = set.prunable(SystemClock.now(), max_ttl);
    if prunable.is_empty() {
        println!("nothing to prune");
    }
    for kid in prunable {
        keys.remove_key(&kid)?;
        println!("pruned key {kid}");
    }
    Ok(())
}
