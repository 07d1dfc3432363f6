//! The metadata's validation, well-known locations and document.

use super::{ProtectedResourceMetadata, WELL_KNOWN_PATH};
use serde_json::{json, Value};

fn metadata(resource: &str) -> Result<ProtectedResourceMetadata, super::MetadataError> {
    ProtectedResourceMetadata::builder(resource)
        .authorization_servers(["https://sigil.example"])
        .build()
}

fn document(metadata: &ProtectedResourceMetadata) -> Value {
    serde_json::from_str(metadata.to_json()).expect("JSON")
}

#[test]
fn the_well_known_segment_goes_between_host_and_path() {
    for (resource, url) in [
        (
            "https://api.example",
            "https://api.example/.well-known/oauth-protected-resource",
        ),
        (
            "https://api.example/",
            "https://api.example/.well-known/oauth-protected-resource",
        ),
        (
            "https://api.example/mcp",
            "https://api.example/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://api.example/tenant/1/mcp/",
            "https://api.example/.well-known/oauth-protected-resource/tenant/1/mcp/",
        ),
        (
            "https://api.example:8443/mcp",
            "https://api.example:8443/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "http://127.0.0.1:8090",
            "http://127.0.0.1:8090/.well-known/oauth-protected-resource",
        ),
        (
            "http://[::1]:8090/a%20b",
            "http://[::1]:8090/.well-known/oauth-protected-resource/a%20b",
        ),
        (
            "http://localhost:3000/mcp",
            "http://localhost:3000/.well-known/oauth-protected-resource/mcp",
        ),
    ] {
        let metadata = metadata(resource).expect(resource);
        assert_eq!(metadata.metadata_url(), url, "{resource}");
        assert!(url.ends_with(metadata.metadata_path()));
        assert_eq!(metadata.resource(), resource, "kept exactly as given");
        assert_eq!(document(&metadata)["resource"], resource);
    }
}

#[test]
fn a_resource_with_a_path_is_served_at_both_paths() {
    let with_path = metadata("https://api.example/mcp").expect("valid");
    assert_eq!(
        with_path.route_paths(),
        [WELL_KNOWN_PATH, "/.well-known/oauth-protected-resource/mcp"]
    );
    let without = metadata("https://api.example").expect("valid");
    assert_eq!(without.route_paths(), [WELL_KNOWN_PATH]);
}

#[test]
fn invalid_resource_identifiers_are_refused() {
    for resource in [
        "",
        "/mcp",
        "mcp",
        "api.example/mcp",
        "https://api.example/mcp#part",
        "https://api.example/mcp#",
        "https://api.example/mcp?tenant=1",
        "http://api.example/mcp",
        "http://example.com",
        "http://10.0.0.1:8090",
        "ftp://api.example/mcp",
        "urn:example:api",
        "https://user:pw@api.example/mcp",
        "https://API.example/mcp",
        "https://api.example:443/mcp",
        "https://api.example/a/../mcp",
        "https://api.example/a{b}",
        "https://api.example/a/:id",
        "https://api.example/*rest",
        "https://api.example/a b",
        "https://api.example/\tmcp",
        "https://api.example/mcp\"",
        "https://api.example/m\\cp",
        "https://api.example/é",
    ] {
        let error = metadata(resource).expect_err(resource);
        assert_eq!(error.field(), "resource", "{resource}: {error}");
    }
    let long = format!("https://api.example/{}", "a".repeat(3000));
    assert!(metadata(&long).is_err());
}

#[test]
fn other_values_are_checked_too() {
    let base = || ProtectedResourceMetadata::builder("https://api.example");
    let refused = [
        (
            base().authorization_servers(["sigil.example"]),
            "authorization_servers",
        ),
        (
            base().authorization_servers(["https://sigil.example#x"]),
            "authorization_servers",
        ),
        (
            base().authorization_servers(["https://sigil.example?x=1"]),
            "authorization_servers",
        ),
        (base().scopes_supported(["two words"]), "scopes_supported"),
        (base().scopes_supported(["quo\"te"]), "scopes_supported"),
        (base().scopes_supported([""]), "scopes_supported"),
        (
            base().bearer_methods_supported(["cookie"]),
            "bearer_methods_supported",
        ),
        (base().jwks_uri("http://api.example/jwks"), "jwks_uri"),
        (
            base().resource_documentation("docs.html"),
            "resource_documentation",
        ),
        (base().resource_tos_uri("javascript:x"), "resource_tos_uri"),
        (base().resource_name(""), "resource_name"),
        (
            base().extra("resource", json!("https://evil.example")),
            "resource",
        ),
        (base().extra("", json!(1)), ""),
    ];
    for (builder, field) in refused {
        let error = builder.build().expect_err(field);
        assert_eq!(error.field(), field, "{error}");
    }
    // A development issuer on plain http is accepted (the verifier trusts it anyway).
    base()
        .authorization_servers(["http://sigil:8080"])
        .build()
        .expect("http issuer");
}

#[test]
fn the_document_leaves_out_what_is_empty() {
    let minimal = ProtectedResourceMetadata::builder("https://api.example")
        .build()
        .expect("valid");
    assert_eq!(
        document(&minimal),
        json!({"resource": "https://api.example", "bearer_methods_supported": ["header"]})
    );
    let none = ProtectedResourceMetadata::builder("https://api.example")
        .bearer_methods_supported(Vec::<String>::new())
        .extra("empty_list", json!([]))
        .extra("nothing", Value::Null)
        .build()
        .expect("valid");
    assert_eq!(document(&none), json!({"resource": "https://api.example"}));
}

#[test]
fn the_document_carries_every_value() {
    let full = ProtectedResourceMetadata::builder("https://api.example/mcp")
        .authorization_servers(["https://sigil.example", "https://other.example"])
        .scopes_supported(["todos:read", "todos:write"])
        .bearer_methods_supported(["header"])
        .resource_name("Sigil \"TODO\" API")
        .resource_documentation("https://api.example/docs")
        .resource_policy_uri("https://api.example/policy")
        .resource_tos_uri("https://api.example/tos")
        .jwks_uri("https://api.example/jwks.json")
        .dpop_signing_alg_values_supported(["ES256", "PS256"])
        .dpop_bound_access_tokens_required(true)
        .extra("x_vendor_setting", json!(false))
        .build()
        .expect("valid");
    assert_eq!(
        document(&full),
        json!({
            "resource": "https://api.example/mcp",
            "authorization_servers": ["https://sigil.example", "https://other.example"],
            "scopes_supported": ["todos:read", "todos:write"],
            "bearer_methods_supported": ["header"],
            "jwks_uri": "https://api.example/jwks.json",
            "resource_name": "Sigil \"TODO\" API",
            "resource_documentation": "https://api.example/docs",
            "resource_policy_uri": "https://api.example/policy",
            "resource_tos_uri": "https://api.example/tos",
            "dpop_signing_alg_values_supported": ["ES256", "PS256"],
            "dpop_bound_access_tokens_required": true,
            "x_vendor_setting": false,
        })
    );
    assert_eq!(full.scopes_supported(), ["todos:read", "todos:write"]);
    assert_eq!(
        full.authorization_servers(),
        ["https://sigil.example", "https://other.example"]
    );
}

#[test]
fn dpop_support_is_published_as_rfc_9728_says() {
    let taking_both = ProtectedResourceMetadata::builder("https://api.example")
        .dpop_signing_alg_values_supported(["ES256", "EdDSA"])
        .build()
        .expect("metadata");
    let both = document(&taking_both);
    assert_eq!(
        both["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(
        both.get("dpop_bound_access_tokens_required"),
        None,
        "false is the default and left out"
    );
    let dpop_only = ProtectedResourceMetadata::builder("https://api.example")
        .dpop_signing_alg_values_supported(["ES256"])
        .dpop_bound_access_tokens_required(true)
        .build()
        .expect("metadata");
    assert_eq!(
        document(&dpop_only)["dpop_bound_access_tokens_required"],
        json!(true)
    );
    // Nothing about DPoP when it is not configured.
    let plain = document(&metadata("https://api.example").expect("metadata"));
    assert!(plain.get("dpop_signing_alg_values_supported").is_none());
}

#[test]
fn dpop_metadata_names_only_what_the_verifier_checks() {
    let refusal = |builder: super::ProtectedResourceMetadataBuilder| {
        builder.build().expect_err("refused").field().to_string()
    };
    assert_eq!(
        refusal(
            ProtectedResourceMetadata::builder("https://api.example")
                .dpop_signing_alg_values_supported(["HS256"])
        ),
        "dpop_signing_alg_values_supported"
    );
    assert_eq!(
        refusal(
            ProtectedResourceMetadata::builder("https://api.example")
                .dpop_signing_alg_values_supported(["none"])
        ),
        "dpop_signing_alg_values_supported"
    );
    assert_eq!(
        refusal(
            ProtectedResourceMetadata::builder("https://api.example")
                .dpop_bound_access_tokens_required(true)
        ),
        "dpop_bound_access_tokens_required"
    );
    for name in [
        "dpop_signing_alg_values_supported",
        "dpop_bound_access_tokens_required",
    ] {
        assert_eq!(
            refusal(
                ProtectedResourceMetadata::builder("https://api.example").extra(name, json!(true))
            ),
            name
        );
    }
}
