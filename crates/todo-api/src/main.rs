//! `todo-api`: the sample resource server, a per-user TODO API protected by `sigil-verify`.
//!
//! A placeholder in the workspace layout until its own issue builds it.

fn main() {
    eprintln!("todo-api: not built yet; see the sigil-verify and TODO API issue");
    std::process::exit(2);
}
