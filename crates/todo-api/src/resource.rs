//! Who todo-api is to its clients: its resource identifier (RFC 8707, RFC 9728), the
//! audience it checks in tokens, and the RFC 9728 metadata document that names Sigil.

use sigil_verify::{DpopConfig, MetadataError, ProtectedResourceMetadata, PublicOrigin};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Reading todos.
pub const SCOPE_READ: &str = "todos:read";
/// Creating, changing and deleting todos.
pub const SCOPE_WRITE: &str = "todos:write";
/// The name in the metadata document.
pub const RESOURCE_NAME: &str = "Sigil TODO API";

/// The resource identifier and the audience, as the command line settles them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIdentity {
    /// The URL clients use for this API, the `resource` they ask Sigil for, and the
    /// metadata document's `resource`.
    pub resource_uri: String,
    /// What tokens must carry in `aud`. Sigil puts the requested `resource` there, so this
    /// should equal [`Self::resource_uri`]; it differs only when set apart on purpose.
    pub audience: String,
}

impl ResourceIdentity {
    /// From `--resource-uri`, `--audience` and `--bind`:
    ///
    /// * the resource URI is `--resource-uri`; else `--audience` when that is a valid
    ///   resource identifier (an `https` URL, or `http` on loopback); else `http://` and the
    ///   bind address, with an unspecified address (`0.0.0.0`, `::`) read as loopback;
    /// * the audience is `--audience`, else the resource URI.
    ///
    /// Fails when neither flag gives a URL and the bind address cannot stand for one (a
    /// non-loopback address, or port 0).
    pub fn resolve(
        resource_uri: Option<&str>,
        audience: Option<&str>,
        bind: SocketAddr,
    ) -> Result<Self, String> {
        let resource_uri = match (resource_uri, audience) {
            (Some(uri), _) => uri.to_string(),
            (None, Some(audience)) if is_resource_identifier(audience) => audience.to_string(),
            (None, _) => from_bind(bind)?,
        };
        let audience = audience.unwrap_or(&resource_uri).to_string();
        Ok(Self {
            resource_uri,
            audience,
        })
    }

    /// True when tokens issued for the resource URI (RFC 8707) are accepted as they are.
    pub fn audience_is_resource(&self) -> bool {
        self.audience == self.resource_uri
    }
}

/// todo-api's RFC 9728 metadata: `resource_uri`, Sigil as the authorization server, the two
/// scopes, its name, and the DPoP proof algorithms it checks (it takes bearer tokens too).
pub fn protected_resource_metadata(
    resource_uri: &str,
    issuer: &str,
) -> Result<ProtectedResourceMetadata, MetadataError> {
    ProtectedResourceMetadata::builder(resource_uri)
        .authorization_servers([issuer])
        .scopes_supported([SCOPE_READ, SCOPE_WRITE])
        .resource_name(RESOURCE_NAME)
        .dpop_signing_alg_values_supported(
            sigil_verify::PROOF_ALGORITHMS.map(sigil_verify::ProofAlgorithm::name),
        )
        .build()
}

/// How todo-api reads DPoP requests (RFC 9449): proofs' `htu` must be `public_url` (the
/// URL clients reach the API at, without a trailing `/`) and the request's path; with
/// `nonce_window`, proofs need a nonce of todo-api's that changes that often (§9); at most
/// `replay_capacity` proofs remembered against replay.
pub fn dpop_config(
    public_url: &str,
    nonce_window: Option<Duration>,
    replay_capacity: usize,
) -> Result<DpopConfig, String> {
    let parsed = url::Url::parse(public_url)
        .map_err(|e| format!("--public-url {public_url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(format!(
            "--public-url {public_url:?} must be an http(s) URL without query or fragment"
        ));
    }
    let mut config = DpopConfig::new(PublicOrigin::Url(
        public_url.trim_end_matches('/').to_string(),
    ));
    config.replay_capacity = replay_capacity;
    if let Some(window) = nonce_window {
        config = config.with_nonces(window);
    }
    Ok(config)
}

/// The default public URL: the resource URI's origin (`https://todo.example/api` →
/// `https://todo.example`), since todo-api's routes are paths from the root (`/api/todos`).
pub fn default_public_url(resource_uri: &str) -> Result<String, String> {
    let parsed = url::Url::parse(resource_uri)
        .map_err(|e| format!("the resource URI {resource_uri:?} is not a URL: {e}"))?;
    Ok(parsed.origin().ascii_serialization())
}

fn is_resource_identifier(value: &str) -> bool {
    ProtectedResourceMetadata::builder(value).build().is_ok()
}

fn from_bind(bind: SocketAddr) -> Result<String, String> {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    if !ip.is_loopback() || bind.port() == 0 {
        return Err(format!(
            "cannot tell this API's URL from --bind {bind}: give --resource-uri \
             (the https URL clients use for it)"
        ));
    }
    Ok(format!("http://{}", SocketAddr::new(ip, bind.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        uri: Option<&str>,
        audience: Option<&str>,
        bind: &str,
    ) -> Result<(String, String), String> {
        let bind = bind.parse().expect("address");
        ResourceIdentity::resolve(uri, audience, bind).map(|r| (r.resource_uri, r.audience))
    }

    fn pair(uri: &str, audience: &str) -> Result<(String, String), String> {
        Ok((uri.to_string(), audience.to_string()))
    }

    #[test]
    fn the_resource_uri_comes_from_the_flags_or_the_bind_address() {
        let api = "https://api.example.com";
        assert_eq!(resolve(Some(api), None, "127.0.0.1:8090"), pair(api, api));
        assert_eq!(resolve(None, Some(api), "0.0.0.0:8090"), pair(api, api));
        assert_eq!(
            resolve(Some(api), Some("todo-api"), "127.0.0.1:8090"),
            pair(api, "todo-api")
        );
        // An audience that is no URL leaves the resource URI to the bind address.
        assert_eq!(
            resolve(None, Some("todo-api"), "0.0.0.0:8090"),
            pair("http://127.0.0.1:8090", "todo-api")
        );
        assert_eq!(
            resolve(None, None, "127.0.0.1:8090"),
            pair("http://127.0.0.1:8090", "http://127.0.0.1:8090")
        );
        assert_eq!(
            resolve(None, None, "[::]:8090"),
            pair("http://[::1]:8090", "http://[::1]:8090")
        );
        assert!(resolve(None, None, "192.0.2.7:8090").is_err());
        assert!(resolve(None, Some("todo-api"), "127.0.0.1:0").is_err());
    }

    #[test]
    fn the_public_url_defaults_to_the_resource_uris_origin() {
        assert_eq!(
            default_public_url("https://todo.example/api").as_deref(),
            Ok("https://todo.example")
        );
        assert_eq!(
            default_public_url("http://127.0.0.1:8090").as_deref(),
            Ok("http://127.0.0.1:8090")
        );
        let config = dpop_config("https://todo.example/", None, 10).expect("config");
        assert_eq!(
            config.public_origin,
            PublicOrigin::Url("https://todo.example".into())
        );
        assert_eq!((config.replay_capacity, config.nonce_window), (10, None));
        let nonces = dpop_config("https://todo.example", Some(Duration::from_secs(30)), 10);
        assert_eq!(
            nonces.expect("config").nonce_window,
            Some(Duration::from_secs(30))
        );
        assert!(dpop_config("todo.example", None, 10).is_err());
        assert!(dpop_config("https://todo.example/?x=1", None, 10).is_err());
    }

    #[test]
    fn the_metadata_names_sigil_and_the_scopes() {
        let metadata =
            protected_resource_metadata("http://127.0.0.1:8090", "http://127.0.0.1:8080")
                .expect("metadata");
        let document: serde_json::Value = serde_json::from_str(metadata.to_json()).expect("JSON");
        assert_eq!(
            document,
            serde_json::json!({
                "resource": "http://127.0.0.1:8090",
                "authorization_servers": ["http://127.0.0.1:8080"],
                "scopes_supported": ["todos:read", "todos:write"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Sigil TODO API",
                "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
            })
        );
        assert!(protected_resource_metadata("http://api.example.com", "https://sigil").is_err());
    }
}
