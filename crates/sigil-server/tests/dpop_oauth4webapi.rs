//! DPoP (RFC 9449) with a client library nobody here wrote: panva's `oauth4webapi` (npm)
//! makes every proof, against the real binary started with `--dpop-nonce`, so each of the
//! library's keys first meets `use_dpop_nonce` and retries with the nonce Sigil gave.
//! It runs `client_credentials`, the code flow with `dpop_jkt` and PKCE, userinfo with the
//! DPoP scheme, and a refresh; this test plays the user's browser and checks that every
//! token is bound to the key the library holds (`cnf.jkt`).
//!
//! Without node and npm the test is skipped with a notice, except under CI=true.

mod common;

use common::flows::sign_in_first_party;
use common::process::{free_port, Server, Setup};
use common::{jwt_claims, TestDb};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The library, pinned to its major version.
const LIBRARY: &str = "oauth4webapi@3";
const LIBRARY_PACKAGE_JSON: &str = "node_modules/oauth4webapi/package.json";
const FLOW: &str = include_str!("dpop_client/oauth4webapi_flow.mjs");
const PASSWORD: &str = "dpop library correct horse";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const PATIENCE: Duration = Duration::from_secs(30);

/// The callback URL the browser reaches once carol has signed in from `authorize_url`
/// (a first-party app: no consent page).
async fn sign_in(base: &str, authorize_url: &str) -> String {
    sign_in_first_party(base, authorize_url, CALLBACK, "carol", PASSWORD).await
}

/// The library's next JSON line, within the test's patience.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Option<String> {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the library answered in time")
        .expect("read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_makes_the_proofs_for_every_grant_userinfo_and_nonces() {
    let Some(dir) = common::npm::install(
        "oauth4webapi",
        LIBRARY,
        LIBRARY_PACKAGE_JSON,
        "the oauth4webapi DPoP test",
    ) else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], &["--dpop-nonce"], free_port(), &[]);
    setup.sigil(
        &["user", "add", "--username", "carol", "--password-stdin"],
        Some(PASSWORD),
    );
    let add = |args: &[&str]| -> Value {
        let mut all = vec!["client", "add", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&setup.sigil(&all, None)).expect("json")
    };
    let app = add(&[
        "--name",
        "Library app",
        "--public",
        "--first-party",
        "--redirect-uri",
        CALLBACK,
        "--grant-types",
        "authorization_code,refresh_token",
        "--scopes",
        "openid,offline_access",
    ]);
    // The service must use DPoP: the library's proof is the only way to a token.
    let service = add(&[
        "--name",
        "Library service",
        "--grant-types",
        "client_credentials",
        "--audience",
        "https://api.example.com",
        "--require-dpop",
    ]);
    let text = |v: &Value, k: &str| v[k].as_str().expect(k).to_string();

    let script = dir.join(format!(
        "dpop-flow-{}.mjs",
        sigil_core::secret::random_token(6)
    ));
    std::fs::write(&script, FLOW).expect("script");
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .args([
            server.base.clone(),
            text(&app, "client_id"),
            text(&service, "client_id"),
            text(&service, "client_secret"),
            CALLBACK.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut stdin = node.stdin.take().expect("stdin");
    let mut lines = BufReader::new(node.stdout.take().expect("stdout")).lines();
    let mut stderr = node.stderr.take().expect("stderr");
    let Some(first) = next_line(&mut lines).await else {
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        panic!("the library's flow ended early: {err}");
    };
    let first: Value = serde_json::from_str(&first).expect("json line");
    let authorize = first["authorize"].as_str().expect("an authorization URL");
    assert!(authorize.contains("dpop_jkt="), "{authorize}");
    let reached = sign_in(&server.base, authorize).await;
    stdin
        .write_all(format!("{reached}\n").as_bytes())
        .await
        .expect("write");
    let Some(last) = next_line(&mut lines).await else {
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        panic!("the library's flow failed: {err}");
    };
    let result = serde_json::from_str::<Value>(&last).expect("json line")["result"].clone();

    assert_eq!(
        result["discovery_algs"],
        serde_json::json!(["ES256", "RS256", "PS256", "EdDSA"])
    );
    // Each of the two keys met use_dpop_nonce once and retried with Sigil's nonce.
    assert_eq!(result["nonce_retries"], 2, "{result}");
    // oauth4webapi lower-cases token_type.
    for (name, jkt) in [
        ("client_credentials", &result["client_credentials"]["jkt"]),
        ("code", &result["code"]["jkt"]),
        ("refresh", &result["code"]["jkt"]),
    ] {
        let grant = &result[name];
        assert_eq!(grant["token_type"], "dpop", "{name}: {result}");
        let token = grant["access_token"].as_str().expect("token");
        assert_eq!(&jwt_claims(token)["cnf"]["jkt"], jkt, "{name}");
    }
    assert_ne!(
        result["client_credentials"]["jkt"], result["code"]["jkt"],
        "two keys"
    );
    assert!(result["userinfo"]["sub"].is_string(), "{result}");
}
