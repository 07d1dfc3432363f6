//! OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 server metadata.

use serde_json::{json, Value};

/// Server metadata for an issuer. The same document serves both well-known paths.
pub fn metadata(issuer: &str) -> Value {
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
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
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
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    })
}
