//! The signing-key directory: `<kid>.pem` (PKCS#8 private key, mode 0600) beside
//! `<kid>.json` (`created_at`, `activates_at`). Files are written to a temporary name and
//! renamed, so a replica polling the directory never sees half a key. Replicas sharing the
//! directory pick up changes within one poll interval, without a restart.

use serde::{Deserialize, Serialize};
use sigil_core::keys::{generate_key, KeyRing, KeySet, SigningKey};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KeyDirError {
    #[error("keys directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key {kid}: {message}")]
    BadKey { kid: String, message: String },
    #[error("{0}")]
    Key(#[from] sigil_core::keys::KeyError),
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyMeta {
    kid: String,
    created_at: i64,
    activates_at: i64,
}

/// A keys directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
}

impl KeyDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> KeyDirError {
        KeyDirError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Creates the directory (mode 0700) if missing.
    pub fn create(&self) -> Result<(), KeyDirError> {
        if !self.path.exists() {
            fs::create_dir_all(&self.path).map_err(|e| self.io(e))?;
            fs::set_permissions(&self.path, fs::Permissions::from_mode(0o700))
                .map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// At start: a keys directory that group or others can reach is set to 0700, and a file
    /// in it that group or others can read to 0600, each with a warning. Keys written by
    /// Sigil are private already; this catches a directory made by hand, a copy or a
    /// restore. A change that fails (a read-only mount, another owner) is a warning too, so
    /// that such a deployment still starts. Returns how many modes were changed.
    pub fn tighten_permissions(&self) -> Result<usize, KeyDirError> {
        let mut changed = 0;
        let dir_mode = match fs::metadata(&self.path) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.io(e)),
        };
        if dir_mode & 0o077 != 0 {
            changed += usize::from(tighten(&self.path, dir_mode, 0o700));
        }
        for entry in fs::read_dir(&self.path).map_err(|e| self.io(e))? {
            let path = entry.map_err(|e| self.io(e))?.path();
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_file() && mode & 0o077 != 0 {
                changed += usize::from(tighten(&path, mode, 0o600));
            }
        }
        Ok(changed)
    }

    /// Loads every complete key (a `.pem` with its `.json`). A key that fails to parse is
    /// an error: a broken key directory must be noticed, not half-served.
    pub fn load(&self) -> Result<KeySet, KeyDirError> {
        let mut keys = Vec::new();
        for meta_path in self.meta_files()? {
            let text = fs::read_to_string(&meta_path).map_err(|e| self.io(e))?;
            let meta: KeyMeta = serde_json::from_str(&text).map_err(|e| KeyDirError::BadKey {
                kid: meta_path.display().to_string(),
                message: format!("bad metadata: {e}"),
            })?;
            let pem_path = self.path.join(format!("{}.pem", meta.kid));
            let pem = fs::read(&pem_path).map_err(|e| self.io(e))?;
            if let Ok(file_meta) = fs::metadata(&pem_path) {
                if file_meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(kid = %meta.kid, "private key file is readable by group or others; chmod 600 it");
                }
            }
            let key = SigningKey::from_pem(&pem, meta.created_at, meta.activates_at)?;
            if key.kid() != meta.kid {
                return Err(KeyDirError::BadKey {
                    kid: meta.kid,
                    message: "file name does not match the key's thumbprint".into(),
                });
            }
            keys.push(key);
        }
        Ok(KeySet::new(keys))
    }

    fn meta_files(&self) -> Result<Vec<PathBuf>, KeyDirError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(self.io(e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| self.io(e))?.path();
            let is_meta = path.extension().is_some_and(|e| e == "json")
                && !path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
            if is_meta {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// A cheap summary of the directory (names, sizes, modification times) that changes
    /// whenever a key is added, replaced or removed.
    pub fn fingerprint(&self) -> Result<String, KeyDirError> {
        let mut parts = Vec::new();
        let entries = match fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
            Err(e) => return Err(self.io(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let (len, modified) = entry
                .metadata()
                .map(|m| {
                    let modified = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    (m.len(), modified)
                })
                .unwrap_or((0, 0));
            parts.push(format!("{name}:{len}:{modified}"));
        }
        parts.sort();
        Ok(parts.join("|"))
    }

    /// Generates a key that signs from `activates_at`, writes it, and returns its kid.
    pub fn add_new_key(&self, now: i64, activates_at: i64) -> Result<String, KeyDirError> {
        self.create()?;
        let generated = generate_key()?;
        let kid = generated.kid.clone();
        self.write_atomically(&format!("{kid}.pem"), &generated.private_pem, 0o600)?;
        let meta = KeyMeta {
            kid: kid.clone(),
            created_at: now,
            activates_at,
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| KeyDirError::BadKey {
            kid: kid.clone(),
            message: e.to_string(),
        })?;
        self.write_atomically(&format!("{kid}.json"), &json, 0o600)?;
        Ok(kid)
    }

    /// On first start: generates the first key (active at once) if the directory has none.
    pub fn ensure_key(&self, now: i64) -> Result<Option<String>, KeyDirError> {
        if self.load()?.is_empty() {
            return self.add_new_key(now, now).map(Some);
        }
        Ok(None)
    }

    /// Removes a key's files (metadata first, so the key stops loading at once).
    pub fn remove_key(&self, kid: &str) -> Result<(), KeyDirError> {
        for ext in ["json", "pem"] {
            let path = self.path.join(format!("{kid}.{ext}"));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        Ok(())
    }

    /// The key of the trusted-device cookies (`device.key`, 32 random bytes, mode 0600),
    /// created on first use. Replicas that share the directory share the key; two that
    /// start at once agree on one (the file is linked into place only if none exists).
    pub fn device_key(&self) -> Result<sigil_core::device::DeviceKey, KeyDirError> {
        let path = self.path.join(DEVICE_KEY_FILE);
        let bad = |message: String| KeyDirError::BadKey {
            kid: DEVICE_KEY_FILE.into(),
            message,
        };
        if !path.exists() {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            let tmp = self.path.join(format!(
                ".{DEVICE_KEY_FILE}.{}.tmp",
                sigil_core::secret::random_token(6)
            ));
            let written = (|| {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                file.write_all(&secret)?;
                file.sync_all()?;
                match fs::hard_link(&tmp, &path) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                    _ => Ok(()),
                }
            })();
            let _ = fs::remove_file(&tmp);
            written.map_err(|e| self.io(e))?;
        }
        let secret = fs::read(&path).map_err(|e| self.io(e))?;
        sigil_core::device::DeviceKey::new(&secret).map_err(bad)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), KeyDirError> {
        let tmp = self.path.join(format!(
            ".{name}.{}.tmp",
            sigil_core::secret::random_token(6)
        ));
        let result = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, self.path.join(name))?;
            if let Ok(dir) = fs::File::open(&self.path) {
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| self.io(e))
    }
}

/// The file of the trusted-device cookies' key in the keys directory.
pub const DEVICE_KEY_FILE: &str = "device.key";

/// Sets `path` to `mode` with a warning; a failure to do so is warned about too.
fn tighten(path: &Path, was: u32, mode: u32) -> bool {
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                was = format!("{was:o}"),
                now = format!("{mode:o}"),
                "signing keys were readable by group or others: permissions tightened"
            );
            true
        }
        Err(error) => {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{was:o}"),
                %error,
                "signing keys are readable by group or others and cannot be tightened: fix it by hand"
            );
            false
        }
    }
}

/// `keys rotate`: publishes a new key now. It signs from `now + activation_delay` (the
/// JWKS max-age, so every verifier's cache has seen it), or, with `immediately`, strictly
/// after the current signing key so that it wins at once. Returns the kid and the time it
/// signs from.
pub fn rotate(
    dir: &KeyDir,
    now: i64,
    activation_delay: i64,
    immediately: bool,
) -> Result<(String, i64), KeyDirError> {
    let activates_at = if immediately {
        let current = dir
            .load()?
            .signing_key(now)
            .map(|k| k.activates_at())
            .unwrap_or(now);
        now.max(current + 1)
    } else {
        now + activation_delay
    };
    let kid = dir.add_new_key(now, activates_at)?;
    Ok((kid, activates_at))
}

/// `keys prune`: removes the retired keys whose every token has expired (`max_token_ttl`
/// is the longest lifetime any token signed by them can have). Returns their kids.
pub fn prune(dir: &KeyDir, now: i64, max_token_ttl: i64) -> Result<Vec<String>, KeyDirError> {
    let prunable = dir.load()?.prunable(now, max_token_ttl);
    for kid in &prunable {
        dir.remove_key(kid)?;
    }
    Ok(prunable)
}

/// Polls the directory every `interval` and swaps the key ring when it changed. A load
/// that fails keeps the old keys and logs the problem.
pub fn spawn_watcher(
    dir: KeyDir,
    ring: Arc<KeyRing>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    tokio::spawn(async move {
        let mut last = dir.fingerprint().unwrap_or_default();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let polling = dir.clone();
            let Ok(Ok(fingerprint)) =
                tokio::task::spawn_blocking(move || polling.fingerprint()).await
            else {
                continue;
            };
            if fingerprint == last {
                continue;
            }
            let loading = dir.clone();
            let loaded = tokio::task::spawn_blocking(move || loading.load()).await;
            match loaded {
                Ok(Ok(set)) if !set.is_empty() => {
                    tracing::info!(keys = set.keys().len(), "signing keys reloaded");
                    ring.replace(set);
                    last = fingerprint;
                }
                Ok(Ok(_)) => tracing::error!("keys directory has no keys; keeping the loaded ones"),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot reload signing keys; keeping the loaded ones")
                }
                Err(e) => tracing::error!(error = %e, "key reload task failed"),
            }
        }
    }
    .instrument(tracing::info_span!("task", task = "key-watcher")))
}

/// Bytes in a symmetric key file ([`load_or_create_secret`]).
pub const SECRET_KEY_BYTES: usize = 32;

/// Reads the 32-byte symmetric key `file` (the mail key, the factor key) from `keys_dir`,
/// creating the directory (0700) and the key (0600) first if missing. Two processes that
/// create it at once agree on one: each writes its own temporary file and links it into
/// place only if no key is there yet. `what` names the key in errors.
pub fn load_or_create_secret(
    keys_dir: &Path,
    file: &str,
    what: &str,
) -> Result<[u8; SECRET_KEY_BYTES], String> {
    use rand::RngCore;
    let path = keys_dir.join(file);
    let failed =
        |doing: &str, e: std::io::Error| format!("{what} {}: {doing}: {e}", path.display());
    KeyDir::new(keys_dir).create().map_err(|e| e.to_string())?;
    if !path.exists() {
        let mut key = [0u8; SECRET_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let tmp = keys_dir.join(format!(
            ".{file}.{}.tmp",
            sigil_core::secret::random_token(6)
        ));
        let written = (|| {
            let mut handle = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            handle.write_all(&key)?;
            handle.sync_all()?;
            match fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        })();
        let _ = fs::remove_file(&tmp);
        written.map_err(|e| failed("cannot create", e))?;
    }
    let bytes = fs::read(&path).map_err(|e| failed("cannot read", e))?;
    if let Ok(meta) = fs::metadata(&path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the {what} is readable by group or others; chmod 600 it");
        }
    }
    bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!(
            "{what} {}: holds {} bytes, not {SECRET_KEY_BYTES}",
            path.display(),
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_key_is_private_and_loads_once_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = KeyDir::new(tmp.path().join("keys"));
        assert!(dir.load().expect("empty").is_empty());
        let kid = dir.ensure_key(1000).expect("generate").expect("a new key");
        assert_eq!(
            dir.ensure_key(1000).expect("again"),
            None,
            "only when there is none"
        );
        let dir_mode = fs::metadata(dir.path()).expect("dir").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let pem_mode = fs::metadata(dir.path().join(format!("{kid}.pem")))
            .expect("pem")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(pem_mode, 0o600);
        let set = dir.load().expect("load");
        assert_eq!(
            set.signing_key(1000).map(|k| k.kid().to_string()),
            Some(kid.clone())
        );
        assert!(
            !set.jwks_json().contains("\"d\""),
            "no private member in the JWKS"
        );
    }

    #[test]
    fn fingerprint_follows_changes_and_removal_is_complete() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = KeyDir::new(tmp.path());
        let empty = dir.fingerprint().expect("fingerprint");
        let kid = dir.add_new_key(1000, 2000).expect("add");
        let one = dir.fingerprint().expect("fingerprint");
        assert_ne!(empty, one);
        assert_eq!(dir.load().expect("load").keys().len(), 1);
        dir.remove_key(&kid).expect("remove");
        assert_eq!(dir.fingerprint().expect("fingerprint"), empty);
        assert!(dir.load().expect("load").is_empty());
    }

    #[test]
    fn a_key_whose_name_lies_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = KeyDir::new(tmp.path());
        let kid = dir.add_new_key(1000, 1000).expect("add");
        fs::rename(
            tmp.path().join(format!("{kid}.pem")),
            tmp.path().join("other.pem"),
        )
        .expect("rename");
        fs::write(
            tmp.path().join(format!("{kid}.json")),
            r#"{"kid":"other","created_at":1,"activates_at":1}"#,
        )
        .expect("write");
        assert!(matches!(dir.load(), Err(KeyDirError::BadKey { .. })));
    }
}
