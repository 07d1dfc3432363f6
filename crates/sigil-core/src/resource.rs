//! RFC 8707 resource indicators: the rules for a resource identifier, and the registered
//! resources ([`Resource`]) with the scopes each accepts.

pub use crate::store::Resource;

use crate::scope::{is_user_scope, ScopeSet};

/// Longest resource identifier (and audience) accepted.
pub const MAX_RESOURCE_LEN: usize = 500;

/// RFC 8707 §2: an absolute URI (RFC 3986 §4.3) without a fragment, and here no spaces or
/// control characters and at most [`MAX_RESOURCE_LEN`] characters.
pub fn is_resource_identifier(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    value.len() <= MAX_RESOURCE_LEN
        && !value.contains('#')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && !rest.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Why a resource registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    #[error("the resource must be an absolute URI without a fragment (RFC 8707 §2), at most 500 characters")]
    Uri,
    #[error("name must be 1 to 200 characters")]
    Name,
    #[error("{0}")]
    Scope(String),
    #[error(
        "{0} is an OpenID Connect scope, not a resource's: every resource may be asked for with it"
    )]
    UserScope(String),
}

/// Checks and builds a resource record.
pub fn new_resource(
    uri: &str,
    name: &str,
    scopes: &[String],
    self_registered_clients: bool,
    now: i64,
) -> Result<Resource, ResourceError> {
    let uri = uri.trim();
    if !is_resource_identifier(uri) {
        return Err(ResourceError::Uri);
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ResourceError::Name);
    }
    let scopes =
        ScopeSet::parse(&scopes.join(" ")).map_err(|e| ResourceError::Scope(e.description))?;
    if let Some(user) = scopes.iter().find(|s| is_user_scope(s)) {
        return Err(ResourceError::UserScope(user.to_string()));
    }
    Ok(Resource {
        uri: uri.to_string(),
        name: name.to_string(),
        scopes: scopes.to_vec(),
        self_registered_clients,
        created_at: now,
        updated_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in [
            "https://api.example.com",
            "https://api.example.com/mcp",
            "urn:example:api",
            "http://127.0.0.1:9000/",
        ] {
            assert!(is_resource_identifier(good), "{good}");
        }
        for bad in [
            "",
            "api.example.com",
            "/relative",
            "https://api.example.com/#frag",
            "https://api.example.com/ x",
            "1https://x",
            "https:",
        ] {
            assert!(!is_resource_identifier(bad), "{bad}");
        }
        assert!(!is_resource_identifier(&format!(
            "https://a.example/{}",
            "x".repeat(500)
        )));
    }

    #[test]
    fn resources_check_their_scopes() {
        let r = new_resource(
            " https://api.example.com ",
            "API",
            &["todo:read".into(), "todo:write".into()],
            true,
            5,
        )
        .expect("valid");
        assert_eq!(r.uri, "https://api.example.com");
        assert_eq!(r.scopes, vec!["todo:read", "todo:write"]);
        assert_eq!(
            new_resource("https://a", "A", &["openid".into()], true, 1),
            Err(ResourceError::UserScope("openid".into()))
        );
        assert!(new_resource("https://a", "A", &["bad\"scope".into()], true, 1).is_err());
        assert_eq!(
            new_resource("nope", "A", &[], true, 1),
            Err(ResourceError::Uri)
        );
        assert_eq!(
            new_resource("https://a", " ", &[], true, 1),
            Err(ResourceError::Name)
        );
    }
}
