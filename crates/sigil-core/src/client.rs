//! OAuth clients (RFC 6749 §2): registration rules, grant types, and client authentication.

use crate::error::OAuthError;
use crate::scope::ScopeSet;
use crate::secret::{constant_time_eq, random_token, Secret};

/// The grant types Sigil knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::Password,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method`: how a client proves who it is at the endpoints
/// that authenticate clients (token, revocation, introspection, PAR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A public client: its id alone (it must use PKCE).
    None,
    /// A shared secret in HTTP Basic (RFC 6749 §2.3.1). A secret client may also send it
    /// in the body: Sigil accepts both for either secret method.
    ClientSecretBasic,
    /// A shared secret in the request body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::None,
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// Whether the client holds a shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// RFC 7591 §2 / OIDC Dynamic Client Registration `application_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    /// A web application: https redirect URIs on a real host.
    #[default]
    Web,
    /// A native application (RFC 8252): loopback redirects on any port, private-use schemes.
    Native,
}

impl ApplicationType {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

/// What Sigil keeps of a client that registered itself (RFC 7591 §3, RFC 7592).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DynamicRegistration {
    /// SHA-256 of the RFC 7592 registration access token (the token itself is shown once).
    pub access_token_hash: String,
    pub application_type: ApplicationType,
    /// The id of the initial access token it registered with (`--registration token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_token_id: Option<String>,
    /// Metadata kept only to be read back (`client_uri`, `logo_uri`, `contacts`, `tos_uri`,
    /// `policy_uri`, `software_id`, `software_version`): a JSON object.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A registered client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret (see [`Secret::storage_hash`]); `None` for a public client.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    /// First-party clients skip the consent page.
    pub is_first_party: bool,
    /// Issue refresh tokens even when `offline_access` was not requested.
    pub always_issue_refresh_token: bool,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    /// Browser origins (`scheme://host[:port]`, as [`crate::origin::Origin`] writes them)
    /// allowed to call the token, revocation and userinfo endpoints (CORS).
    pub allowed_origins: Vec<String>,
    /// OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed.
    pub backchannel_logout_uri: Option<String>,
    /// §2.2 `backchannel_logout_session_required`: the client needs `sid` in logout tokens
    /// (Sigil always sends it when the sign-in came from a browser session).
    pub backchannel_logout_session_required: bool,
    /// How the client authenticates (see [`AuthMethod`]).
    pub token_endpoint_auth_method: AuthMethod,
    /// For `private_key_jwt`: the client's public keys, a JWK Set as JSON text, or
    pub jwks: Option<String>,
    /// the https URL it is published at (fetched with the outbound-request limits).
    pub jwks_uri: Option<String>,
    /// RFC 9126 §6: the client must push its authorization requests.
    pub require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: the client's tokens are always DPoP-bound; a token request without a
    /// proof is refused.
    pub dpop_bound_access_tokens: bool,
    /// Set when the client registered itself (RFC 7591).
    pub registration: Option<DynamicRegistration>,
    /// The address a self-registered client registered from.
    pub registered_from: Option<String>,
    /// When the client first got a code or a token.
    pub first_used_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Client {
    /// A client that can authenticate: with a secret or a private key.
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some() || self.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
    }
    /// Whether the client registered itself: dynamic registration, or a client ID metadata
    /// document (its id is the document's URL; generated ids never hold a `:`).
    pub fn is_self_registered(&self) -> bool {
        self.registration.is_some() || self.id.contains(':')
    }
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    pub fn allowed_scopes(&self) -> ScopeSet {
        ScopeSet::from_list(self.scopes.iter().cloned())
    }
    /// Whether a browser on `origin` (an `Origin` header's value) may read this client's
    /// responses from the token, revocation and userinfo endpoints.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == origin)
    }

    /// Checks a presented secret (or its absence) against this client, in constant time.
    pub fn verify_secret(&self, presented: Option<&Secret>) -> Result<(), OAuthError> {
        match (&self.secret_hash, presented) {
            (Some(stored), Some(secret)) if constant_time_eq(stored, &secret.storage_hash()) => {
                Ok(())
            }
            (None, None) if self.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt => Err(
                OAuthError::invalid_client(
                    "this client authenticates with a signed client assertion (private_key_jwt)",
                ),
            ),
            (None, None) => Ok(()),
            (None, Some(_)) if self.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt => {
                Err(OAuthError::invalid_client(
                    "this client authenticates with a signed client assertion (private_key_jwt), not a secret",
                ))
            }
            (None, Some(_)) => Err(OAuthError::invalid_client(
                "this is a public client: it has no secret",
            )),
            _ => Err(OAuthError::invalid_client("client authentication failed")),
        }
    }
}

/// What a developer asks for when registering a client.
#[derive(Debug, Clone, Default)]
pub struct ClientRegistration {
    pub name: String,
    pub is_public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// `None` picks the defaults: `authorization_code` + `refresh_token` when redirect URIs
    /// are given, plus `client_credentials` for a confidential client.
    pub grant_types: Option<Vec<String>>,
    /// `None` picks `openid profile email offline_access`.
    pub scopes: Option<Vec<String>>,
    pub audiences: Vec<String>,
    pub is_first_party: bool,
    pub always_issue_refresh_token: bool,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    /// Browser origins allowed to call the token endpoint (see [`Client::allowed_origins`]).
    pub allowed_origins: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// `Some(PrivateKeyJwt)` makes a confidential client without a secret (it needs `jwks`
    /// or `jwks_uri`); `Some(ClientSecretPost)` records that preference. `None` (or a
    /// value that agrees with `is_public`) picks `none` for a public client and
    /// `client_secret_basic` for a confidential one.
    pub token_endpoint_auth_method: Option<AuthMethod>,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub require_pushed_authorization_requests: bool,
    pub dpop_bound_access_tokens: bool,
}

/// Why a registration was refused; the message says it in words for a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    #[error("name must be 1 to 200 characters")]
    Name,
    #[error("redirect URI {uri:?}: {reason}")]
    RedirectUri { uri: String, reason: &'static str },
    #[error("post-logout redirect URI {uri:?}: {reason}")]
    PostLogoutRedirectUri { uri: String, reason: &'static str },
    #[error("unknown grant type {0:?} (known: authorization_code, refresh_token, password, client_credentials)")]
    UnknownGrantType(String),
    #[error("a client needs at least one grant type")]
    NoGrantType,
    #[error("a public client cannot use the {0} grant: it has no secret to authenticate with")]
    PublicClientGrant(&'static str),
    #[error("the authorization_code grant needs at least one redirect URI")]
    CodeGrantWithoutRedirectUri,
    /// The scope list is malformed (RFC 6749 §3.3).
    #[error("{0}")]
    Scope(String),
    #[error("an audience must be 1 to 500 characters")]
    Audience,
    #[error("token lifetimes must be positive")]
    NonPositiveLifetime,
    #[error("an access-token lifetime may be at most one day")]
    AccessTokenLifetimeTooLong,
    #[error("allowed origin {origin:?}: {reason}")]
    Origin {
        origin: String,
        reason: &'static str,
    },
    #[error("back-channel logout URI {uri:?}: {reason}")]
    BackchannelLogoutUri { uri: String, reason: &'static str },
    #[error("backchannel_logout_session_required needs a back-channel logout URI")]
    SessionRequiredWithoutUri,
    #[error("token_endpoint_auth_method {0} does not fit a {1} client")]
    AuthMethodMismatch(&'static str, &'static str),
    #[error("private_key_jwt needs the client's keys: jwks or jwks_uri (one of them)")]
    KeysRequired,
    #[error("jwks and jwks_uri are only for private_key_jwt, and only one of them")]
    KeysNotExpected,
    #[error("jwks: {0}")]
    Jwks(&'static str),
    #[error("jwks_uri {uri:?}: {reason}")]
    JwksUri { uri: String, reason: &'static str },
}

/// The default scopes of a new client.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Longest access-token lifetime a client may override to (one day).
pub const MAX_ACCESS_TOKEN_TTL: i64 = 24 * 3600;

impl ClientRegistration {
    /// Validates the registration and builds the client. For a confidential client the
    /// generated secret is returned: it is shown once and only its hash is kept.
    pub fn build(self, now: i64) -> Result<(Client, Option<Secret>), RegistrationError> {
        let name = self.name.trim().to_string();
        if name.is_empty() || name.len() > 200 {
            return Err(RegistrationError::Name);
        }
        for uri in &self.redirect_uris {
            validate_redirect_uri(uri).map_err(|reason| RegistrationError::RedirectUri {
                uri: uri.clone(),
                reason,
            })?;
        }
        for uri in &self.post_logout_redirect_uris {
            validate_redirect_uri(uri).map_err(|reason| {
                RegistrationError::PostLogoutRedirectUri {
                    uri: uri.clone(),
                    reason,
                }
            })?;
        }
        let grant_types: Vec<GrantType> = match self.grant_types {
            Some(list) => {
                let mut out = Vec::new();
                for g in list.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
                    let grant = GrantType::parse(g)
                        .ok_or_else(|| RegistrationError::UnknownGrantType(g.to_string()))?;
                    if !out.contains(&grant) {
                        out.push(grant);
                    }
                }
                out
            }
            None => {
                let mut out = Vec::new();
                if !self.redirect_uris.is_empty() {
                    out.push(GrantType::AuthorizationCode);
                    out.push(GrantType::RefreshToken);
                }
                if !self.is_public {
                    out.push(GrantType::ClientCredentials);
                }
                out
            }
        };
        if grant_types.is_empty() {
            return Err(RegistrationError::NoGrantType);
        }
        if self.is_public {
            for g in [GrantType::Password, GrantType::ClientCredentials] {
                if grant_types.contains(&g) {
                    return Err(RegistrationError::PublicClientGrant(g.as_str()));
                }
            }
        }
        if grant_types.contains(&GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(RegistrationError::CodeGrantWithoutRedirectUri);
        }
        let scopes: Vec<String> = match self.scopes {
            Some(list) => {
                let joined = list.join(" ");
                ScopeSet::parse(&joined)
                    .map_err(|e| RegistrationError::Scope(e.description))?
                    .to_vec()
            }
            None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
        };
        for aud in &self.audiences {
            if aud.trim().is_empty() || aud.len() > 500 {
                return Err(RegistrationError::Audience);
            }
        }
        for ttl in [self.access_token_ttl, self.refresh_token_ttl]
            .into_iter()
            .flatten()
        {
            if ttl <= 0 {
                return Err(RegistrationError::NonPositiveLifetime);
            }
        }
        if self
            .access_token_ttl
            .is_some_and(|t| t > MAX_ACCESS_TOKEN_TTL)
        {
            return Err(RegistrationError::AccessTokenLifetimeTooLong);
        }
        let mut allowed_origins: Vec<String> = Vec::new();
        for origin in &self.allowed_origins {
            let parsed = crate::origin::Origin::parse(origin).map_err(|reason| {
                RegistrationError::Origin {
                    origin: origin.clone(),
                    reason,
                }
            })?;
            let text = parsed.to_string();
            if !allowed_origins.contains(&text) {
                allowed_origins.push(text);
            }
        }
        let backchannel_logout_uri = match self.backchannel_logout_uri.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(uri) => {
                crate::backchannel::validate_logout_uri(uri).map_err(|reason| {
                    RegistrationError::BackchannelLogoutUri {
                        uri: uri.to_string(),
                        reason,
                    }
                })?;
                Some(uri.to_string())
            }
        };
        if self.backchannel_logout_session_required && backchannel_logout_uri.is_none() {
            return Err(RegistrationError::SessionRequiredWithoutUri);
        }
        let auth_method = match (self.is_public, self.token_endpoint_auth_method) {
            (true, None | Some(AuthMethod::None)) => AuthMethod::None,
            (true, Some(other)) => {
                return Err(RegistrationError::AuthMethodMismatch(
                    other.as_str(),
                    "public",
                ))
            }
            (false, None) => AuthMethod::ClientSecretBasic,
            (false, Some(AuthMethod::None)) => {
                return Err(RegistrationError::AuthMethodMismatch(
                    "none",
                    "confidential",
                ))
            }
            (false, Some(other)) => other,
        };
        let jwks = self.jwks.filter(|j| !j.trim().is_empty());
        let jwks_uri = self
            .jwks_uri
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if auth_method == AuthMethod::PrivateKeyJwt {
            match (&jwks, &jwks_uri) {
                (Some(_), Some(_)) => return Err(RegistrationError::KeysNotExpected),
                (None, None) => return Err(RegistrationError::KeysRequired),
                _ => {}
            }
        } else if jwks.is_some() || jwks_uri.is_some() {
            return Err(RegistrationError::KeysNotExpected);
        }
        if let Some(set) = &jwks {
            validate_public_jwks(set).map_err(RegistrationError::Jwks)?;
        }
        if let Some(uri) = &jwks_uri {
            validate_jwks_uri(uri).map_err(|reason| RegistrationError::JwksUri {
                uri: uri.clone(),
                reason,
            })?;
        }
        let secret = auth_method.uses_secret().then(Secret::generate);
        let client = Client {
            id: new_client_id(),
            name,
            secret_hash: secret.as_ref().map(Secret::storage_hash),
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types,
            scopes,
            audiences: self.audiences,
            is_first_party: self.is_first_party,
            always_issue_refresh_token: self.always_issue_refresh_token,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            allowed_origins,
            backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            token_endpoint_auth_method: auth_method,
            jwks,
            jwks_uri,
            require_pushed_authorization_requests: self.require_pushed_authorization_requests,
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
            registration: None,
            registered_from: None,
            first_used_at: None,
            created_at: now,
            updated_at: now,
        };
        Ok((client, secret))
    }
}

/// Largest JWK Set a client may register inline (bytes).
pub const MAX_JWKS_LEN: usize = 16 * 1024;

/// A client's JWK Set for `private_key_jwt`: a JSON object with a non-empty `keys` array of
/// public keys (RSA or EC), no private parts. The keys are parsed again where they are used.
pub fn validate_public_jwks(text: &str) -> Result<(), &'static str> {
    if text.len() > MAX_JWKS_LEN {
        return Err("must be at most 16 KiB");
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "must be a JSON object with a keys array")?;
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("must be a JSON object with a keys array")?;
    if keys.is_empty() || keys.len() > 20 {
        return Err("must hold 1 to 20 keys");
    }
    for key in keys {
        let kty = key
            .get("kty")
            .and_then(|k| k.as_str())
            .ok_or("every key needs a kty")?;
        if !matches!(kty, "RSA" | "EC" | "OKP") {
            return Err("keys must be RSA, EC or OKP public keys");
        }
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if key.get(private).is_some() {
                return Err("must hold public keys only (a private key part was sent)");
            }
        }
    }
    Ok(())
}

/// Where a client publishes its keys: an https URL (http only on a loopback IP, for
/// development), no fragment, no user information.
pub fn validate_jwks_uri(uri: &str) -> Result<(), &'static str> {
    crate::backchannel::validate_logout_uri(uri)
}

/// A new client id: 128 random bits, base64url, starting with a letter or digit (an id
/// starting with `-` would read as an option on a command line: `--client-id -x…`).
pub fn new_client_id() -> String {
    loop {
        let id = random_token(16);
        if id.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return id;
        }
    }
}

/// RFC 6749 §3.1.2 and RFC 8252: absolute, no fragment; https unless a loopback IP literal
/// (http://127.0.0.1, http://[::1]) or a private-use scheme of a native app. `http://localhost`
/// is refused: RFC 8252 §8.3 calls it NOT RECOMMENDED (the name may resolve elsewhere, and
/// a listener on it may not be the app's); the IP literal is what native apps should use.
pub fn validate_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.contains('#') {
        return Err("must not contain a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    let (scheme, rest) = uri.split_once(':').ok_or("must be an absolute URI")?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("must be an absolute URI");
    }
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" | "http" => {
            let authority = rest
                .strip_prefix("//")
                .ok_or("must be an absolute URI with a host")?;
            let host_port = authority.split(['/', '?']).next().unwrap_or("");
            if host_port.is_empty() || host_port.contains('@') {
                return Err("must name a host, without user information");
            }
            if scheme == "http" {
                let host = if let Some(stripped) = host_port.strip_prefix('[') {
                    stripped.split(']').next().unwrap_or("")
                } else {
                    host_port.split(':').next().unwrap_or("")
                };
                if host.eq_ignore_ascii_case("localhost") {
                    return Err("must not use localhost: use the loopback IP literal instead, http://127.0.0.1:PORT/… or http://[::1]:PORT/… (RFC 8252 §8.3)");
                }
                let is_loopback = host == "127.0.0.1" || host == "::1";
                if !is_loopback {
                    return Err(
                        "must use https (plain http is only allowed for loopback addresses)",
                    );
                }
            }
            Ok(())
        }
        "javascript" | "data" | "file" | "vbscript" => Err("this scheme is not allowed"),
        _ => {
            // RFC 8252 §7.1: private-use schemes are reverse domain names, e.g. com.example.app:/cb
            if !scheme.contains('.') {
                return Err(
                    "a private-use scheme must be a reverse domain name (e.g. com.example.app)",
                );
            }
            if rest.is_empty() {
                return Err("must have a path");
            }
            Ok(())
        }
    }
}

/// RFC 6749 §3.1.2.3 and RFC 8252 §7.3: whether a requested redirect URI matches a
/// registered one. A registered loopback IP redirect (`http://127.0.0.1…`, `http://[::1]…`)
/// matches on everything but the port, which a native app picks when it runs (any port, or
/// none); every other URI must match exactly, as a string.
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        loopback_without_port(registered),
        loopback_without_port(requested),
    ) {
        (Some(registered), Some(requested)) => registered == requested,
        _ => false,
    }
}

/// `http://127.0.0.1[:PORT]REST` or `http://[::1][:PORT]REST`, where REST is empty or starts
/// with `/` or `?`, with the port taken out; `None` for anything else (another scheme or
/// host, `localhost`, a port that is not a number, user information).
fn loopback_without_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|host| rest.starts_with(host))?;
    let after_host = &rest[host.len()..];
    let after_port = match after_host.strip_prefix(':') {
        Some(port_and_rest) => {
            let end = port_and_rest
                .find(['/', '?'])
                .unwrap_or(port_and_rest.len());
            let port = &port_and_rest[..end];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            port.parse::<u16>().ok()?;
            &port_and_rest[end..]
        }
        None => after_host,
    };
    if !(after_port.is_empty() || after_port.starts_with('/') || after_port.starts_with('?')) {
        return None;
    }
    Some(format!("http://{host}{after_port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uri_rules() {
        assert!(validate_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(validate_redirect_uri("http://127.0.0.1:8000/cb").is_ok());
        assert!(validate_redirect_uri("http://[::1]:8000/cb").is_ok());
        assert!(validate_redirect_uri("http://localhost/cb").is_err());
        assert!(validate_redirect_uri("http://localhost:8000/cb").is_err());
        assert!(validate_redirect_uri("http://LocalHost:8000/cb").is_err());
        assert!(validate_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(validate_redirect_uri("http://app.example.com/cb").is_err());
        assert!(validate_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(validate_redirect_uri("/relative").is_err());
        assert!(validate_redirect_uri("javascript:alert(1)").is_err());
        assert!(validate_redirect_uri("myapp:/cb").is_err());
        assert!(validate_redirect_uri("https://user@host/cb").is_err());
    }

    #[test]
    fn localhost_is_refused_at_registration_with_a_clear_message() {
        let error = ClientRegistration {
            name: "cli".into(),
            is_public: true,
            redirect_uris: vec!["http://localhost:8000/cb".into()],
            ..Default::default()
        }
        .build(1)
        .expect_err("localhost is refused")
        .to_string();
        assert!(error.contains("127.0.0.1"), "{error}");
        assert!(error.contains("localhost"), "{error}");
    }

    #[test]
    fn loopback_redirects_match_on_everything_but_the_port() {
        let v4 = "http://127.0.0.1:9999/callback";
        let v6 = "http://[::1]:9999/callback";
        for (registered, requested) in [
            (v4, "http://127.0.0.1:9999/callback"),
            (v4, "http://127.0.0.1:51004/callback"),
            (v4, "http://127.0.0.1/callback"),
            ("http://127.0.0.1/callback", "http://127.0.0.1:1/callback"),
            (v6, "http://[::1]:3/callback"),
            (v6, "http://[::1]/callback"),
            ("http://127.0.0.1:9/cb?x=1", "http://127.0.0.1:80/cb?x=1"),
            ("http://127.0.0.1:9", "http://127.0.0.1:10"),
        ] {
            assert!(
                redirect_uri_matches(registered, requested),
                "{registered} should match {requested}"
            );
        }
        for (registered, requested) in [
            (v4, "http://127.0.0.1:51004/callback/"),
            (v4, "http://127.0.0.1:51004/other"),
            (v4, "http://127.0.0.1:51004/callback?x=1"),
            (v4, "https://127.0.0.1:51004/callback"),
            (v4, "http://[::1]:9999/callback"),
            (v6, "http://127.0.0.1:9999/callback"),
            (v4, "http://localhost:9999/callback"),
            (v4, "http://127.0.0.2:9999/callback"),
            (v4, "http://127.0.0.1.evil.example:9999/callback"),
            (v4, "http://127.0.0.1:9999@evil.example/callback"),
            (v4, "http://127.0.0.1:99999/callback"),
            (v4, "http://127.0.0.1:/callback"),
            (v4, "http://127.0.0.1:+80/callback"),
            (v4, "http://127.0.0.1:9999/callback#x"),
            (v4, "HTTP://127.0.0.1:9999/callback"),
            // Not loopback: exact match only, the port included.
            (
                "https://app.example.com:8443/cb",
                "https://app.example.com:9443/cb",
            ),
            (
                "https://app.example.com/cb",
                "https://app.example.com:443/cb",
            ),
            ("http://localhost:9999/cb", "http://localhost:1234/cb"),
        ] {
            assert!(
                !redirect_uri_matches(registered, requested),
                "{registered} should not match {requested}"
            );
        }
    }

    #[test]
    fn defaults_and_rules() {
        let (c, secret) = ClientRegistration {
            name: "svc".into(),
            ..Default::default()
        }
        .build(1)
        .expect("valid");
        assert_eq!(c.grant_types, vec![GrantType::ClientCredentials]);
        let secret = secret.expect("confidential clients get a secret");
        assert!(c.verify_secret(Some(&secret)).is_ok());
        assert!(c.verify_secret(Some(&Secret::new("nope"))).is_err());
        assert!(c.verify_secret(None).is_err());
        assert_ne!(c.secret_hash.as_deref(), Some(secret.expose()));

        let public = ClientRegistration {
            name: "spa".into(),
            is_public: true,
            grant_types: Some(vec!["password".into()]),
            ..Default::default()
        }
        .build(1);
        assert!(public.is_err());

        let code_without_uri = ClientRegistration {
            name: "web".into(),
            grant_types: Some(vec!["authorization_code".into()]),
            ..Default::default()
        }
        .build(1);
        assert!(code_without_uri.is_err());
        let unknown = ClientRegistration {
            name: "x".into(),
            grant_types: Some(vec!["implicit".into()]),
            ..Default::default()
        }
        .build(1);
        assert!(unknown.is_err());
    }
}
