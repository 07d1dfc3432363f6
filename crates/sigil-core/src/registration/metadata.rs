//! RFC 7591 §2 client metadata: what a registrant sends, read into a [`ClientRegistration`],
//! and what Sigil answers with (§3.2.1, RFC 7592 §3). Unknown fields are ignored (§2: MUST).

use crate::client::{
    validate_redirect_uri, ApplicationType, AuthMethod, Client, ClientRegistration, GrantType,
};
use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use serde_json::{Map, Value};

/// Metadata kept only to be read back, and how long each may be.
const KEPT_STRINGS: [&str; 6] = [
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
];
const MAX_STRING: usize = 500;
const MAX_LIST: usize = 20;

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn redirect_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

/// A registration request read and checked, before it is built into a client.
#[derive(Debug)]
pub struct RequestedClient {
    pub registration: ClientRegistration,
    pub application_type: ApplicationType,
    /// `client_uri`, `logo_uri`, …, `contacts`: kept only to be returned.
    pub kept: Map<String, Value>,
}

/// A boolean member: absent or `null` is false.
fn bool_field(body: &Map<String, Value>, field: &str) -> Result<bool, OAuthError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(metadata_error(format!("{field} must be true or false"))),
    }
}

fn string_field<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_STRING => Ok(Some(s.as_str())),
        Some(Value::String(_)) => Err(metadata_error(format!(
            "{name} must be at most {MAX_STRING} characters"
        ))),
        Some(_) => Err(metadata_error(format!("{name} must be a string"))),
    }
}

fn string_list(body: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            if items.len() > MAX_LIST {
                return Err(metadata_error(format!(
                    "{name} may hold at most {MAX_LIST} values"
                )));
            }
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if s.len() <= MAX_STRING => {
                        if !out.contains(s) {
                            out.push(s.clone());
                        }
                    }
                    _ => {
                        return Err(metadata_error(format!(
                            "{name} must be an array of strings of at most {MAX_STRING} characters"
                        )))
                    }
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(metadata_error(format!(
            "{name} must be an array of strings"
        ))),
    }
}

/// Whether a redirect URI is one only a native app uses: a loopback IP or a private-use
/// scheme (RFC 8252 §7.1, §7.3).
fn is_native_redirect(uri: &str) -> bool {
    uri.starts_with("http://127.0.0.1") || uri.starts_with("http://[::1]") || {
        let scheme = uri.split(':').next().unwrap_or("");
        scheme.contains('.')
    }
}

/// An https URL a registrant gives for people to visit (`client_uri`, `tos_uri`, …).
fn check_web_url(name: &str, value: &str) -> Result<(), OAuthError> {
    let url = url::Url::parse(value)
        .map_err(|_| metadata_error(format!("{name} must be an https URL")))?;
    if url.scheme() != "https"
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(metadata_error(format!(
            "{name} must be an https URL without user information"
        )));
    }
    Ok(())
}

/// Reads an RFC 7591 registration (or RFC 7592 update) body. `allowed_scopes` is what a
/// self-registered client may ask for: a requested scope outside it is dropped (§2: the
/// server may register fewer scopes than asked), none requested means all of it.
pub fn read_request(
    body: &Map<String, Value>,
    allowed_scopes: &ScopeSet,
) -> Result<RequestedClient, OAuthError> {
    let redirect_uris = string_list(body, "redirect_uris")?.unwrap_or_default();
    let auth_method = match string_field(body, "token_endpoint_auth_method")? {
        // §2: the default is client_secret_basic.
        None => AuthMethod::ClientSecretBasic,
        Some(name) => AuthMethod::parse(name).ok_or_else(|| {
            metadata_error(format!(
                "token_endpoint_auth_method {name:?} is not supported (none, client_secret_basic, client_secret_post, private_key_jwt)"
            ))
        })?,
    };
    let is_public = auth_method == AuthMethod::None;
    // §2: the default grant type is authorization_code, the default response type code.
    let grant_names =
        string_list(body, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".to_string()]);
    let mut grants = Vec::new();
    for name in &grant_names {
        let grant = match GrantType::parse(name) {
            Some(GrantType::Password) | None => {
                return Err(metadata_error(format!(
                    "grant type {name:?} is not available to self-registered clients (authorization_code, refresh_token, client_credentials)"
                )))
            }
            Some(GrantType::ClientCredentials) if is_public => {
                return Err(metadata_error(
                    "a public client (token_endpoint_auth_method none) cannot use client_credentials",
                ))
            }
            Some(grant) => grant,
        };
        grants.push(grant);
    }
    let wants_code = grants.contains(&GrantType::AuthorizationCode);
    let response_types = string_list(body, "response_types")?.unwrap_or_else(|| {
        if wants_code {
            vec!["code".to_string()]
        } else {
            Vec::new()
        }
    });
    if response_types.iter().any(|r| r != "code") {
        return Err(metadata_error("only the response type code is supported"));
    }
    if wants_code == response_types.is_empty() {
        return Err(metadata_error(
            "the response type code and the grant type authorization_code go together (RFC 7591 §2.1)",
        ));
    }
    if wants_code && redirect_uris.is_empty() {
        return Err(redirect_error(
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    let application_type = match string_field(body, "application_type")? {
        Some("web") => ApplicationType::Web,
        Some("native") => ApplicationType::Native,
        Some(other) => {
            return Err(metadata_error(format!(
                "application_type {other:?} is unknown (web or native)"
            )))
        }
        // OpenID Connect's default is web; an app whose every redirect only a native app
        // can use (loopback, private-use scheme) is read as native rather than refused.
        None if !redirect_uris.is_empty()
            && redirect_uris.iter().all(|u| is_native_redirect(u)) =>
        {
            ApplicationType::Native
        }
        None => ApplicationType::Web,
    };
    for uri in &redirect_uris {
        validate_redirect_uri(uri).map_err(|reason| redirect_error(format!("{uri}: {reason}")))?;
        if application_type == ApplicationType::Web && is_native_redirect(uri) {
            return Err(redirect_error(format!(
                "{uri}: a web application's redirect URIs use https on a real host; register application_type native for loopback or private-use-scheme redirects"
            )));
        }
    }
    let post_logout_redirect_uris =
        string_list(body, "post_logout_redirect_uris")?.unwrap_or_default();
    for uri in &post_logout_redirect_uris {
        validate_redirect_uri(uri).map_err(|reason| {
            metadata_error(format!("post_logout_redirect_uris: {uri}: {reason}"))
        })?;
    }
    let scopes = match string_field(body, "scope")? {
        None => allowed_scopes.to_vec(),
        Some(text) => {
            let asked = ScopeSet::parse(text).map_err(|e| metadata_error(e.description))?;
            asked
                .iter()
                .filter(|s| allowed_scopes.contains(s))
                .map(str::to_string)
                .collect()
        }
    };
    if scopes.is_empty() {
        return Err(metadata_error(
            "none of the requested scopes is available to self-registered clients",
        ));
    }
    let jwks = match body.get("jwks") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value.to_string()),
        Some(_) => return Err(metadata_error("jwks must be a JSON object (a JWK Set)")),
    };
    let jwks_uri = string_field(body, "jwks_uri")?.map(str::to_string);
    let require_par = bool_field(body, "require_pushed_authorization_requests")?;
    // RFC 9449 §5.2.
    let dpop_bound = bool_field(body, "dpop_bound_access_tokens")?;
    let name = match string_field(body, "client_name")? {
        Some(name) if !name.trim().is_empty() => name.trim().chars().take(200).collect(),
        _ => "Unnamed app".to_string(),
    };
    let mut kept = Map::new();
    for field in KEPT_STRINGS {
        if let Some(value) = string_field(body, field)? {
            if field.ends_with("_uri") {
                check_web_url(field, value)?;
            }
            kept.insert(field.to_string(), Value::String(value.to_string()));
        }
    }
    if let Some(contacts) = string_list(body, "contacts")? {
        kept.insert("contacts".into(), Value::from(contacts));
    }
    let registration = ClientRegistration {
        name,
        is_public,
        redirect_uris,
        post_logout_redirect_uris,
        grant_types: Some(grants.iter().map(|g| g.as_str().to_string()).collect()),
        scopes: Some(scopes),
        audiences: Vec::new(),
        is_first_party: false,
        // Registering the refresh_token grant is asking for refresh tokens (RFC 7591 §2):
        // without this they would come only with `offline_access`, which OAuth clients that
        // are not OpenID Connect clients (MCP clients among them) do not ask for.
        always_issue_refresh_token: grants.contains(&GrantType::RefreshToken),
        access_token_ttl: None,
        refresh_token_ttl: None,
        allowed_origins: Vec::new(),
        // Not taken from a registrant: Sigil would POST to whatever address it names.
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        token_endpoint_auth_method: Some(auth_method),
        jwks,
        jwks_uri,
        require_pushed_authorization_requests: require_par,
        dpop_bound_access_tokens: dpop_bound,
    };
    Ok(RequestedClient {
        registration,
        application_type,
        kept,
    })
}

/// The client's metadata as RFC 7591 §3.2.1 and RFC 7592 §3 return it (without the
/// credentials, which the caller adds).
pub fn describe(client: &Client) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("client_id".into(), client.id.clone().into());
    out.insert("client_id_issued_at".into(), client.created_at.into());
    out.insert("client_name".into(), client.name.clone().into());
    out.insert("redirect_uris".into(), client.redirect_uris.clone().into());
    if !client.post_logout_redirect_uris.is_empty() {
        out.insert(
            "post_logout_redirect_uris".into(),
            client.post_logout_redirect_uris.clone().into(),
        );
    }
    out.insert(
        "grant_types".into(),
        client
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .into(),
    );
    let response_types: Vec<&str> = if client.allows_grant(GrantType::AuthorizationCode) {
        vec!["code"]
    } else {
        vec![]
    };
    out.insert("response_types".into(), response_types.into());
    out.insert(
        "token_endpoint_auth_method".into(),
        client.token_endpoint_auth_method.as_str().into(),
    );
    out.insert("scope".into(), client.scopes.join(" ").into());
    if let Some(uri) = &client.jwks_uri {
        out.insert("jwks_uri".into(), uri.clone().into());
    }
    if let Some(jwks) = client
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
    {
        out.insert("jwks".into(), jwks);
    }
    out.insert(
        "require_pushed_authorization_requests".into(),
        client.require_pushed_authorization_requests.into(),
    );
    out.insert(
        "dpop_bound_access_tokens".into(),
        client.dpop_bound_access_tokens.into(),
    );
    if let Some(registration) = &client.registration {
        out.insert(
            "application_type".into(),
            registration.application_type.as_str().into(),
        );
        for (key, value) in &registration.metadata {
            out.insert(key.clone(), value.clone());
        }
    }
    if client.token_endpoint_auth_method.uses_secret() {
        // §3.2.1: 0, the secret does not expire.
        out.insert("client_secret_expires_at".into(), 0.into());
    }
    out
}
