//! A real MCP client: the official TypeScript SDK (`@modelcontextprotocol/sdk`, npm) runs
//! its OAuth client flow against todo-api (protected by sigil-verify) through Sigil, both
//! real binaries over HTTP: the 401 names the resource metadata (RFC 9728), the SDK reads
//! it and Sigil's metadata (RFC 8414), registers itself (RFC 7591, `--registration open`),
//! sends the user to `/authorize` with PKCE S256 and `resource` (RFC 8707), exchanges the
//! code, calls the API with the token, and refreshes. This test plays the user in the
//! browser (sign-in and consent pages) and checks what each side saw.
//!
//! Without node and npm the test is skipped with a notice, except under CI=true.

mod common;

use common::process::{free_port, http_status, todo_api_binary, Background, Server, Setup};
use common::{hidden, jwt_claims, TestDb};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The SDK, pinned to its major version.
const SDK: &str = "@modelcontextprotocol/sdk@1";
const SDK_PACKAGE_JSON: &str = "node_modules/@modelcontextprotocol/sdk/package.json";
const FLOW: &str = include_str!("mcp/oauth_flow.mjs");
const PASSWORD: &str = "mcp correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const PATIENCE: Duration = Duration::from_secs(30);

fn sdk_dir() -> Option<std::path::PathBuf> {
    static INSTALLED: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| common::npm::install("mcp-sdk", SDK, SDK_PACKAGE_JSON, "the MCP SDK test"))
        .clone()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location on {}", response.status()))
        .to_string()
}

/// Plays the user from an authorization URL to the client's callback: signs in as alice
/// and allows on the consent page, which must name the app as it registered itself.
async fn sign_in_and_allow(base: &str, authorize_url: &str) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client");
    let absolute = |l: String| {
        if l.starts_with('/') {
            format!("{base}{l}")
        } else {
            l
        }
    };
    let mut next = authorize_url.to_string();
    let mut saw_consent = false;
    for _ in 0..8 {
        if !next.starts_with(&format!("{base}/")) {
            assert!(
                saw_consent,
                "a self-registered app always gets the consent page"
            );
            return next;
        }
        let response = browser.get(&next).send().await.expect("get");
        if response.status().is_redirection() {
            next = absolute(location(&response));
            continue;
        }
        let url = response.url().clone();
        let status = response.status();
        let html = response.text().await.expect("html");
        assert_eq!(status, 200, "{url}: {html}");
        let form: Vec<(&str, String)> = match url.path() {
            "/login" => vec![
                ("csrf", hidden(&html, "csrf")),
                ("req", hidden(&html, "req")),
                ("username", "alice".into()),
                ("password", PASSWORD.into()),
            ],
            "/consent" => {
                assert!(html.contains("MCP SDK test client"), "{html}");
                saw_consent = true;
                vec![
                    ("csrf", hidden(&html, "csrf")),
                    ("req", hidden(&html, "req")),
                    ("decision", "allow".into()),
                ]
            }
            other => panic!("unexpected page {other}: {html}"),
        };
        let response = browser
            .post(format!("{base}{}", url.path()))
            .form(&form)
            .send()
            .await
            .expect("post");
        assert!(response.status().is_redirection(), "{}", response.status());
        next = absolute(location(&response));
    }
    panic!("the flow did not reach the client");
}

/// The SDK's next JSON line, within the test's patience.
async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Option<String> {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the SDK answered in time")
        .expect("read")
}

#[tokio::test]
async fn the_mcp_typescript_sdk_registers_signs_in_and_calls_todo_api() {
    let Some(sdk) = sdk_dir() else {
        return;
    };
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_on(&setup, &[], &["--registration", "open"], free_port(), &[]);
    setup.sigil(
        &["user", "add", "--username", "alice", "--password-stdin"],
        Some(PASSWORD),
    );
    let todo_port = free_port();
    let resource = format!("http://127.0.0.1:{todo_port}");
    setup.sigil(
        &[
            "resource",
            "add",
            "--uri",
            &resource,
            "--name",
            "TODO API",
            "--scope",
            "todos:read",
            "--scope",
            "todos:write",
        ],
        None,
    );
    let todo_dir = tempfile::tempdir().expect("tempdir");
    let todo_log_path = todo_dir.path().join("todo.log");
    let todo_log = std::fs::File::create(&todo_log_path).expect("log");
    let _todo = Background(
        std::process::Command::new(todo_api_binary())
            .args(["--issuer", &server.base, "--resource-uri", &resource])
            .args(["--bind", &format!("127.0.0.1:{todo_port}")])
            .arg("--database-url")
            .arg(format!("sqlite://{}/todo.db", todo_dir.path().display()))
            .stdout(Stdio::null())
            .stderr(todo_log)
            .spawn()
            .expect("start todo-api"),
    );
    let deadline = Instant::now() + PATIENCE;
    while http_status(&format!("{resource}/healthz")).unwrap_or(0) != 200 {
        assert!(
            Instant::now() < deadline,
            "todo-api did not start: {}",
            std::fs::read_to_string(&todo_log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The SDK's flow, as a node process talking JSON lines.
    let script = sdk.join(format!(
        "oauth-flow-{}.mjs",
        sigil_core::secret::random_token(6)
    ));
    std::fs::write(&script, FLOW).expect("script");
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .args([&format!("{resource}/api/todos"), CALLBACK])
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
        panic!("the SDK flow ended early: {err}");
    };
    let first: Value = serde_json::from_str(&first).expect("json line");
    let authorize = first["authorize"].as_str().expect("an authorization URL");
    let query: std::collections::HashMap<String, String> = url::Url::parse(authorize)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert!(authorize.starts_with(&format!("{}/authorize?", server.base)));
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["resource"], resource,
        "RFC 8707 resource from RFC 9728"
    );
    assert_eq!(query["redirect_uri"], CALLBACK);

    let callback = sign_in_and_allow(&server.base, authorize).await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    stdin
        .write_all(format!("{callback}\n").as_bytes())
        .await
        .expect("write");
    stdin.flush().await.expect("flush");
    let Some(done) = next_line(&mut lines).await else {
        let mut err = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
        panic!("the SDK flow failed: {err}");
    };
    let done: Value = serde_json::from_str(&done).expect("json line");
    assert_eq!(
        done["done"], true,
        "the SDK asked for a second sign-in instead of finishing: {done}"
    );
    let _ = std::fs::remove_file(&script);

    // What the SDK saw.
    let challenge = done["challenge"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge in {done}"));
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    assert_eq!(
        done["resource_metadata_url"],
        format!("{resource}/.well-known/oauth-protected-resource")
    );
    assert_eq!(
        done["authorization_server"]
            .as_str()
            .map(|s| s.trim_end_matches('/')),
        Some(server.base.as_str())
    );
    let client = &done["client"];
    let client_id = client["client_id"].as_str().expect("registered client id");
    assert_eq!(client["token_endpoint_auth_method"], "none");
    assert_eq!(done["call_status"], 200, "{}", done["call_body"]);
    assert_eq!(done["refreshed"], "AUTHORIZED");
    assert_eq!(done["rotated"], true, "the refresh token rotated");
    assert_eq!(done["second_call_status"], 200);
    assert_eq!(done["has_refresh_token"], true);

    // What Sigil issued: a token for exactly the resource, with its scopes.
    let claims = jwt_claims(done["first_access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], resource);
    assert_eq!(claims["client_id"], client_id);
    let scope = claims["scope"].as_str().expect("scope");
    assert!(scope.split(' ').any(|s| s == "todos:read"), "{scope}");
    // And the client is marked as having registered itself, from the loopback address.
    let shown: Value = serde_json::from_str(&setup.sigil(
        &["client", "show", "--client-id", client_id, "--json"],
        None,
    ))
    .expect("json");
    assert_eq!(shown["self_registered"], true);
    assert_eq!(shown["registered_from"], "127.0.0.1");
    let status = tokio::time::timeout(PATIENCE, node.wait())
        .await
        .expect("node ends")
        .expect("status");
    assert!(status.success());
}
