//! Who todo-api is to its clients: its resource identifier (RFC 8707, RFC 9728), the
//! audience it checks in tokens, and the RFC 9728 metadata document that names Sigil.

use sigil_verify::{MetadataError, ProtectedResourceMetadata};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
/// scopes, and its name.
pub fn protected_resource_metadata(
    resource_uri: &str,
    issuer: &str,
) -> Result<ProtectedResourceMetadata, MetadataError> {
    ProtectedResourceMetadata::builder(resource_uri)
        .authorization_servers([issuer])
        .scopes_supported([SCOPE_READ, SCOPE_WRITE])
        .resource_name(RESOURCE_NAME)
        .build()
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
            })
        );
        assert!(protected_resource_metadata("http://api.example.com", "https://sigil").is_err());
    }
}
