//! Running the real `sigil` binary: CLI commands and a server on a free loopback port.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SIGIL: &str = env!("CARGO_BIN_EXE_sigil");
pub const ADMIN_PASSWORD: &str = "e2e admin password 0f9a";

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

impl Setup {
    pub fn new(database_url: &str, dir: tempfile::TempDir) -> Self {
        Self {
            dir,
            database_url: database_url.to_string(),
        }
    }

    pub fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sigil.log")
    }
    /// Where the test's servers and commands write mail (`.eml` files) without SMTP.
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Runs a `sigil` command with the test's database, keys and cheap argon2 parameters.
    pub fn sigil(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new(SIGIL)
            .args(["--database-url", &self.database_url, "--keys-dir"])
            .arg(self.keys())
            .args(args)
            .env("SIGIL_ARGON2_MEMORY_KIB", "256")
            .env("SIGIL_ARGON2_ITERATIONS", "1")
            .env("SIGIL_MAIL_DIR", self.mail_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sigil");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "sigil {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(setup: &Setup) -> Self {
        Self::start_with(setup, &[])
    }

    /// Starts `sigil serve` with extra global options (e.g. `--log-format json`).
    pub fn start_with(setup: &Setup, global: &[&str]) -> Self {
        Self::start_on(setup, global, &[], free_port(), &[])
    }

    /// Starts `sigil serve` with global options, `serve` options, a given port and extra
    /// environment variables (which override the cheap argon2 defaults).
    pub fn start_on(
        setup: &Setup,
        global: &[&str],
        serve: &[&str],
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_wrapped(setup, global, serve, port, env, &[])
    }

    /// Starts `sigil serve` with at most `open_files` file descriptors (`prlimit`), as a
    /// server with a low `ulimit -n` runs.
    pub fn start_with_open_file_limit(setup: &Setup, serve: &[&str], open_files: u64) -> Self {
        let limit = format!("--nofile={open_files}:{open_files}");
        Self::start_wrapped(
            setup,
            &[],
            serve,
            free_port(),
            &[],
            &["prlimit", &limit, "--"],
        )
    }

    /// `start_on`, with the binary run through a launcher (`launcher` then `sigil …`).
    fn start_wrapped(
        setup: &Setup,
        global: &[&str],
        serve: &[&str],
        port: u16,
        env: &[(&str, &str)],
        launcher: &[&str],
    ) -> Self {
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(setup.log_path())
            .expect("log file");
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(SIGIL);
                command
            }
            None => Command::new(SIGIL),
        };
        let child = command
            .args(["--database-url", &setup.database_url, "--keys-dir"])
            .arg(setup.keys())
            .args(global)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            // Replicas behind one name share an issuer: a test may give its own.
            .args(if serve.contains(&"--issuer") {
                vec![]
            } else {
                vec!["--issuer", base.as_str()]
            })
            .args(["--keys-poll-interval", "200ms", "--client-cache-ttl", "0s"])
            .args(serve)
            .env("SIGIL_ARGON2_MEMORY_KIB", "256")
            .env("SIGIL_ARGON2_ITERATIONS", "1")
            .env("SIGIL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SIGIL_MAIL_DIR", setup.mail_dir())
            .env("RUST_LOG", "trace")
            .envs(env.iter().copied())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sigil serve");
        let server = Self { child, base };
        server.wait_ready();
        server
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = http_status(&format!("{}/readyz", self.base)) {
                if r == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sigil did not become ready");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        self.wait_for_clean_exit();
    }

    /// Waits (up to 10 s) for the process to exit after SIGTERM, and checks it exited 0.
    pub fn wait_for_clean_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "sigil exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "sigil did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// SIGKILL: no shutdown, no flush, as in a crash.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }
}

/// A child process killed (and reaped) when dropped.
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `todo-api` binary beside `sigil` in the target directory (`cargo test --workspace`
/// builds it; run alone, this builds it first).
pub fn todo_api_binary() -> PathBuf {
    let path = std::path::Path::new(SIGIL).with_file_name("todo-api");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "todo-api", "--bin", "todo-api"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building todo-api failed");
    }
    path
}

/// The `todo-web` binary beside `sigil` in the target directory (`cargo test --workspace`
/// builds it; run alone, this builds it first).
pub fn todo_web_binary() -> PathBuf {
    let path = std::path::Path::new(SIGIL).with_file_name("todo-web");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "todo-web", "--bin", "todo-web"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building todo-web failed");
    }
    path
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking GET for readiness polling, without a runtime.
pub fn http_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    // Only the status line is needed; the peer may keep the connection open.
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let response = String::from_utf8_lossy(&response);
    Ok(response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}
