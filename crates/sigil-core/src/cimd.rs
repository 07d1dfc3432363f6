//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document): a
//! `client_id` that is an `https://` URL names a client whose metadata is the JSON
//! document at that URL. Here: the rules of such a URL (§3), the document read into a
//! [`Client`] (§4, §4.1 no shared secrets), and [`ClientDocuments`], the role through
//! which [`crate::Authority`] gets one (the server fetches; core does no I/O).
//!
//! What a document client gets: never first-party (the consent page is shown), public
//! unless it declares `private_key_jwt` with its keys, no audiences of its own, the
//! scopes of its `scope` that the server lets self-registered clients have
//! ([`DocumentPolicy::scopes`]), the `authorization_code` grant (and `refresh_token` if
//! it lists it) with PKCE like every client.

use crate::client::{validate_public_jwks, validate_redirect_uri, AuthMethod, Client, GrantType};
use crate::error::OAuthError;
use crate::scope::ScopeSet;
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

/// The draft's recommended limit on a document's size (§8.7, "5 kilobytes"): what the
/// server reads at most.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest client ID URL accepted.
pub const MAX_CLIENT_ID_LEN: usize = 2000;
/// Most redirect URIs (and post-logout redirect URIs) a document may list.
const MAX_URIS: usize = 20;
/// Longest `client_name` (characters).
const MAX_NAME: usize = 200;

/// Where a client's metadata document comes from: implemented by the server over its
/// hardened outbound fetcher and cache, given to [`crate::Authority`] with
/// [`crate::Authority::with_client_documents`].
#[async_trait]
pub trait ClientDocuments: Send + Sync {
    /// The client whose metadata document is at `client_id` (fetched, or remembered). An
    /// error is `invalid_client` with a description that says what was wrong.
    async fn fetch(&self, client_id: &str) -> Result<Arc<Client>, OAuthError>;
}

/// Whether `client_id` names a metadata document rather than a registered client. Ids
/// Sigil generates are base64url and never contain `:`.
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// §3 Client Identifier URL: `https`, no user information, a path, no single- or
/// double-dot path segment (percent-encoded ones included), no fragment, and (Sigil is
/// stricter than the draft's SHOULD NOT) no query. With `allow_loopback`, also
/// `http://127.0.0.1[:PORT]/…` and `http://[::1][:PORT]/…`. Compared as strings: nothing
/// is normalised.
pub fn check_client_id_url(client_id: &str, allow_loopback: bool) -> Result<(), &'static str> {
    if client_id.len() > MAX_CLIENT_ID_LEN {
        return Err("it is longer than 2000 characters");
    }
    if !client_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it may hold printable ASCII characters only (no spaces)");
    }
    if client_id.contains('\\') {
        return Err("it must not contain a backslash");
    }
    let (is_http, rest) = if let Some(rest) = client_id.strip_prefix("https://") {
        (false, rest)
    } else if let Some(rest) = client_id.strip_prefix("http://") {
        (true, rest)
    } else {
        return Err("it must use https");
    };
    if client_id.contains('#') {
        return Err("it must not contain a fragment");
    }
    if client_id.contains('?') {
        return Err("it must not contain a query");
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => return Err("it must have a path"),
    };
    if authority.contains('@') {
        return Err("it must not contain user information");
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err("it must name a host");
    }
    if is_http {
        let port = ["127.0.0.1", "[::1]"]
            .iter()
            .find_map(|host| authority.strip_prefix(host));
        let is_loopback = port.is_some_and(|port| {
            port.is_empty()
                || port.strip_prefix(':').is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                })
        });
        if !allow_loopback || !is_loopback {
            return Err("it must use https");
        }
    }
    for segment in path.split('/') {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        if decoded == "." || decoded == ".." {
            return Err("it must not contain . or .. path segments");
        }
    }
    let parsed = url::Url::parse(client_id).map_err(|_| "it is not a valid URL")?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it must name a host");
    }
    Ok(())
}

/// What the server allows document clients.
#[derive(Debug, Clone, Default)]
pub struct DocumentPolicy {
    /// Also accept `http://` loopback client ids and key URLs (tests and development).
    pub allow_loopback: bool,
    /// The scopes a self-registered client may have (`--self-registered-scopes`): the
    /// document's `scope` is cut down to these; without one it gets all of them.
    pub scopes: Vec<String>,
}

/// A client ID metadata document as read (RFC 7591 §2 names). Members Sigil does not use
/// are ignored; a member of the wrong type makes the document unreadable.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadataDocument {
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    /// RFC 9449 §5.2: the client's tokens are always DPoP-bound.
    pub dpop_bound_access_tokens: Option<bool>,
    /// §4.1: must not be there at all (any value, `null` included).
    #[serde(default)]
    pub client_secret: Present,
    #[serde(default)]
    pub client_secret_expires_at: Present,
}

/// Whether a member appeared in the document, whatever its value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present(pub bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(Present(true))
    }
}

/// Why a document is not a usable client. The words quote nothing the document said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    #[error("the document has no client_id")]
    ClientIdMissing,
    #[error("the document's client_id is not the URL it was fetched from")]
    ClientIdMismatch,
    #[error("the document must list redirect_uris")]
    RedirectUrisMissing,
    #[error("the document lists more than 20 {0}")]
    TooManyUris(&'static str),
    #[error("{list}[{index}] {reason}")]
    Uri {
        list: &'static str,
        index: usize,
        reason: &'static str,
    },
    #[error("a client ID metadata document cannot hold a shared secret (client_secret, client_secret_expires_at)")]
    SecretPresent,
    #[error("token_endpoint_auth_method {0} needs a shared secret, which a client ID metadata document cannot establish: use none or private_key_jwt")]
    SecretAuthMethod(&'static str),
    #[error("token_endpoint_auth_method must be none or private_key_jwt")]
    UnsupportedAuthMethod,
    #[error("private_key_jwt needs the client's public keys: jwks or jwks_uri")]
    KeysRequired,
    #[error("give jwks or jwks_uri, not both, and only with private_key_jwt")]
    KeysNotExpected,
    #[error("jwks: {0}")]
    Jwks(&'static str),
    #[error("jwks_uri {0}")]
    JwksUri(&'static str),
    #[error("grant_types may hold authorization_code and refresh_token only, and must hold authorization_code")]
    GrantTypes,
    #[error("response_types may only be code")]
    ResponseTypes,
    #[error("scope: {0}")]
    Scope(String),
    #[error("client_name must be 1 to 200 characters without control characters")]
    ClientName,
    #[error("{0} must be an https URL")]
    WebUrl(&'static str),
}

impl DocumentError {
    /// The error a request naming this client gets.
    pub fn to_oauth(&self) -> OAuthError {
        OAuthError::invalid_client(format!(
            "the client ID metadata document cannot be used: {self}"
        ))
    }
}

/// §4: turns the document fetched from `client_id` into the client it describes, under
/// the server's `policy`. `now` stamps the record.
pub fn client_from_document(
    client_id: &str,
    document: ClientMetadataDocument,
    policy: &DocumentPolicy,
    now: i64,
) -> Result<Client, DocumentError> {
    // §4: the same string, compared as it is (RFC 3986 §6.2.1).
    match document.client_id.as_deref() {
        None => return Err(DocumentError::ClientIdMissing),
        Some(id) if id != client_id => return Err(DocumentError::ClientIdMismatch),
        Some(_) => {}
    }
    if document.client_secret.0 || document.client_secret_expires_at.0 {
        return Err(DocumentError::SecretPresent);
    }
    let auth_method = match document.token_endpoint_auth_method.as_deref() {
        None | Some("none") => AuthMethod::None,
        Some("private_key_jwt") => AuthMethod::PrivateKeyJwt,
        Some(method @ ("client_secret_basic" | "client_secret_post" | "client_secret_jwt")) => {
            return Err(DocumentError::SecretAuthMethod(match method {
                "client_secret_basic" => "client_secret_basic",
                "client_secret_post" => "client_secret_post",
                _ => "client_secret_jwt",
            }))
        }
        Some(_) => return Err(DocumentError::UnsupportedAuthMethod),
    };
    let (jwks, jwks_uri) = client_keys(&document, auth_method, policy)?;
    let redirect_uris = uri_list(document.redirect_uris, "redirect_uris")?;
    if redirect_uris.is_empty() {
        return Err(DocumentError::RedirectUrisMissing);
    }
    let post_logout_redirect_uris = uri_list(
        document.post_logout_redirect_uris,
        "post_logout_redirect_uris",
    )?;
    // RFC 7591 §2: grant_types defaults to authorization_code.
    let grant_types = match document.grant_types {
        None => vec![GrantType::AuthorizationCode],
        Some(names) => {
            let mut grants = Vec::new();
            for name in &names {
                let grant = match name.as_str() {
                    "authorization_code" => GrantType::AuthorizationCode,
                    "refresh_token" => GrantType::RefreshToken,
                    _ => return Err(DocumentError::GrantTypes),
                };
                if !grants.contains(&grant) {
                    grants.push(grant);
                }
            }
            if !grants.contains(&GrantType::AuthorizationCode) {
                return Err(DocumentError::GrantTypes);
            }
            grants
        }
    };
    if document
        .response_types
        .is_some_and(|types| types.iter().any(|t| t != "code"))
    {
        return Err(DocumentError::ResponseTypes);
    }
    let allowed = ScopeSet::from_list(policy.scopes.iter().cloned());
    let scopes = match document.scope.as_deref() {
        None => allowed.to_vec(),
        Some(asked) => {
            let asked = ScopeSet::parse(asked).map_err(|e| DocumentError::Scope(e.description))?;
            asked
                .iter()
                .filter(|s| allowed.contains(s))
                .map(str::to_string)
                .collect()
        }
    };
    for (name, value) in [
        ("client_uri", &document.client_uri),
        ("logo_uri", &document.logo_uri),
    ] {
        if let Some(value) = value {
            let is_https = url::Url::parse(value).is_ok_and(|u| {
                u.scheme() == "https" && u.host_str().is_some() && u.username().is_empty()
            });
            if !is_https {
                return Err(DocumentError::WebUrl(name));
            }
        }
    }
    let name = match document.client_name.as_deref().map(str::trim) {
        None => document_host(client_id).unwrap_or_else(|| client_id.to_string()),
        Some(name)
            if !name.is_empty()
                && name.chars().count() <= MAX_NAME
                && !name.chars().any(char::is_control) =>
        {
            name.to_string()
        }
        Some(_) => return Err(DocumentError::ClientName),
    };
    Ok(Client {
        id: client_id.to_string(),
        name,
        secret_hash: None,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types,
        scopes,
        audiences: Vec::new(),
        is_first_party: false,
        always_issue_refresh_token: false,
        access_token_ttl: None,
        refresh_token_ttl: None,
        allowed_origins: Vec::new(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        token_endpoint_auth_method: auth_method,
        jwks,
        jwks_uri,
        require_pushed_authorization_requests: false,
        dpop_bound_access_tokens: document.dpop_bound_access_tokens.unwrap_or(false),
        registration: None,
        registered_from: None,
        first_used_at: None,
        created_at: now,
        updated_at: now,
    })
}

/// §8.2: the keys of a `private_key_jwt` client, public ones only; none for `none`.
fn client_keys(
    document: &ClientMetadataDocument,
    auth_method: AuthMethod,
    policy: &DocumentPolicy,
) -> Result<(Option<String>, Option<String>), DocumentError> {
    let has_jwks = document.jwks.as_ref().is_some_and(|j| !j.is_null());
    let has_uri = document.jwks_uri.is_some();
    if auth_method != AuthMethod::PrivateKeyJwt {
        return match has_jwks || has_uri {
            true => Err(DocumentError::KeysNotExpected),
            false => Ok((None, None)),
        };
    }
    match (has_jwks, has_uri) {
        (true, true) => Err(DocumentError::KeysNotExpected),
        (false, false) => Err(DocumentError::KeysRequired),
        (true, false) => {
            let text = document
                .jwks
                .as_ref()
                .map(|j| j.to_string())
                .unwrap_or_default();
            validate_public_jwks(&text).map_err(DocumentError::Jwks)?;
            Ok((Some(text), None))
        }
        (false, true) => {
            let uri = document.jwks_uri.clone().unwrap_or_default();
            crate::client::validate_jwks_uri(&uri).map_err(DocumentError::JwksUri)?;
            if uri.starts_with("http://") && !policy.allow_loopback {
                return Err(DocumentError::JwksUri("must use https"));
            }
            Ok((None, Some(uri)))
        }
    }
}

/// A list of redirect URIs, each under the rules of registered ones.
fn uri_list(uris: Option<Vec<String>>, list: &'static str) -> Result<Vec<String>, DocumentError> {
    let uris = uris.unwrap_or_default();
    if uris.len() > MAX_URIS {
        return Err(DocumentError::TooManyUris(list));
    }
    let mut out: Vec<String> = Vec::new();
    for (index, uri) in uris.into_iter().enumerate() {
        validate_redirect_uri(&uri).map_err(|reason| DocumentError::Uri {
            list,
            index,
            reason,
        })?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// The host (and port, when the URL gives one) of a document client id, as the consent
/// page shows it: lower-case, international names in their ASCII (`xn--`) form.
pub fn document_host(client_id: &str) -> Option<String> {
    if !is_document_client_id(client_id) {
        return None;
    }
    let url = url::Url::parse(client_id).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// Whether two records of a document client say the same (their times aside).
pub fn same_settings(a: &Client, b: &Client) -> bool {
    let strip = |c: &Client| Client {
        created_at: 0,
        updated_at: 0,
        first_used_at: None,
        ..c.clone()
    };
    strip(a) == strip(b)
}

impl Client {
    /// For a client described by a metadata document: the host of its `client_id`, which
    /// the consent page shows (draft §8.4: the user sees who the app says it is).
    pub fn metadata_document_host(&self) -> Option<String> {
        document_host(&self.id)
    }

    /// Whether every redirect URI of the client is on this computer (a loopback address
    /// or `localhost`): an app the user runs themselves, whoever wrote it.
    pub fn redirects_only_to_this_computer(&self) -> bool {
        !self.redirect_uris.is_empty()
            && self.redirect_uris.iter().all(|uri| {
                url::Url::parse(uri).is_ok_and(|url| match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(name)) => {
                        name.eq_ignore_ascii_case("localhost")
                            || name.to_ascii_lowercase().ends_with(".localhost")
                    }
                    None => false,
                })
            })
    }
}
