//! An upstream identity provider's settings, and the rules they must meet.

use std::net::IpAddr;

/// The scopes asked of an OpenID Connect provider unless `--scopes` says otherwise.
pub const DEFAULT_OIDC_SCOPES: &str = "openid profile email";

/// How Sigil talks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect, its endpoints and keys found by discovery from the issuer.
    Oidc,
    /// Plain OAuth 2.0 with explicit endpoints; the user is whoever its userinfo URL
    /// says (GitHub style), named by the subject claim.
    OAuth2,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oidc => "oidc",
            Self::OAuth2 => "oauth2",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "oidc" => Some(Self::Oidc),
            "oauth2" => Some(Self::OAuth2),
            _ => None,
        }
    }
}

/// A configured provider, as stored. The client secret is sealed under the factor key
/// (AES-256-GCM, the provider id as associated data); `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    /// The path segment of `/login/provider/{id}` ([`validate_provider_id`]).
    pub id: String,
    /// What the sign-in page's "Sign in with …" says.
    pub name: String,
    pub kind: ProviderKind,
    /// The OpenID Connect issuer (discovery starts here); for a plain OAuth 2.0 provider,
    /// the name its identities are kept under (and the `iss` its authorization responses
    /// must carry, if they carry one).
    pub issuer: String,
    pub client_id: String,
    pub sealed_client_secret: String,
    /// Space-separated.
    pub scopes: String,
    /// Plain OAuth 2.0 only.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// Plain OAuth 2.0: the userinfo member that identifies the user (`sub`, GitHub's `id`).
    pub subject_claim: String,
    /// An unknown identity may create an account, whatever `--sign-up` says.
    pub create_users: bool,
    /// The provider's `email_verified` counts (otherwise no address from it is verified).
    pub trust_email: bool,
    /// `http://` on a loopback address is accepted (tests and development).
    pub allow_http: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The scopes, one by one.
    pub fn scope_list(&self) -> impl Iterator<Item = &str> {
        self.scopes.split(' ').filter(|s| !s.is_empty())
    }

    /// The redirect URI to register at the provider.
    pub fn redirect_uri(&self, issuer: &str) -> String {
        format!(
            "{}/login/provider/{}/callback",
            issuer.trim_end_matches('/'),
            self.id
        )
    }
}

/// A provider as the command line or the console enters it.
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub id: String,
    pub name: String,
    pub kind: ProviderKind,
    pub issuer: String,
    pub client_id: String,
    /// `None`: the kind's default ([`DEFAULT_OIDC_SCOPES`], or none for OAuth 2.0).
    pub scopes: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub subject_claim: Option<String>,
    pub create_users: bool,
    pub trust_email: bool,
    pub allow_http: bool,
}

/// Checks a provider id: 1 to 32 characters, lower-case letters, digits and `-`,
/// starting with a letter or digit (it is a path segment and an audit target).
pub fn validate_provider_id(id: &str) -> Result<(), &'static str> {
    let valid = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err("a provider id is 1 to 32 lower-case letters, digits and '-', not starting with '-'")
    }
}

/// Checks an upstream URL: absolute `https://`, or `http://` on a loopback address when
/// `allow_http` (for tests and development; any other `http://` host is refused, even
/// with it); no user name or password, no fragment. `what` names it in the message.
pub fn check_upstream_url(value: &str, allow_http: bool, what: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|_| format!("{what} is not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} may not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(format!("{what} may not have a fragment"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{what} has no host"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http && is_loopback(host) => Ok(url),
        "http" if allow_http => Err(format!(
            "{what} uses http:// on {host}: --allow-http accepts only a loopback address (127.0.0.1, ::1, localhost)"
        )),
        "http" => Err(format!(
            "{what} must use https:// (--allow-http accepts http:// on a loopback address, for development)"
        )),
        _ => Err(format!("{what} must use https://")),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_scope_token(scope: &str) -> bool {
    // RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E.
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn is_claim_name(claim: &str) -> bool {
    !claim.is_empty()
        && claim.len() <= 64
        && claim
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl NewProvider {
    /// The provider these settings make, with the sealed secret: or, in words for a
    /// form, the first rule they break.
    pub fn into_provider(self, sealed_client_secret: String, now: i64) -> Result<Provider, String> {
        validate_provider_id(&self.id).map_err(str::to_string)?;
        let name = self.name.trim().to_string();
        if name.is_empty()
            || name.chars().count() > 64
            || crate::user::has_invisible_controls(&name)
        {
            return Err("a provider's name is 1 to 64 visible characters".into());
        }
        let issuer = self.issuer.trim().to_string();
        let parsed = check_upstream_url(&issuer, self.allow_http, "the issuer")?;
        if parsed.query().is_some() {
            return Err("the issuer may not have a query".into());
        }
        let client_id = self.client_id.trim().to_string();
        if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(char::is_control)
        {
            return Err("the client id is 1 to 255 characters".into());
        }
        let mut scopes: Vec<String> = match &self.scopes {
            Some(list) => list
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None if self.kind == ProviderKind::Oidc => {
                DEFAULT_OIDC_SCOPES.split(' ').map(str::to_string).collect()
            }
            None => Vec::new(),
        };
        if let Some(bad) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(format!("{bad:?} is not a scope"));
        }
        if self.kind == ProviderKind::Oidc && !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let mut seen = std::collections::HashSet::new();
        scopes.retain(|s| seen.insert(s.clone()));
        let subject_claim = self
            .subject_claim
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "sub".into());
        if !is_claim_name(&subject_claim) {
            return Err("the subject claim is a member name: letters, digits, '_' and '-'".into());
        }
        let endpoint = |value: Option<String>, what: &str| -> Result<Option<String>, String> {
            match value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
            {
                Some(value) => {
                    check_upstream_url(&value, self.allow_http, what)?;
                    Ok(Some(value))
                }
                None => Ok(None),
            }
        };
        let authorize_url = endpoint(self.authorize_url.clone(), "the authorization URL")?;
        let token_url = endpoint(self.token_url.clone(), "the token URL")?;
        let userinfo_url = endpoint(self.userinfo_url.clone(), "the userinfo URL")?;
        match self.kind {
            ProviderKind::OAuth2 => {
                if authorize_url.is_none() || token_url.is_none() || userinfo_url.is_none() {
                    return Err("a plain OAuth 2.0 provider needs its authorization, token and userinfo URLs".into());
                }
            }
            ProviderKind::Oidc => {
                if authorize_url.is_some() || token_url.is_some() || userinfo_url.is_some() {
                    return Err("an OpenID Connect provider's endpoints come from its discovery document: name them only for a plain OAuth 2.0 provider".into());
                }
            }
        }
        Ok(Provider {
            id: self.id,
            name,
            kind: self.kind,
            issuer,
            client_id,
            sealed_client_secret,
            scopes: scopes.join(" "),
            authorize_url,
            token_url,
            userinfo_url,
            subject_claim,
            create_users: self.create_users,
            trust_email: self.trust_email,
            allow_http: self.allow_http,
            created_at: now,
            updated_at: now,
        })
    }
}
