//! End to end with the real binaries: `sigil` issues tokens, `todo-api` accepts them
//! offline; per-user isolation; a key rotation reaches the running `todo-api` without a
//! restart; with `sigil` stopped, `todo-api` still accepts valid tokens. A client that knows
//! only the API's URL finds Sigil through the 401 and the RFC 9728 metadata.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TODO_API: &str = env!("CARGO_BIN_EXE_todo-api");
const PASSWORD: &str = "todo e2e correct horse";

/// The `sigil` binary sits beside `todo-api` in the target directory; `cargo test
/// --workspace` builds it. Run alone, this test builds it first.
fn sigil_binary() -> PathBuf {
    let path = Path::new(TODO_API).with_file_name("sigil");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "sigil-server", "--bin", "sigil"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building sigil failed");
    }
    path
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

struct Sigil {
    bin: PathBuf,
    dir: PathBuf,
}

impl Sigil {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("--database-url")
            .arg(format!("sqlite://{}/sigil.db", self.dir.display()))
            .arg("--keys-dir")
            .arg(self.dir.join("keys"))
            .env("SIGIL_ARGON2_MEMORY_KIB", "256")
            .env("SIGIL_ARGON2_ITERATIONS", "1")
            .env("SIGIL_JWKS_MAX_AGE", "2s");
        command
    }
    fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sigil");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "sigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(url)
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn password_token(
    http: &reqwest::Client,
    issuer: &str,
    client: &Value,
    user: &str,
) -> String {
    let response: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(
            client["client_id"].as_str().expect("id"),
            client["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
            ("scope", "todos:read todos:write"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {response}"))
        .to_string()
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("b64");
    serde_json::from_slice::<Value>(&bytes).expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_string()
}

/// What an MCP client does: the 401 names the metadata, the metadata names Sigil, Sigil's
/// discovery names the token endpoint, and a token asked for with `resource` (RFC 8707) set
/// to the metadata's `resource` is accepted.
async fn discover_sigil_from_a_401(
    http: &reqwest::Client,
    api: &str,
    resource: &str,
    issuer: &str,
    client: &Value,
) {
    let refused = http
        .get(format!("{api}/api/todos"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    let metadata_url = format!("{resource}/.well-known/oauth-protected-resource");
    let attributes = format!("scope=\"todos:read\", resource_metadata=\"{metadata_url}\"");
    assert_eq!(
        challenge,
        format!("Bearer {attributes}, DPoP algs=\"ES256 RS256 PS256 EdDSA\", {attributes}")
    );
    // The resource is this API's own address here, so the URL can be fetched as it is.
    let metadata: Value = http
        .get(&metadata_url)
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(metadata["resource"], resource, "RFC 9728 §3.3");
    assert_eq!(metadata["authorization_servers"], json!([issuer]));
    assert_eq!(
        metadata["scopes_supported"],
        json!(["todos:read", "todos:write"])
    );
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let token: Value = http
        .post(
            discovery["token_endpoint"]
                .as_str()
                .expect("token_endpoint"),
        )
        .basic_auth(
            client["client_id"].as_str().expect("id"),
            client["client_secret"].as_str(),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "todos:read"),
            ("resource", resource),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {token}"));
    let accepted = http
        .get(format!("{api}/api/todos"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(accepted.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_sigil_work_offline_in_todo_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let sigil = Sigil {
        bin: sigil_binary(),
        dir: tmp.path().to_path_buf(),
    };
    let sigil_port = free_port();
    let issuer = format!("http://127.0.0.1:{sigil_port}");
    let todo_port = free_port();
    let audience = format!("http://127.0.0.1:{todo_port}");
    sigil.run(&["migrate"], None);
    let sigil_process = Proc(
        sigil
            .command()
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{sigil_port}"),
                "--issuer",
                &issuer,
                "--keys-poll-interval",
                "200ms",
            ])
            .env("SIGIL_ADMIN_PASSWORD", "todo e2e admin password")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sigil serve"),
    );
    wait_ready(&format!("{issuer}/readyz")).await;
    for user in ["alice", "bob"] {
        sigil.run(
            &["user", "add", "--username", user, "--password-stdin"],
            Some(PASSWORD),
        );
    }
    let client: Value = serde_json::from_str(&sigil.run(
        &[
            "client",
            "add",
            "--name",
            "todo app",
            "--grant-types",
            "password,client_credentials",
            "--scopes",
            "todos:read,todos:write",
            "--audience",
            &audience,
            "--json",
        ],
        None,
    ))
    .expect("json");

    let _todo = Proc(
        Command::new(TODO_API)
            .args([
                "--issuer",
                &issuer,
                "--audience",
                &audience,
                "--bind",
                &format!("127.0.0.1:{todo_port}"),
            ])
            .arg("--database-url")
            .arg(format!("sqlite://{}/todo.db", tmp.path().display()))
            .args(["--jwks-refetch-cooldown-secs", "1"])
            .env("RUST_LOG", "sigil_verify=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("todo.log")).expect("log"))
            .spawn()
            .expect("todo-api"),
    );
    let api = format!("http://127.0.0.1:{todo_port}");
    wait_ready(&format!("{api}/healthz")).await;

    let http = reqwest::Client::new();
    discover_sigil_from_a_401(&http, &api, &audience, &issuer, &client).await;
    let alice = password_token(&http, &issuer, &client, "alice").await;
    let bob = password_token(&http, &issuer, &client, "bob").await;
    let mut ids = Vec::new();
    for title in ["write the docs", "ship it"] {
        let response = http
            .post(format!("{api}/api/todos"))
            .bearer_auth(&alice)
            .json(&json!({ "title": title }))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        ids.push(
            response.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    let list = |token: String| {
        let http = http.clone();
        let api = api.clone();
        async move {
            let response = http
                .get(format!("{api}/api/todos"))
                .bearer_auth(token)
                .send()
                .await
                .expect("list");
            let status = response.status().as_u16();
            if status != 200 {
                eprintln!(
                    "todo-api answered {status}: {:?}",
                    response.headers().get("www-authenticate")
                );
            }
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, todos) = list(alice.clone()).await;
    assert_eq!((status, todos.as_array().map(Vec::len)), (200, Some(2)));
    let (status, todos) = list(bob.clone()).await;
    assert_eq!(
        (status, todos),
        (200, json!([])),
        "bob sees none of alice's todos"
    );
    let response = http
        .get(format!("{api}/api/todos/{}", ids[0]))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);

    // Rotation: after the activation delay, tokens signed by the new key validate in the
    // running todo-api, which refetches the JWKS on the unknown kid.
    let old_kid = kid(&alice);
    sigil.run(&["keys", "rotate"], None);
    let deadline = Instant::now() + Duration::from_secs(15);
    let rotated = loop {
        let token = password_token(&http, &issuer, &client, "alice").await;
        if kid(&token) != old_kid {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never started signing"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Within the verifier's refetch cool-down (1 s here) an unknown kid is refused; after
    // it, one refetch picks up the new key.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, todos) = list(rotated.clone()).await;
        if status == 200 {
            assert_eq!(todos.as_array().map(Vec::len), Some(2));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new-key tokens never validated: {}",
            std::fs::read_to_string(tmp.path().join("todo.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Sigil goes away: todo-api keeps validating, offline.
    drop(sigil_process);
    assert!(
        reqwest::get(format!("{issuer}/healthz")).await.is_err(),
        "sigil is down"
    );
    for token in [alice, rotated, bob] {
        let (status, _) = list(token).await;
        assert_eq!(status, 200);
    }
}
