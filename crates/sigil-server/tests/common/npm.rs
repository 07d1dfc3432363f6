//! npm packages the end-to-end tests drive (oidc-client-ts in the single-page app, the MCP
//! TypeScript SDK), installed once per test process into a cache under the target
//! directory. Without npm a test is skipped with a notice, except under CI=true, where that
//! is a failure.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Whether `program --version` runs.
pub fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `package` (e.g. `oidc-client-ts@3`) installed into `target/tmp/npm-<cache>`, which is
/// returned once `check` (a path inside it) exists; `None` with a notice when npm is
/// missing and CI is not set. Parallel test processes each install into a staging
/// directory of their own, and the first to finish moves it into place.
pub fn install(cache: &str, package: &str, check: &str, what: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("npm-{cache}"));
    if dir.join(check).exists() {
        return Some(dir);
    }
    if !has("npm") || !has("node") {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("node and npm are missing, and CI=true requires {what} (apt-get install nodejs npm)");
        }
        eprintln!("NOTICE: {what} skipped: install nodejs and npm to run it");
        return None;
    }
    let staging = dir.with_extension(format!(
        "{}-{}",
        std::process::id(),
        sigil_core::secret::random_token(6)
    ));
    // npm wants an existing project directory to install into (a fresh clone has none).
    std::fs::create_dir_all(&staging).expect("npm staging directory");
    std::fs::write(
        staging.join("package.json"),
        format!("{{\"name\":\"sigil-test-{cache}\",\"private\":true,\"type\":\"module\"}}\n"),
    )
    .expect("package.json");
    let out = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(&staging)
        .args([package, "--no-audit", "--no-fund", "--loglevel=error"])
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "npm install {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        dir.join(check).exists(),
        "no {check} in the installed {package}"
    );
    Some(dir)
}
