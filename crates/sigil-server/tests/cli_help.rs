//! `sigil --help` and every subcommand's help are complete, and start-up errors are one
//! clear line: a bad database URL, an unusable keys directory, a port in use.

mod common;

use clap::CommandFactory;
use common::process::SIGIL;
use sigil_server::config::Cli;
use std::process::Command;

/// Every command and every option explains itself.
#[test]
fn every_command_and_option_has_help() {
    let cli = Cli::command();
    cli.clone().debug_assert();
    fn walk(command: &clap::Command, path: &str, seen: &mut Vec<String>) {
        let about = command
            .get_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        assert!(!about.trim().is_empty(), "`{path}` has no description");
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let long = arg.get_long().unwrap_or(id);
            let self_explanatory = ["username", "client_id", "email", "name"].contains(&id);
            assert!(
                !help.trim().is_empty() || self_explanatory,
                "`{path} --{long}` has no help text"
            );
        }
        for sub in command.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name());
            seen.push(sub_path.clone());
            walk(sub, &sub_path, seen);
        }
    }
    let mut seen = Vec::new();
    walk(&cli, "sigil", &mut seen);
    for expected in [
        "sigil serve",
        "sigil migrate",
        "sigil user add",
        "sigil client add",
        "sigil keys list",
        "sigil keys rotate",
        "sigil keys prune",
        "sigil audit verify",
    ] {
        assert!(seen.iter().any(|s| s == expected), "missing {expected}");
    }
}

/// The real binary prints help for itself and every subcommand, and exits 0.
#[test]
fn help_runs_for_every_subcommand() {
    let cli = Cli::command();
    let mut paths: Vec<Vec<String>> = vec![vec![]];
    for sub in cli.get_subcommands() {
        paths.push(vec![sub.get_name().to_string()]);
        for inner in sub.get_subcommands() {
            paths.push(vec![
                sub.get_name().to_string(),
                inner.get_name().to_string(),
            ]);
        }
    }
    for path in paths {
        let out = Command::new(SIGIL)
            .args(&path)
            .arg("--help")
            .output()
            .expect("run sigil");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "sigil {path:?} --help failed");
        assert!(stdout.contains("Usage: sigil"), "{path:?}: {stdout}");
        if path == ["serve"] {
            for flag in [
                "--issuer",
                "--bind",
                "--database-url",
                "--keys-dir",
                "--access-token-ttl",
                "--log-format",
            ] {
                assert!(stdout.contains(flag), "serve --help lacks {flag}");
            }
            assert!(
                stdout.contains("[env: SIGIL_ISSUER="),
                "env variables are shown"
            );
        }
    }
    let top = Command::new(SIGIL).arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&top.stdout);
    for command in ["serve", "migrate", "user", "client", "keys", "audit"] {
        assert!(text.contains(command), "sigil --help lacks {command}");
    }
}

fn one_line_error(args: &[&str]) -> String {
    let out = Command::new(SIGIL)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run sigil");
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, not a backtrace: {stderr}"
    );
    assert!(stderr.starts_with("sigil: error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn startup_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/sigil.db", dir.path().display());

    let err = one_line_error(&["--database-url", "mysql://nope", "migrate"]);
    assert!(err.contains("database"), "{err}");
    let err = one_line_error(&[
        "--database-url",
        "postgres://postgres@127.0.0.1:9/none",
        "migrate",
    ]);
    assert!(err.contains("database"), "{err}");

    // The keys directory is a file.
    let not_a_dir = dir.path().join("keys-file");
    std::fs::write(&not_a_dir, "x").expect("file");
    let keys = not_a_dir.display().to_string();
    let err = one_line_error(&[
        "--database-url",
        &db,
        "--keys-dir",
        &keys,
        "serve",
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains("signing keys") && err.contains("keys-file"),
        "{err}"
    );

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let keys_dir = dir.path().join("keys").display().to_string();
    let err = one_line_error(&[
        "--database-url",
        &db,
        "--keys-dir",
        &keys_dir,
        "serve",
        "--bind",
        &addr,
        "--admin-password",
        "startup test password",
    ]);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");

    // A bad option value names the option.
    let out = Command::new(SIGIL)
        .args(["serve", "--access-token-ttl", "soon"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--access-token-ttl"));
}
