//! The invariants of docs/architecture.md that a machine can check: sigil-core's normal
//! dependencies hold no HTTP or SQL crate, sigil-verify does not depend on sigil-core, and
//! `StatusCode` is named only in the server modules that may choose a status.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Crates that speak HTTP or SQL (or serve either), by name or name prefix (`sqlx-…`).
const HTTP_OR_SQL: &[&str] = &[
    "axum",
    "actix",
    "h2",
    "http",
    "http-body",
    "hyper",
    "isahc",
    "reqwest",
    "rocket",
    "surf",
    "tower",
    "ureq",
    "warp",
    "sqlx",
    "diesel",
    "sea-orm",
    "rusqlite",
    "libsqlite3-sys",
    "postgres",
    "tokio-postgres",
    "mysql",
];

/// The server modules (under `crates/sigil-server/src`) that may name `StatusCode`: every
/// error response (`http/error/`), and the responses that are neither errors nor a plain
/// 200 (`http/respond.rs`: redirects, 201, 304, readiness).
const MAY_CHOOSE_A_STATUS: &[&str] = &["http/error/", "http/respond.rs"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo metadata` of the workspace: its resolve, with each dependency's kinds.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(repo())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// The dependency graph: package id to (dependency id, is it a dev-only dependency).
struct Graph {
    names: HashMap<String, String>,
    edges: HashMap<String, Vec<(String, bool)>>,
}

impl Graph {
    fn new(metadata: &Value) -> Self {
        let names = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| {
                let id = p["id"].as_str().expect("id").to_string();
                (id, p["name"].as_str().expect("name").to_string())
            })
            .collect();
        let edges = metadata["resolve"]["nodes"]
            .as_array()
            .expect("resolve nodes")
            .iter()
            .map(|node| {
                let deps = node["deps"]
                    .as_array()
                    .expect("deps")
                    .iter()
                    .map(|dep| {
                        let kinds = dep["dep_kinds"].as_array().expect("dep_kinds");
                        let is_dev_only = !kinds.is_empty()
                            && kinds.iter().all(|k| k["kind"].as_str() == Some("dev"));
                        (dep["pkg"].as_str().expect("pkg").to_string(), is_dev_only)
                    })
                    .collect();
                (node["id"].as_str().expect("id").to_string(), deps)
            })
            .collect();
        Self { names, edges }
    }

    fn id_of(&self, name: &str) -> String {
        self.names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("{name} is not in the workspace"))
    }

    /// The names of every package `name` depends on, directly or not; dev-dependencies
    /// only when `with_dev` (and then only the root's own: a dependency's dev-dependencies
    /// are never built).
    fn tree(&self, name: &str, with_dev: bool) -> BTreeSet<String> {
        let root = self.id_of(name);
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, bool)> = vec![(root, true)];
        while let Some((id, is_root)) = stack.pop() {
            for (dep, is_dev_only) in self.edges.get(&id).into_iter().flatten() {
                if *is_dev_only && !(with_dev && is_root) {
                    continue;
                }
                if seen.insert(dep.clone()) {
                    stack.push((dep.clone(), false));
                }
            }
        }
        seen.iter().map(|id| self.names[id].clone()).collect()
    }
}

fn is_http_or_sql(name: &str) -> bool {
    HTTP_OR_SQL
        .iter()
        .any(|banned| name == *banned || name.starts_with(&format!("{banned}-")))
}

#[test]
fn core_depends_on_no_http_or_sql_crate() {
    let graph = Graph::new(&metadata());
    let tree = graph.tree("sigil-core", false);
    assert!(
        tree.contains("serde"),
        "the walk reached core's dependencies"
    );
    let banned: Vec<&String> = tree.iter().filter(|n| is_http_or_sql(n)).collect();
    assert!(
        banned.is_empty(),
        "sigil-core depends on HTTP or SQL crates: {banned:?}"
    );
}

#[test]
fn verify_does_not_depend_on_core() {
    let graph = Graph::new(&metadata());
    let tree = graph.tree("sigil-verify", true);
    assert!(
        tree.contains("josekit"),
        "the walk reached verify's dependencies"
    );
    assert!(
        !tree.contains("sigil-core") && !tree.contains("sigil-server"),
        "sigil-verify depends on sigil-core"
    );
}

/// Every `.rs` file under `dir`, as paths relative to it with `/` separators.
fn sources(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("source directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(dir)
                    .expect("under the directory")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                found.push((relative, path));
            }
        }
    }
    found
}

#[test]
fn status_codes_are_chosen_only_where_the_architecture_says() {
    let src = repo().join("crates/sigil-server/src");
    let files = sources(&src);
    assert!(
        files.iter().any(|(f, _)| f == "http/token.rs"),
        "the walk found the handlers"
    );
    let offenders: Vec<String> = files
        .into_iter()
        .filter(|(relative, _)| {
            !MAY_CHOOSE_A_STATUS.iter().any(|allowed| {
                relative == allowed || (allowed.ends_with('/') && relative.starts_with(allowed))
            })
        })
        .filter(|(_, path)| {
            std::fs::read_to_string(path)
                .expect("source file")
                .contains("StatusCode")
        })
        .map(|(relative, _)| relative)
        .collect();
    assert!(
        offenders.is_empty(),
        "StatusCode outside {MAY_CHOOSE_A_STATUS:?}: {offenders:?}"
    );
}
