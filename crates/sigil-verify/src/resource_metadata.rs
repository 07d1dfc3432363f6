//! RFC 9728 protected resource metadata: the document a resource server publishes so that a
//! client (an MCP client, for one) that knows only the resource's URL can find the
//! authorization server to get a token from, and where it is published.
//!
//! ```
//! use sigil_verify::ProtectedResourceMetadata;
//!
//! let metadata = ProtectedResourceMetadata::builder("https://api.example.com/mcp")
//!     .authorization_servers(["https://sigil.example.com"])
//!     .scopes_supported(["todos:read", "todos:write"])
//!     .resource_name("Example TODO API")
//!     .build()?;
//! assert_eq!(
//!     metadata.metadata_url(),
//!     "https://api.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! # Ok::<(), sigil_verify::MetadataError>(())
//! ```
//!
//! With the `axum` feature, [`ProtectedResourceMetadata::router`] serves the document, and
//! [`crate::axum_support::VerifyLayer::resource_metadata`] names its URL in every challenge
//! (RFC 9728 §5.1).

use serde_json::{Map, Value};
use std::net::IpAddr;

/// The default well-known path of RFC 9728 §3. For a resource identifier without a path it
/// is the whole path of the metadata URL; otherwise the resource's path follows it.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// Longest accepted URL (resource identifier, authorization server, documentation...).
const MAX_URL_LEN: usize = 2048;

/// The metadata names with a setter of their own; an extra may not take one of them.
const STANDARD_NAMES: [&str; 11] = [
    "resource",
    "authorization_servers",
    "jwks_uri",
    "scopes_supported",
    "bearer_methods_supported",
    "resource_name",
    "resource_documentation",
    "resource_policy_uri",
    "resource_tos_uri",
    "dpop_signing_alg_values_supported",
    "dpop_bound_access_tokens_required",
];

/// A validated RFC 9728 metadata document and where it is published. Made by
/// [`ProtectedResourceMetadata::builder`]; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    metadata_url: String,
    metadata_path: String,
    /// The JSON document, rendered once.
    json: String,
}

/// A refused metadata value: which field, and why. Returned by
/// [`ProtectedResourceMetadataBuilder::build`]; the text is meant for an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct MetadataError {
    field: String,
    message: String,
}

impl MetadataError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The metadata name (`resource`, `authorization_servers`, ...) whose value was refused.
    pub fn field(&self) -> &str {
        &self.field
    }
}

/// A [`ProtectedResourceMetadata`] in the making. Nothing is checked until [`Self::build`].
#[derive(Debug, Clone)]
pub struct ProtectedResourceMetadataBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    jwks_uri: Option<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    resource_policy_uri: Option<String>,
    resource_tos_uri: Option<String>,
    dpop_signing_alg_values_supported: Vec<String>,
    dpop_bound_access_tokens_required: bool,
    extra: Vec<(String, Value)>,
}

impl ProtectedResourceMetadata {
    /// Starts the metadata of the resource `resource`: its resource identifier, the URL that
    /// clients use for it and that Sigil puts in the tokens' `aud` when a client asks for it
    /// (RFC 8707 `resource`). `bearer_methods_supported` starts as `["header"]`, the only
    /// way `sigil-verify` reads a token.
    pub fn builder(resource: impl Into<String>) -> ProtectedResourceMetadataBuilder {
        ProtectedResourceMetadataBuilder {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            jwks_uri: None,
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_string()],
            resource_name: None,
            resource_documentation: None,
            resource_policy_uri: None,
            resource_tos_uri: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            extra: Vec::new(),
        }
    }

    /// The resource identifier, exactly as configured and as the document's `resource`
    /// (RFC 9728 §3.3: a client compares the two character for character).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The issuers of the authorization servers that the document names.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// The scopes that the document lists.
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// Where the document is (RFC 9728 §3.1): the well-known path inserted between the
    /// resource identifier's host and its path, `https://api.example/.well-known/oauth-protected-resource/mcp`
    /// for `https://api.example/mcp`, and the well-known path alone for a resource without a
    /// path. This is the URL for the challenges' `resource_metadata`.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The path part of [`Self::metadata_url`].
    pub fn metadata_path(&self) -> &str {
        &self.metadata_path
    }

    /// The paths a server should answer with the document: [`Self::metadata_path`] and, for
    /// a resource with a path, also the bare [`WELL_KNOWN_PATH`], where clients that know only
    /// the host look.
    pub fn route_paths(&self) -> Vec<&str> {
        if self.metadata_path == WELL_KNOWN_PATH {
            vec![WELL_KNOWN_PATH]
        } else {
            vec![WELL_KNOWN_PATH, self.metadata_path.as_str()]
        }
    }

    /// The JSON document (RFC 9728 §2, §3.2): absent values and empty lists are left out.
    pub fn to_json(&self) -> &str {
        &self.json
    }
}

impl ProtectedResourceMetadataBuilder {
    /// The issuer identifiers (RFC 8414) of the authorization servers that issue tokens for
    /// this resource, exactly as in their tokens' `iss`. Replaces any given before.
    pub fn authorization_servers<I, T>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.authorization_servers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// The scopes clients use to ask for access to this resource. Replaces any given before.
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How tokens may be sent (RFC 6750 §2: `header`, `body`, `query`); `["header"]` unless
    /// set. An empty list leaves the value out of the document.
    pub fn bearer_methods_supported<I, T>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// A name for people, such as a consent page might show.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A page for developers about this resource.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// A page about how clients may use the resource's data.
    pub fn resource_policy_uri(mut self, url: impl Into<String>) -> Self {
        self.resource_policy_uri = Some(url.into());
        self
    }

    /// The resource's terms of service.
    pub fn resource_tos_uri(mut self, url: impl Into<String>) -> Self {
        self.resource_tos_uri = Some(url.into());
        self
    }

    /// The JWK set of the resource's own keys (for signed responses; not the issuer's keys).
    /// The JWS algorithms this resource server accepts for DPoP proofs (RFC 9728 §2,
    /// RFC 9449 §5.1): each must be one `sigil-verify` checks (ES256, RS256, PS256, EdDSA).
    /// Give the algorithms of the verifier's [`crate::DpopConfig`], so that clients learn
    /// what the server really takes.
    pub fn dpop_signing_alg_values_supported<I, T>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.dpop_signing_alg_values_supported = algorithms.into_iter().map(Into::into).collect();
        self
    }

    /// Whether this resource server takes only DPoP-bound access tokens (RFC 9728 §2);
    /// `false` (the default) is left out of the document, as the RFC's default.
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_bound_access_tokens_required = required;
        self
    }

    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// Another metadata value, such as `dpop_bound_access_tokens_required`. The name may not
    /// be one of those with a setter above; `null` and empty lists are left out.
    pub fn extra(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.push((name.into(), value));
        self
    }

    /// Checks every value and renders the document.
    ///
    /// The resource identifier must be an absolute `https` URL (or `http` on a loopback
    /// host, for development) in canonical form (as the WHATWG URL parser writes it; a
    /// resource without a path may leave out the final `/`), without user name, query or
    /// fragment, and without a path segment that starts with `:` or `*` (the router could not
    /// serve it). Authorization servers are `http` or `https` URLs without query or fragment;
    /// other URLs are absolute `http` or `https` URLs, `jwks_uri` `https` only (or loopback);
    /// scopes are RFC 6749 §3.3 scope tokens.
    pub fn build(self) -> Result<ProtectedResourceMetadata, MetadataError> {
        let resource = &self.resource;
        let url = parse_url("resource", resource)?;
        require_secure("resource", &url)?;
        require_no_query_or_fragment("resource", &url)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(MetadataError::new(
                "resource",
                "must not carry a user name or password",
            ));
        }
        let canonical = url.as_str();
        let is_canonical = canonical == resource
            || (url.path() == "/" && canonical.strip_suffix('/') == Some(resource.as_str()));
        if !is_canonical {
            return Err(MetadataError::new(
                "resource",
                format!("must be written in canonical form, {canonical}"),
            ));
        }
        let path = match url.path() {
            "/" => "",
            path => path,
        };
        if path
            .split('/')
            .any(|segment| segment.starts_with(':') || segment.starts_with('*'))
        {
            return Err(MetadataError::new(
                "resource",
                "a path segment must not start with ':' or '*'",
            ));
        }
        let metadata_path = format!("{WELL_KNOWN_PATH}{path}");
        // The origin as the URL parser writes it: scheme, host, and a port that is not the
        // scheme's default.
        let origin = &canonical[..canonical.len() - url.path().len()];
        let metadata_url = format!("{origin}{metadata_path}");

        for issuer in &self.authorization_servers {
            let url = parse_url("authorization_servers", issuer)?;
            require_no_query_or_fragment("authorization_servers", &url)?;
        }
        for scope in &self.scopes_supported {
            let is_scope_token = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !is_scope_token {
                return Err(MetadataError::new(
                    "scopes_supported",
                    format!("{scope:?} is not a scope token (RFC 6749 §3.3)"),
                ));
            }
        }
        for method in &self.bearer_methods_supported {
            if !["header", "body", "query"].contains(&method.as_str()) {
                return Err(MetadataError::new(
                    "bearer_methods_supported",
                    format!("{method:?} is none of header, body, query"),
                ));
            }
        }
        for algorithm in &self.dpop_signing_alg_values_supported {
            if sigil_dpop::Alg::parse(algorithm).is_none() {
                return Err(MetadataError::new(
                    "dpop_signing_alg_values_supported",
                    format!("{algorithm:?} is none of ES256, RS256, PS256, EdDSA"),
                ));
            }
        }
        if self.dpop_bound_access_tokens_required
            && self.dpop_signing_alg_values_supported.is_empty()
        {
            return Err(MetadataError::new(
                "dpop_bound_access_tokens_required",
                "needs dpop_signing_alg_values_supported: a client must learn which proofs are taken",
            ));
        }
        if let Some(jwks_uri) = &self.jwks_uri {
            require_secure("jwks_uri", &parse_url("jwks_uri", jwks_uri)?)?;
        }
        for (field, value) in [
            ("resource_documentation", &self.resource_documentation),
            ("resource_policy_uri", &self.resource_policy_uri),
            ("resource_tos_uri", &self.resource_tos_uri),
        ] {
            if let Some(value) = value {
                parse_url(field, value)?;
            }
        }
        if self.resource_name.as_deref().is_some_and(str::is_empty) {
            return Err(MetadataError::new("resource_name", "must not be empty"));
        }
        for (name, _) in &self.extra {
            if name.is_empty() || STANDARD_NAMES.contains(&name.as_str()) {
                return Err(MetadataError::new(
                    name,
                    "cannot be given as an extra value",
                ));
            }
        }

        let json = self.document().to_string();
        Ok(ProtectedResourceMetadata {
            resource: self.resource,
            authorization_servers: self.authorization_servers,
            scopes_supported: self.scopes_supported,
            metadata_url,
            metadata_path,
            json,
        })
    }

    /// The document, RFC 9728 §2 names in the RFC's order, then the extras.
    fn document(&self) -> Value {
        let mut document = Map::new();
        document.insert("resource".into(), Value::from(self.resource.as_str()));
        let lists = [
            ("authorization_servers", &self.authorization_servers),
            ("scopes_supported", &self.scopes_supported),
            ("bearer_methods_supported", &self.bearer_methods_supported),
            (
                "dpop_signing_alg_values_supported",
                &self.dpop_signing_alg_values_supported,
            ),
        ];
        let strings = [
            ("jwks_uri", &self.jwks_uri),
            ("resource_name", &self.resource_name),
            ("resource_documentation", &self.resource_documentation),
            ("resource_policy_uri", &self.resource_policy_uri),
            ("resource_tos_uri", &self.resource_tos_uri),
        ];
        for (name, values) in lists {
            if !values.is_empty() {
                document.insert(name.into(), Value::from(values.clone()));
            }
        }
        for (name, value) in strings {
            if let Some(value) = value {
                document.insert(name.into(), Value::from(value.as_str()));
            }
        }
        if self.dpop_bound_access_tokens_required {
            document.insert(
                "dpop_bound_access_tokens_required".into(),
                Value::Bool(true),
            );
        }
        for (name, value) in &self.extra {
            let is_empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
            if !is_empty {
                document.insert(name.clone(), value.clone());
            }
        }
        Value::Object(document)
    }
}

/// An absolute `http` or `https` URL of printable ASCII (the URL parser would silently drop
/// tabs and line breaks, and a quote could not sit in a challenge).
fn parse_url(field: &str, value: &str) -> Result<url::Url, MetadataError> {
    if value.len() > MAX_URL_LEN {
        return Err(MetadataError::new(field, "is too long"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(MetadataError::new(
            field,
            "must be printable ASCII without spaces, quotes or backslashes",
        ));
    }
    let url = url::Url::parse(value).map_err(|e| {
        MetadataError::new(field, format!("{value:?} is not an absolute URL ({e})"))
    })?;
    if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
        return Err(MetadataError::new(field, "must be an http or https URL"));
    }
    Ok(url)
}

/// `https`, or `http` on a loopback host (`localhost`, 127.0.0.0/8, `[::1]`).
fn require_secure(field: &str, url: &url::Url) -> Result<(), MetadataError> {
    let is_loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    if url.scheme() == "https" || is_loopback {
        Ok(())
    } else {
        Err(MetadataError::new(
            field,
            "must use https (http only on a loopback host)",
        ))
    }
}

fn require_no_query_or_fragment(field: &str, url: &url::Url) -> Result<(), MetadataError> {
    if url.fragment().is_some() {
        return Err(MetadataError::new(field, "must not have a fragment"));
    }
    if url.query().is_some() {
        return Err(MetadataError::new(field, "must not have a query"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
