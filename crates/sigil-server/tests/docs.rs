//! The docs are tested against the code they describe:
//! - docs/quickstart.md runs word for word (its `sh` blocks, with only the ports changed),
//!   against the real `sigil`, `todo-api` and `todo-web` binaries;
//! - docs/configuration.md lists every option of `sigil serve` and the global ones, with
//!   their environment variables and defaults;
//! - every `sigil …` command line written in docs/ parses;
//! - docs/architecture.md names every source file of the server and core crates;
//! - every metric named in docs/ is served at /metrics.
//!   (docs/api.md against the OpenAPI document: tests/http_api.rs.)

mod common;

use clap::{CommandFactory, Parser};
use common::hidden;
use common::process::{free_port, todo_api_binary, todo_web_binary, Background, SIGIL};
use sigil_server::config::Cli;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(repo().join("docs").join(name)).expect("doc")
}

/// The fenced code blocks of a Markdown text with the given info string.
fn blocks(markdown: &str, info: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{info}") => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                out.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    out
}

struct Shell {
    dir: PathBuf,
    sigil_port: u16,
    todo_port: u16,
    todo_api: PathBuf,
    web_port: u16,
    todo_web: PathBuf,
}

impl Shell {
    /// The doc's command with the binaries and ports of this test.
    fn adapt(&self, script: &str) -> String {
        script
            .replace("cargo run -q --release -p sigil-server --", "\"$SIGIL\"")
            .replace("cargo run --release -p sigil-server --", "\"$SIGIL\"")
            .replace("cargo run --release -p todo-api --", "\"$TODO_API\"")
            .replace("cargo run --release -p todo-web --", "\"$TODO_WEB\"")
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", self.sigil_port))
            .replace("127.0.0.1:8090", &format!("127.0.0.1:{}", self.todo_port))
            .replace("127.0.0.1:8091", &format!("127.0.0.1:{}", self.web_port))
    }

    fn command(&self, script: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env("SIGIL", SIGIL)
            .env("TODO_API", &self.todo_api)
            .env("TODO_WEB", &self.todo_web)
            .env("SIGIL_BIND", format!("127.0.0.1:{}", self.sigil_port))
            .env(
                "SIGIL_ISSUER",
                format!("http://127.0.0.1:{}", self.sigil_port),
            )
            .env("TODO_BIND", format!("127.0.0.1:{}", self.todo_port))
            .env("TODO_WEB_BIND", format!("127.0.0.1:{}", self.web_port))
            // Cheap argon2 for the test; the doc's commands use the defaults.
            .env("SIGIL_ARGON2_MEMORY_KIB", "256")
            .env("SIGIL_ARGON2_ITERATIONS", "1")
            .env_remove("SIGIL_ADMIN_PASSWORD")
            .env_remove("SIGIL_DATABASE_URL");
        command
    }

    /// Runs a block's last line as a long-running process (its earlier lines, such as an
    /// `export`, first), with the variables earlier blocks set.
    fn background(&self, script: &str, log: &str) -> Background {
        let log = std::fs::File::create(self.dir.join(log)).expect("log");
        let script = self.adapt(script);
        let lines: Vec<&str> = script.trim().lines().collect();
        let (last, first) = lines.split_last().expect("a command");
        Background(
            self.command(&format!(
                "[ -f vars.sh ] && source vars.sh\n{}\nexec {last}",
                first.join("\n")
            ))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn"),
        )
    }

    /// Runs blocks in one shell, keeping the variables they set in `vars.sh`.
    fn run(&self, script: &str, names: &[String]) -> String {
        let save = if names.is_empty() {
            String::new()
        } else {
            format!(
                "for n in {}; do if [ -n \"${{!n+x}}\" ]; then declare -p \"$n\"; fi; done > vars.sh",
                names.join(" ")
            )
        };
        let full = format!(
            "set -euo pipefail\n[ -f vars.sh ] && source vars.sh\n{}\n{save}\n",
            self.adapt(script)
        );
        let out = self.command(&full).output().expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "quickstart commands failed:\n{full}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::process::http_status(url).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "{url} never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a person does in the browser: sign in, allow, and read the code from the address.
async fn sign_in_in_a_browser(authorize_url: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = authorize_url
        .split("/authorize")
        .next()
        .expect("base")
        .to_string();
    let to_login = http.get(authorize_url).send().await.expect("authorize");
    let location = to_login.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let page = http
        .get(format!("{base}{location}"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let consent = http
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("req", hidden(&page, "req")),
            ("username", "alice".into()),
            ("password", "correct horse battery staple".into()),
        ])
        .send()
        .await
        .expect("sign in");
    let location = consent.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let page = http
        .get(format!("{base}{location}"))
        .send()
        .await
        .expect("consent page")
        .text()
        .await
        .expect("html");
    let back = http
        .post(format!("{base}/consent"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("req", hidden(&page, "req")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .expect("allow");
    let location = back.headers()["location"].to_str().expect("ascii");
    assert!(
        location.starts_with("http://127.0.0.1:3000/callback?"),
        "{location}"
    );
    let url = url::Url::parse(location).expect("url");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_works_word_for_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shell = Shell {
        dir: dir.path().to_path_buf(),
        sigil_port: free_port(),
        todo_port: free_port(),
        todo_api: todo_api_binary(),
        web_port: free_port(),
        todo_web: todo_web_binary(),
    };
    let markdown = doc("quickstart.md");
    let sh = blocks(&markdown, "sh");
    assert_eq!(sh.len(), 11, "the quickstart's command blocks");
    let names: Vec<String> = sh
        .iter()
        .flat_map(|b| b.lines())
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_string()))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    // 1. The server, in its own terminal.
    assert!(sh[0].trim().ends_with("-- serve"));
    let _sigil = shell.background(&sh[0], "sigil.log");
    wait_ready(&format!("http://127.0.0.1:{}/readyz", shell.sigil_port));
    let out = shell.run(&sh[1], &names);
    assert!(out.contains("\"access_token\""), "{out}");
    assert!(out.contains("\"token_type\":\"Bearer\""), "{out}");
    let log = std::fs::read_to_string(dir.path().join("sigil.log")).expect("log");
    assert!(
        log.contains("user name:  admin"),
        "the admin account is printed"
    );

    // 2. Sign-in for an app.
    shell.run(&sh[2], &names);
    let out = shell.run(&sh[3], &names);
    let authorize = out
        .lines()
        .find(|l| l.contains("/authorize?"))
        .expect("the printed link")
        .to_string();
    let code = sign_in_in_a_browser(&authorize).await;
    let exchange = sh[4].replace("paste the code here", &code);
    let out = shell.run(&exchange, &names);
    for field in ["\"access_token\"", "\"id_token\"", "\"refresh_token\""] {
        assert!(out.contains(field), "{field}: {out}");
    }

    // 3. An API that checks tokens on its own.
    let _todo = shell.background(&sh[5], "todo.log");
    wait_ready(&format!("http://127.0.0.1:{}/healthz", shell.todo_port));
    let out = shell.run(&sh[6], &names);
    assert_eq!(out.matches("\"title\":\"try Sigil\"").count(), 2, "{out}");

    // 4. The web app: registered, started, and alice signs in and sees her todo.
    shell.run(&sh[7], &names);
    let _web = shell.background(&sh[8], "todo-web.log");
    let web = format!("http://127.0.0.1:{}", shell.web_port);
    wait_ready(&format!("{web}/healthz"));
    let page = sign_in_to_todo_web(&web, &format!("http://127.0.0.1:{}", shell.sigil_port)).await;
    assert!(page.contains("Your todos"), "{page}");
    assert!(page.contains("try Sigil"), "{page}");

    // 5. Sign-up: the server again, with sign-up open; someone signs up; the mail is a file.
    drop(_sigil);
    let base = format!("http://127.0.0.1:{}", shell.sigil_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::process::http_status(&format!("{base}/readyz")).is_ok() {
        assert!(Instant::now() < deadline, "the first server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sh[9].trim().ends_with("-- serve --sign-up open"));
    let _sigil = shell.background(&sh[9], "sigil-sign-up.log");
    wait_ready(&format!("{base}/readyz"));
    sign_up_in_a_browser(&base).await;
    let mail = shell.dir.join("data/mail");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&mail).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml")))
    }) {
        assert!(Instant::now() < deadline, "no message in data/mail");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = shell.run(&sh[10], &[]);
    assert!(out.contains(".eml"), "{out}");
}

/// What alice does at todo-web: "Sign in with Sigil", her password at Sigil, and back to
/// the app's page (a first-party client: no consent page). Returns that page.
async fn sign_in_to_todo_web(web: &str, sigil: &str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("client");
    let page = http
        .get(format!("{web}/login"))
        .send()
        .await
        .expect("sign-in")
        .text()
        .await
        .expect("html");
    let back = http
        .post(format!("{sigil}/login"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("req", hidden(&page, "req")),
            ("username", "alice".into()),
            ("password", "correct horse battery staple".into()),
        ])
        .send()
        .await
        .expect("sign in");
    assert!(back.url().as_str().starts_with(web), "{}", back.url());
    back.text().await.expect("html")
}

/// What a person does at /signup: fill in the form.
async fn sign_up_in_a_browser(base: &str) {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login")
        .text()
        .await
        .expect("html");
    assert!(login.contains("href=\"/signup\""), "{login}");
    let page = http
        .get(format!("{base}/signup"))
        .send()
        .await
        .expect("sign-up page")
        .text()
        .await
        .expect("html");
    let done = http
        .post(format!("{base}/signup"))
        .form(&[
            ("csrf", hidden(&page, "csrf")),
            ("username", "bob".into()),
            ("email", "bob@example.com".into()),
            ("password", "a pass phrase he picked".into()),
        ])
        .send()
        .await
        .expect("sign up");
    assert_eq!(done.status(), 200);
    assert!(done.text().await.expect("html").contains("Check your mail"));
}

#[test]
fn configuration_md_lists_every_option() {
    let text = doc("configuration.md");
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve");
    for arg in cli.get_arguments().chain(serve.get_arguments()) {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| `--{long}`")))
            .unwrap_or_else(|| panic!("configuration.md has no row for --{long}"));
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                row.contains(&format!("`{env}`")),
                "--{long}: {env} not in {row}"
            );
        }
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            assert!(
                row.contains(&format!("`{default}`")),
                "--{long}: default {default} not in {row}"
            );
        }
    }
}

/// Splits a command line like a shell would, for the simple quoting docs use.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[test]
fn every_sigil_command_in_the_docs_parses() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("docs")).expect("docs") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        // Inline code spans and code-block lines that start with `sigil `.
        let mut candidates: Vec<String> = text
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|span| !span.contains('\n'))
            .map(str::to_string)
            .collect();
        candidates.extend(text.lines().map(|l| l.trim().to_string()));
        for candidate in candidates {
            let line = candidate
                .split(" #")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let line = line
                .split(" | ")
                .next()
                .unwrap_or("")
                .trim_end_matches('\\')
                .trim()
                .to_string();
            // Synopses with placeholders ([--x X], A|B, ...) are not literal commands.
            if !line.starts_with("sigil ")
                || line.contains(['[', ']', '…', '|', '<', '>', '$'])
                || line.contains("...")
            {
                continue;
            }
            let words = split_words(&line);
            if let Err(error) = Cli::try_parse_from(&words) {
                use clap::error::ErrorKind;
                // A synopsis may leave out required values; anything else is a mistake.
                if !matches!(
                    error.kind(),
                    ErrorKind::MissingRequiredArgument
                        | ErrorKind::DisplayHelp
                        | ErrorKind::DisplayVersion
                ) {
                    panic!("{}: `{line}` does not parse: {error}", path.display());
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} commands found");
}

#[test]
fn architecture_md_names_every_source_file() {
    let text = doc("architecture.md");
    let mut missing = Vec::new();
    for krate in ["sigil-core", "sigil-server"] {
        let src = repo().join("crates").join(krate).join("src");
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&src)
                    .expect("prefix")
                    .to_string_lossy()
                    .to_string();
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string();
                if name == "lib.rs" || name.ends_with("_tests.rs") || name == "tests.rs" {
                    continue;
                }
                let parent = relative.rsplit_once('/').map(|(p, _)| format!("{p}/"));
                let named = text.contains(&format!("`{relative}`"))
                    || text.contains(&format!("`{name}`"))
                    || text.contains(&format!("{name}`"))
                    || parent.is_some_and(|p| {
                        text.contains(&format!("`http/{p}`")) || text.contains(&format!("`{p}`"))
                    });
                if !named {
                    missing.push(format!("{krate}/src/{relative}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name {missing:?}"
    );
}

#[tokio::test]
async fn every_metric_in_the_docs_is_served() {
    let app = common::TestApp::start(common::TestDb::sqlite(), &[]).await;
    let metrics = sigil_server::metrics::Metrics::new();
    metrics.attach_mail(app.state.mailer.metrics());
    metrics.attach_logouts(app.state.logouts.metrics());
    let text = metrics.render(&sigil_server::metrics::Gauges {
        sign_in_successes: 0,
        sign_in_failures: 0,
        refresh_reuse_detected: 0,
        password_queue_depth: 0,
        db_connections_open: 0,
        db_connections_idle: 0,
        db_connections_max: 0,
        signing_keys: app.state.authority.keys().current().keys().len(),
    });
    let mut named = BTreeSet::new();
    for page in ["operations.md"] {
        for word in doc(page).split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("sigil_") && word.len() > 6 {
                named.insert(word.to_string());
            }
        }
    }
    assert!(
        named.len() >= 8,
        "operations.md should name the metrics: {named:?}"
    );
    for name in named {
        assert!(
            text.contains(&format!("\n{name}"))
                || text.contains(&format!("# TYPE {name} "))
                || text.contains(&format!("{name}{{")),
            "{name} is documented but not served"
        );
    }
}

#[test]
fn security_md_states_the_limits_the_code_enforces() {
    let text = doc("security.md");
    let claims = [
        format!(
            "{} KiB body limit",
            sigil_server::http::form::MAX_FORM_BYTES / 1024
        ),
        format!(
            "tokens longer than {} KiB refused",
            sigil_core::token::MAX_TOKEN_LEN / 1024
        ),
        format!("codes live {} seconds", sigil_core::authorize::CODE_TTL),
        format!(
            "{} KiB of headers (431)",
            sigil_server::http::MAX_HEADER_BYTES / 1024
        ),
        format!(
            "{} KiB request target (414)",
            sigil_server::http::MAX_URI_BYTES / 1024
        ),
        format!(
            "After\n`--sign-in-free-failures` ({}) failures",
            sigil_core::throttle::ThrottlePolicy::default().account_free_failures
        ),
    ];
    for claim in claims {
        assert!(text.contains(&claim), "security.md should say {claim:?}");
    }
    // The access-token lifetime it names is the default of --access-token-ttl.
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve");
    let ttl = serve
        .get_arguments()
        .find(|a| a.get_long() == Some("access-token-ttl"))
        .and_then(|a| a.get_default_values().first().cloned())
        .expect("default");
    assert_eq!(ttl, "10m");
    assert!(text.contains("10 minutes"));
}
