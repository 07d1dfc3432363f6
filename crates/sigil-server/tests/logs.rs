//! Logs: JSON with `--log-format json`, every line written while serving a request
//! carries that request's id (also sent back in `X-Request-Id`), and no secret appears.

mod common;

use common::process::{Server, Setup};
use common::TestDb;
use serde_json::Value;

#[tokio::test]
async fn json_logs_carry_the_request_id_and_no_secrets() {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let client: Value =
        serde_json::from_str(&setup.sigil(&["client", "add", "--name", "Logger", "--json"], None))
            .expect("json");
    let id = client["client_id"].as_str().expect("id");
    let secret = client["client_secret"].as_str().expect("secret");
    let server = Server::start_with(&setup, &["--log-format", "json"]);
    let http = reqwest::Client::new();
    let mut access_tokens = Vec::new();
    for n in 0..3 {
        let response = http
            .post(format!("{}/token", server.base))
            .header("x-request-id", format!("log-test-{n}"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token");
        assert_eq!(
            response.headers()["x-request-id"].to_str().expect("ascii"),
            format!("log-test-{n}"),
            "the id comes back in the response"
        );
        let body: Value = response.json().await.expect("json");
        access_tokens.push(body["access_token"].as_str().expect("token").to_string());
    }
    // Without a usable id from the client, Sigil makes one.
    let response = http
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("healthz");
    let generated = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_ne!(generated, "bad id with spaces");
    assert!(generated.len() >= 12);
    server.stop();

    let log = std::fs::read_to_string(setup.log_path()).expect("log");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    let request_id = |line: &Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s["request_id"].as_str().map(str::to_string))
    };
    let ready = lines
        .iter()
        .position(|l| l["message"] == "sigil is ready")
        .expect("ready line");
    let stopping = lines
        .iter()
        .position(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutting down"))
        })
        .expect("shutdown line");
    let serving = &lines[ready + 1..stopping];
    // Every line names its request, or the background task that wrote it.
    let task = |line: &Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s["task"].as_str().map(str::to_string))
    };
    for line in serving {
        assert!(
            request_id(line).is_some() || task(line).is_some(),
            "neither a request id nor a task: {line}"
        );
    }
    assert!(
        serving.iter().filter(|l| request_id(l).is_some()).count() >= 8,
        "each request logs at least twice"
    );
    for n in 0..3 {
        let mine: Vec<&Value> = serving
            .iter()
            .filter(|l| request_id(l).as_deref() == Some(&format!("log-test-{n}")))
            .collect();
        assert!(mine.iter().any(|l| l["message"] == "token issued"));
        assert!(mine
            .iter()
            .any(|l| l["message"] == "request finished" && l["status"] == 200));
    }
    assert!(serving
        .iter()
        .any(|l| request_id(l).as_deref() == Some(generated.as_str())));
    assert!(!log.contains(secret), "the client secret is in the log");
    for token in &access_tokens {
        assert!(
            !log.contains(token.as_str()),
            "an access token is in the log"
        );
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!log.contains(signature));
    }
}

/// What an attacker puts in a `client_id` to forge a log line of their own.
const FORGED: &str = "2026-01-01T00:00:00.000000Z  INFO request: sigil: FORGED admin signed in";

/// Sends `client_id` values holding a newline, a carriage return, an escape sequence and a
/// line separator followed by a forged line: in a `/token` form body and an `/authorize`
/// query, percent-encoded. Returns the log the server wrote.
async fn log_after_forgery(format: &str) -> String {
    let db = TestDb::sqlite();
    let setup = Setup::new(db.url(), tempfile::tempdir().expect("tempdir"));
    setup.sigil(&["migrate"], None);
    let server = Server::start_with(&setup, &["--log-format", format]);
    let http = reqwest::Client::new();
    for separator in ["\n", "\r\n", "\r", "\u{1b}[2K\r", "\u{2028}", "\u{85}"] {
        let client_id = format!("app{separator}{FORGED}");
        let response = http
            .post(format!("{}/token", server.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", "guess"),
            ])
            .send()
            .await
            .expect("token");
        assert_eq!(response.status(), 401);
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", "http://127.0.0.1:9/cb")
            .finish();
        let response = http
            .get(format!("{}/authorize?{query}", server.base))
            .send()
            .await
            .expect("authorize");
        assert!(response.status().is_client_error());
    }
    server.stop();
    std::fs::read_to_string(setup.log_path()).expect("log")
}

#[tokio::test]
async fn a_client_id_cannot_forge_a_text_log_line() {
    let log = log_after_forgery("text").await;
    let mentions: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert!(
        mentions.len() >= 6,
        "each refused token request is logged with its client: {log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("2026-01-01") && !line.contains("\u{1b}[2K"),
            "a forged line: {line:?}"
        );
    }
    for mention in mentions {
        assert!(
            [
                "app\\n",
                "app\\r",
                "app\\u{1b}",
                "app\\u{2028}",
                "app\\u{85}"
            ]
            .iter()
            .any(|escaped| mention.contains(escaped)),
            "not escaped: {mention:?}"
        );
    }
    for raw in ['\r', '\u{2028}', '\u{85}', '\u{1b}'] {
        assert!(!log.contains(raw), "{raw:?} written raw");
    }
}

#[tokio::test]
async fn a_client_id_cannot_forge_a_json_log_line() {
    let log = log_after_forgery("json").await;
    let mut mentions = 0;
    for line in log.lines().filter(|l| l.contains("FORGED")) {
        assert!(line.starts_with('{'), "a forged line: {line:?}");
        let value: Value = serde_json::from_str(line).expect("every line is one JSON object");
        assert!(value["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("app") && c.ends_with(FORGED)));
        mentions += 1;
    }
    assert!(mentions >= 6, "{log}");
    for raw in ['\r', '\u{1b}'] {
        assert!(!log.contains(raw), "{raw:?} written raw");
    }
}
