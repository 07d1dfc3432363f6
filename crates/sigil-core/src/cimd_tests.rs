//! Core tests of client ID metadata documents: the URL rules, the document read into a
//! client, and the engine's use of [`ClientDocuments`] (the store and the client cache
//! are never asked for a URL id; grants get their anchor row).

use crate::audit::Caller;
use crate::authority::ClientCredentials;
use crate::authorize::{AuthorizeError, AuthorizeParams, Decision, SignedIn};
use crate::cimd::*;
use crate::client::{AuthMethod, Client, GrantType};
use crate::error::{ErrorCode, OAuthError};
use crate::grant::tests::fixture;
use crate::grant::TokenRequest;
use crate::secret::Secret;
use crate::store::ClientStore;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ID: &str = "https://app.example.com/oauth/client.json";
const CB: &str = "https://app.example.com/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn policy() -> DocumentPolicy {
    DocumentPolicy {
        allow_loopback: false,
        scopes: ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec(),
    }
}

fn document(json: serde_json::Value) -> ClientMetadataDocument {
    serde_json::from_value(json).expect("document")
}

fn read(json: serde_json::Value) -> Result<Client, DocumentError> {
    client_from_document(ID, document(json), &policy(), 100)
}

#[test]
fn client_id_url_rules() {
    for id in [
        ID,
        "https://app.example.com/",
        "https://app.example.com:8443/c",
        "https://app.example.com/a%2fb",
        "https://app.example.com/...",
        "https://app.example.com/.well-known/client",
        "https://[2001:db8::1]/c",
    ] {
        assert_eq!(check_client_id_url(id, false), Ok(()), "{id}");
    }
    for (id, words) in [
        ("http://app.example.com/c", "https"),
        ("ftp://app.example.com/c", "https"),
        ("https://app.example.com", "path"),
        ("https://app.example.com/c?x=1", "query"),
        ("https://app.example.com/c?", "query"),
        ("https://app.example.com/c#top", "fragment"),
        ("https://app.example.com/c#", "fragment"),
        ("https://app.example.com/./c", ". or .."),
        ("https://app.example.com/a/../c", ". or .."),
        ("https://app.example.com/a/..", ". or .."),
        ("https://app.example.com/a/%2e%2e/c", ". or .."),
        ("https://app.example.com/a/.%2E/c", ". or .."),
        ("https://app.example.com/%2e/c", ". or .."),
        ("https://app.example.com/a\\..\\c", "backslash"),
        ("https://user@app.example.com/c", "user information"),
        ("https://user:pw@app.example.com/c", "user information"),
        ("https:///c", "host"),
        ("https://:443/c", "host"),
        ("https://app.example.com/a b", "printable"),
        ("https://app.example.com/caf\u{e9}", "printable"),
        ("https://app.example.com/c\n", "printable"),
        ("http://127.0.0.1:9/c", "https"),
    ] {
        let reason = check_client_id_url(id, false).expect_err(id);
        assert!(reason.contains(words), "{id}: {reason}");
    }
    let long = format!("https://app.example.com/{}", "a".repeat(2000));
    assert!(check_client_id_url(&long, false).is_err());
    // Loopback over http: only with the setting, only the loopback IP literals.
    for id in [
        "http://127.0.0.1:9/c",
        "http://127.0.0.1/c",
        "http://[::1]:9/c",
    ] {
        assert_eq!(check_client_id_url(id, true), Ok(()), "{id}");
    }
    for id in [
        "http://localhost:9/c",
        "http://127.0.0.2:9/c",
        "http://127.0.0.1.evil.example/c",
        "http://127.0.0.1:9@evil.example/c",
        "http://[::1]evil/c",
        "http://10.0.0.1/c",
    ] {
        assert!(check_client_id_url(id, true).is_err(), "{id}");
    }
}

#[test]
fn a_minimal_document_makes_a_public_third_party_client() {
    let client = read(serde_json::json!({
        "client_id": ID,
        "redirect_uris": [CB],
        "unknown_member": {"is": "ignored"},
    }))
    .expect("client");
    assert_eq!(client.id, ID);
    assert_eq!(client.name, "app.example.com", "no client_name: the host");
    assert_eq!(client.redirect_uris, vec![CB.to_string()]);
    assert_eq!(client.grant_types, vec![GrantType::AuthorizationCode]);
    assert_eq!(client.token_endpoint_auth_method, AuthMethod::None);
    assert!(!client.is_first_party);
    assert!(!client.is_confidential());
    assert!(client.audiences.is_empty());
    assert_eq!(
        client.scopes,
        vec!["email", "offline_access", "openid", "profile"]
    );
    assert_eq!(
        client.metadata_document_host().as_deref(),
        Some("app.example.com")
    );
    assert!(!client.redirects_only_to_this_computer());
    assert!(!client.dpop_bound_access_tokens);
    // RFC 9449 §5.2 in a document: every token of the client must be DPoP-bound.
    let bound = read(serde_json::json!({
        "client_id": ID,
        "redirect_uris": [CB],
        "dpop_bound_access_tokens": true,
    }))
    .expect("client");
    assert!(bound.dpop_bound_access_tokens);
}

#[test]
fn scopes_names_and_grants_follow_the_document_within_the_servers_rules() {
    let client = read(serde_json::json!({
        "client_id": ID,
        "client_name": "  Photo Printer  ",
        "client_uri": "https://app.example.com",
        "logo_uri": "https://app.example.com/logo.png",
        "redirect_uris": [CB, CB, "http://127.0.0.1:7000/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid email admin offline_access",
    }))
    .expect("client");
    assert_eq!(client.name, "Photo Printer");
    assert_eq!(client.redirect_uris.len(), 2, "duplicates dropped");
    assert_eq!(
        client.grant_types,
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(client.scopes, vec!["email", "offline_access", "openid"]);
}

#[test]
fn documents_that_are_refused() {
    let base = || {
        serde_json::json!({
            "client_id": ID,
            "redirect_uris": [CB],
        })
    };
    let with = |member: &str, value: serde_json::Value| {
        let mut doc = base();
        doc[member] = value;
        read(doc).expect_err(member)
    };
    let without_id = {
        let mut doc = base();
        doc.as_object_mut().expect("object").remove("client_id");
        read(doc).expect_err("no client_id")
    };
    assert_eq!(without_id, DocumentError::ClientIdMissing);
    for other in [
        "https://app.example.com/oauth/client.json/",
        "https://APP.example.com/oauth/client.json",
        "https://app.example.com:443/oauth/client.json",
        "https://evil.example/oauth/client.json",
    ] {
        assert_eq!(
            with("client_id", other.into()),
            DocumentError::ClientIdMismatch,
            "{other}"
        );
    }
    assert_eq!(
        with("redirect_uris", serde_json::json!([])),
        DocumentError::RedirectUrisMissing
    );
    let no_redirects = {
        let mut doc = base();
        doc.as_object_mut().expect("object").remove("redirect_uris");
        read(doc).expect_err("no redirect_uris")
    };
    assert_eq!(no_redirects, DocumentError::RedirectUrisMissing);
    for bad in [
        "http://app.example.com/cb",
        "https://app.example.com/cb#x",
        "javascript:alert(1)",
        "http://localhost:9/cb",
    ] {
        assert!(
            matches!(
                with("redirect_uris", serde_json::json!([CB, bad])),
                DocumentError::Uri { index: 1, .. }
            ),
            "{bad}"
        );
    }
    let many: Vec<String> = (0..21).map(|n| format!("{CB}{n}")).collect();
    assert_eq!(
        with("redirect_uris", serde_json::json!(many)),
        DocumentError::TooManyUris("redirect_uris")
    );
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ] {
        let error = with("token_endpoint_auth_method", method.into());
        assert_eq!(error, DocumentError::SecretAuthMethod(method));
        assert!(error.to_string().contains("shared secret"), "{error}");
    }
    assert_eq!(
        with("token_endpoint_auth_method", "tls_client_auth".into()),
        DocumentError::UnsupportedAuthMethod
    );
    for member in ["client_secret", "client_secret_expires_at"] {
        assert_eq!(with(member, "s3cret".into()), DocumentError::SecretPresent);
        assert_eq!(
            with(member, serde_json::Value::Null),
            DocumentError::SecretPresent,
            "{member}: null counts too"
        );
    }
    for grants in [
        serde_json::json!(["client_credentials"]),
        serde_json::json!(["authorization_code", "password"]),
        serde_json::json!(["refresh_token"]),
        serde_json::json!(["implicit"]),
    ] {
        assert_eq!(with("grant_types", grants), DocumentError::GrantTypes);
    }
    assert_eq!(
        with("response_types", serde_json::json!(["token"])),
        DocumentError::ResponseTypes
    );
    assert!(matches!(
        with("scope", "openid \"x\"".into()),
        DocumentError::Scope(_)
    ));
    assert_eq!(with("client_name", "".into()), DocumentError::ClientName);
    assert_eq!(
        with("client_name", "a\u{1b}[31m".into()),
        DocumentError::ClientName
    );
    assert_eq!(
        with("client_name", "x".repeat(201).into()),
        DocumentError::ClientName
    );
    assert_eq!(
        with("client_uri", "javascript:alert(1)".into()),
        DocumentError::WebUrl("client_uri")
    );
    assert_eq!(
        with("logo_uri", "http://app.example.com/l.png".into()),
        DocumentError::WebUrl("logo_uri")
    );
    // A public client declares no keys.
    assert_eq!(
        with("jwks_uri", "https://app.example.com/jwks.json".into()),
        DocumentError::KeysNotExpected
    );
    // A member of the wrong type: the document does not read at all.
    assert!(serde_json::from_value::<ClientMetadataDocument>(
        serde_json::json!({"client_id": ID, "redirect_uris": CB})
    )
    .is_err());
    // The error a request gets names the problem, not the document's words.
    let error = with("client_id", "https://evil.example/<script>".into()).to_oauth();
    assert_eq!(error.code, ErrorCode::InvalidClient);
    assert!(!error.description.contains("evil"), "{}", error.description);
}

#[test]
fn private_key_jwt_documents_carry_their_public_keys() {
    let key = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let with_keys = read(serde_json::json!({
        "client_id": ID,
        "redirect_uris": [CB],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key]},
    }))
    .expect("client");
    assert_eq!(
        with_keys.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
    assert!(with_keys.is_confidential());
    assert!(with_keys
        .jwks
        .as_deref()
        .is_some_and(|j| j.contains("P-256")));
    let with_uri = read(serde_json::json!({
        "client_id": ID,
        "redirect_uris": [CB],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": "https://app.example.com/jwks.json",
    }))
    .expect("client");
    assert_eq!(
        with_uri.jwks_uri.as_deref(),
        Some("https://app.example.com/jwks.json")
    );
    let refused = |extra: serde_json::Value| {
        let mut doc = serde_json::json!({
            "client_id": ID,
            "redirect_uris": [CB],
            "token_endpoint_auth_method": "private_key_jwt",
        });
        for (name, value) in extra.as_object().expect("object") {
            doc[name] = value.clone();
        }
        read(doc).expect_err("refused")
    };
    assert_eq!(refused(serde_json::json!({})), DocumentError::KeysRequired);
    assert_eq!(
        refused(
            serde_json::json!({"jwks": {"keys": [key]}, "jwks_uri": "https://app.example.com/k"})
        ),
        DocumentError::KeysNotExpected
    );
    let mut private = key.clone();
    private["d"] = "private part".into();
    assert!(matches!(
        refused(serde_json::json!({"jwks": {"keys": [private]}})),
        DocumentError::Jwks(_)
    ));
    assert!(matches!(
        refused(serde_json::json!({"jwks_uri": "http://127.0.0.1:9/jwks"})),
        DocumentError::JwksUri(_)
    ));
}

#[test]
fn loopback_redirects_mean_an_app_on_this_computer() {
    let local = |uris: serde_json::Value| {
        read(serde_json::json!({"client_id": ID, "redirect_uris": uris}))
            .expect("client")
            .redirects_only_to_this_computer()
    };
    assert!(local(serde_json::json!([
        "http://127.0.0.1:9/cb",
        "http://[::1]/cb"
    ])));
    assert!(!local(serde_json::json!(["http://127.0.0.1:9/cb", CB])));
    assert!(!local(serde_json::json!(["com.example.app:/cb"])));
    assert_eq!(
        document_host("http://127.0.0.1:9123/c").as_deref(),
        Some("127.0.0.1:9123")
    );
    assert_eq!(
        document_host("https://xn--bcher-kva.example/c").as_deref(),
        Some("xn--bcher-kva.example")
    );
    assert_eq!(document_host("abc123"), None);
}

/// Documents served from memory, counting the look-ups.
#[derive(Default)]
struct Documents {
    served: Mutex<HashMap<String, serde_json::Value>>,
    lookups: AtomicUsize,
}

#[async_trait]
impl ClientDocuments for Documents {
    async fn fetch(&self, client_id: &str) -> Result<Arc<Client>, OAuthError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let json = self
            .served
            .lock()
            .expect("lock")
            .get(client_id)
            .cloned()
            .ok_or_else(|| OAuthError::invalid_client("the document could not be fetched"))?;
        let document = serde_json::from_value(json).map_err(|_| OAuthError::invalid_client("x"))?;
        client_from_document(client_id, document, &policy(), 0)
            .map(Arc::new)
            .map_err(|e| e.to_oauth())
    }
}

fn params(client_id: &str) -> AuthorizeParams {
    AuthorizeParams {
        client_id: Some(client_id.into()),
        redirect_uri: Some(CB.into()),
        response_type: Some("code".into()),
        scope: Some("openid offline_access".into()),
        state: Some("st".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn without_documents_a_url_id_is_an_unknown_client() {
    let f = fixture().await;
    assert_eq!(f.authority.find_client(ID).await, Ok(None));
    assert!(matches!(
        f.authority.validate_authorization(params(ID)).await,
        Err(AuthorizeError::Fatal(_))
    ));
}

#[tokio::test]
async fn a_document_client_signs_in_through_consent_to_tokens() {
    let f = fixture().await;
    let documents = Arc::new(Documents::default());
    documents.served.lock().expect("lock").insert(
        ID.into(),
        serde_json::json!({
            "client_id": ID,
            "client_name": "Photo Printer",
            "redirect_uris": [CB],
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    );
    let store = f.store.clone();
    let a = f.authority.with_client_documents(documents.clone());
    // A row in the store under the URL id is never read for the client.
    let (mut impostor, _) = crate::client::ClientRegistration {
        name: "impostor".into(),
        redirect_uris: vec!["https://evil.example/cb".into()],
        is_first_party: true,
        ..Default::default()
    }
    .build(0)
    .expect("client");
    impostor.id = "https://other.example/client".into();
    store.create_client(&impostor).await.expect("row");
    assert!(matches!(
        a.find_client("https://other.example/client").await,
        Err(e) if e.code == ErrorCode::InvalidClient
    ));

    // PKCE is required of a document client like any other.
    let mut no_pkce = params(ID);
    no_pkce.code_challenge = None;
    no_pkce.code_challenge_method = None;
    assert!(matches!(
        a.validate_authorization(no_pkce).await,
        Err(AuthorizeError::Redirect { error, .. }) if error.description.contains("PKCE")
    ));
    // A redirect URI the document does not list: an error page, never a redirect.
    let mut elsewhere = params(ID);
    elsewhere.redirect_uri = Some("https://evil.example/cb".into());
    assert!(matches!(
        a.validate_authorization(elsewhere).await,
        Err(AuthorizeError::Fatal(_))
    ));

    let (client, request) = a.validate_authorization(params(ID)).await.expect("valid");
    assert_eq!(client.name, "Photo Printer");
    let session = SignedIn {
        user_id: f.user.id.clone(),
        auth_time: 1_700_000_000,
        session_epoch: 0,
        session_id: None,
        methods: Vec::new(),
    };
    assert_eq!(
        a.decide(&request, Some(&session), true, false).await,
        Ok(Decision::Consent),
        "never first-party"
    );
    assert!(
        store.find_client(ID).await.expect("read").is_none(),
        "no row yet"
    );
    a.record_consent(&f.user.id, &request)
        .await
        .expect("consent");
    let row = store
        .find_client(ID)
        .await
        .expect("read")
        .expect("anchor row");
    assert_eq!(row.name, "Photo Printer");
    let Ok(Decision::Issue { user, auth }) = a.decide(&request, Some(&session), false, false).await
    else {
        panic!("issue");
    };
    let code = a.issue_code(&request, &user, &auth).await.expect("code");
    let creds = ClientCredentials {
        client_id: ID.into(),
        secret: None,
        assertion: None,
    };
    let tokens = a
        .token(
            &creds,
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri: Some(CB.into()),
                code_verifier: Some(Secret::new(VERIFIER)),
                resources: vec![],
            },
            &Caller::anonymous(None),
        )
        .await
        .expect("tokens");
    assert!(tokens.refresh_token.is_some());
    // A secret is refused: the client is public.
    let with_secret = ClientCredentials {
        client_id: ID.into(),
        secret: Some(Secret::new("guess")),
        assertion: None,
    };
    assert_eq!(
        a.authenticate_client(&with_secret)
            .await
            .expect_err("public")
            .code,
        ErrorCode::InvalidClient
    );
    // The document changes: the row follows at the next grant.
    documents.served.lock().expect("lock").insert(
        ID.into(),
        serde_json::json!({
            "client_id": ID,
            "client_name": "Photo Printer 2",
            "redirect_uris": [CB],
        }),
    );
    a.record_consent(&f.user.id, &request)
        .await
        .expect("consent");
    let row = store.find_client(ID).await.expect("read").expect("row");
    assert_eq!(row.name, "Photo Printer 2");
    // The document is gone: so are the client and its access tokens.
    documents.served.lock().expect("lock").clear();
    let claims = a.verify_access_token(&tokens.access_token).expect("signed");
    assert_eq!(a.is_access_token_live(&claims).await, Ok(false));
    assert!(documents.lookups.load(Ordering::SeqCst) > 3);
}
