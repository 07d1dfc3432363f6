//! OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 server metadata.

use crate::authority::AuthorityConfig;
use serde_json::{json, Value};

/// Server metadata for the issuer of `config`. The same document serves both well-known
/// paths.
pub fn metadata(config: &AuthorityConfig) -> Value {
    let issuer = config.issuer.as_str();
    let base = issuer.trim_end_matches('/');
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks.json"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "end_session_endpoint": format!("{base}/logout"),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "grant_types_supported": ["authorization_code", "refresh_token", "password", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        // RFC 8414 §2: required beside private_key_jwt; the algorithms of client assertions.
        "token_endpoint_auth_signing_alg_values_supported": crate::client_keys::ASSERTION_SIGNING_ALGS,
        "revocation_endpoint_auth_signing_alg_values_supported": crate::client_keys::ASSERTION_SIGNING_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": crate::client_keys::ASSERTION_SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "acr_values_supported": crate::factors::ACR_VALUES_SUPPORTED,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "at_hash", "sid", "name", "preferred_username", "email", "email_verified", "updated_at"],
        // OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens, with `sid`.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "authorization_response_iss_parameter_supported": true,
        // draft-ietf-oauth-client-id-metadata-document §6: URL client ids are fetched.
        "client_id_metadata_document_supported": true,
        "request_parameter_supported": false,
        // OIDC Core §6 request objects by reference are not supported; the `request_uri` of
        // a pushed request is (RFC 9126 §5).
        "request_uri_parameter_supported": false,
        "pushed_authorization_request_endpoint": format!("{base}/par"),
        "require_pushed_authorization_requests": config.require_pushed_authorization_requests,
        "claims_parameter_supported": false,
        // RFC 9449 §5.1: the algorithms of DPoP proofs.
        "dpop_signing_alg_values_supported": crate::dpop::SIGNING_ALGS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_authorization_requests_are_announced() {
        let mut config = AuthorityConfig::new("https://sigil.test/");
        let document = metadata(&config);
        assert_eq!(
            document["pushed_authorization_request_endpoint"],
            "https://sigil.test/par"
        );
        assert_eq!(document["require_pushed_authorization_requests"], false);
        config.require_pushed_authorization_requests = true;
        assert_eq!(
            metadata(&config)["require_pushed_authorization_requests"],
            true
        );
    }
}
