//! The audit log: who did what, when, from where. Every entry carries a SHA-256 hash that
//! covers its own fields and the previous entry's hash, so editing, inserting or deleting
//! an entry anywhere but at the very end breaks the chain, and [`verify_chain`] finds the
//! first entry where it breaks. Entries never hold a secret: no password, token or client
//! secret is ever passed in.
//!
//! Who acted and from where reaches core as an explicit [`Caller`], passed to every
//! operation that records or throttles; [`AuditLog`] appends the records.

use crate::activity::{Activity, Event};
use crate::clock::Clock;
use crate::secret::hash_for_storage;
use crate::store::AuditStore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as recorded. Names are `<subject>.<verb>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: i64,
    /// The acting user's name, `cli` for the command line, `-` when nobody signed in.
    pub actor: String,
    /// The acting user's id, when a user acted.
    pub actor_id: Option<String>,
    pub action: String,
    /// What the action was about: a client id, a user name, a key id.
    pub target: Option<String>,
    /// Plain words; never a secret.
    pub detail: String,
    /// The client's IP address, when the action came over HTTP.
    pub address: Option<String>,
}

/// A stored entry: the record, its place in the chain and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1, 2, 3, … without gaps.
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for browsing the log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Entries whose action starts with this (e.g. `sign_in.` or `client.created`).
    pub action_prefix: Option<String>,
    /// Entries whose actor is exactly this.
    pub actor: Option<String>,
    /// Entries whose target is exactly this.
    pub target: Option<String>,
    /// Only entries with `seq` below this (the paging cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// The hash of an entry: SHA-256 over the previous hash and every field, each
/// length-prefixed so that no two different entries hash the same bytes. Hex.
pub fn entry_hash(prev_hash: &str, seq: i64, record: &AuditRecord) -> String {
    let mut hasher = Sha256::new();
    let mut field = |value: Option<&str>| match value {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
    };
    field(Some(prev_hash));
    field(Some(&seq.to_string()));
    field(Some(&record.at.to_string()));
    field(Some(&record.actor));
    field(record.actor_id.as_deref());
    field(Some(&record.action));
    field(record.target.as_deref());
    field(Some(&record.detail));
    field(record.address.as_deref());
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the entry that follows `previous` (or the first one).
pub fn chain_entry(previous: Option<(i64, &str)>, record: AuditRecord) -> AuditEntry {
    let (seq, prev_hash) = match previous {
        Some((seq, hash)) => (seq + 1, hash.to_string()),
        None => (1, GENESIS_HASH.to_string()),
    };
    let hash = entry_hash(&prev_hash, seq, &record);
    AuditEntry {
        seq,
        record,
        prev_hash,
        hash,
    }
}

/// Where and why a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The sequence number of the first entry that does not fit (or that is missing).
    pub seq: i64,
    pub reason: String,
}

/// Walks entries in ascending order and checks each against the one before. Feed it in
/// batches: `state` carries the last verified `(seq, hash)` from batch to batch.
pub fn verify_chain<'a>(
    state: &mut Option<(i64, String)>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<u64, ChainBreak> {
    let mut checked = 0;
    for entry in entries {
        let (expected_seq, expected_prev) = match state {
            Some((seq, hash)) => (*seq + 1, hash.as_str()),
            None => (1, GENESIS_HASH),
        };
        if entry.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                reason: format!(
                    "entry #{expected_seq} is missing (the next one stored is #{})",
                    entry.seq
                ),
            });
        }
        if entry.prev_hash != expected_prev {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: "its previous-hash does not match the entry before it".into(),
            });
        }
        if entry_hash(&entry.prev_hash, entry.seq, &entry.record) != entry.hash {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: "its contents do not match its hash (the entry was edited)".into(),
            });
        }
        *state = Some((entry.seq, entry.hash.clone()));
        checked += 1;
    }
    Ok(checked)
}

/// Who is asking and from where: the acting party and the peer address of the request
/// (behind a reverse proxy, the proxy's). The server builds one per request; the command
/// line uses [`Caller::cli`]. Every operation that audits or throttles takes one, so none
/// can run without saying who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    /// The client's IP address, when the request came over HTTP.
    pub address: Option<String>,
}

impl Caller {
    /// Nobody signed in (a sign-in attempt, a client calling the token endpoint), from
    /// `address`.
    pub fn anonymous(address: Option<String>) -> Self {
        Self {
            actor: Actor::Nobody,
            address,
        }
    }
    /// The `sigil` command line (no address).
    pub fn cli() -> Self {
        Self {
            actor: Actor::Cli,
            address: None,
        }
    }
    /// A signed-in user, from `address`.
    pub fn user(id: impl Into<String>, name: impl Into<String>, address: Option<String>) -> Self {
        Self {
            actor: Actor::User {
                id: id.into(),
                name: name.into(),
            },
            address,
        }
    }
    /// The same address, acting as `actor`.
    pub fn acting_as(&self, actor: Actor) -> Self {
        Self {
            actor,
            address: self.address.clone(),
        }
    }
}

/// Appends records to the audit log. Cheap to clone; shared by the protocol engine and the
/// administration service. It carries the process's activity counters too
/// ([`crate::activity`]): whatever records what happened can also count it.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
    activity: Arc<Activity>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            activity: Arc::new(Activity::new(clock.clone())),
            store,
            clock,
        }
    }

    /// The activity counters shared with every clone of this log.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Counts an event ([`Activity::record`]): memory only, never a database write.
    pub fn count(&self, event: Event<'_>) {
        self.activity.record(event);
    }

    /// Appends an entry for what `caller` did. A failure to record is logged as an error
    /// and does not fail the action: the action has already happened.
    pub async fn record(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) {
        let record = AuditRecord {
            at: self.clock.now(),
            actor: caller.actor.name().to_string(),
            actor_id: caller.actor.id().map(str::to_string),
            action: action.to_string(),
            target: target.map(str::to_string),
            detail: detail.into(),
            address: caller.address.clone(),
        };
        if let Err(error) = self.store.append_audit(record).await {
            tracing::error!(%error, action, "could not write the audit log");
        }
    }
}

/// A short, non-reversible label for a refresh-token family or similar id in an entry.
pub fn reference(id: &str) -> String {
    hash_for_storage(id)[..12].to_string()
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Nobody signed in (a sign-in attempt, a client calling the token endpoint).
    Nobody,
    /// The `sigil` command line.
    Cli,
    User {
        id: String,
        name: String,
    },
}

impl Actor {
    pub fn name(&self) -> &str {
        match self {
            Actor::Nobody => "-",
            Actor::Cli => "cli",
            Actor::User { name, .. } => name,
        }
    }
    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::User { id, .. } => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> AuditRecord {
        AuditRecord {
            at: 1_700_000_000 + n,
            actor: "admin".into(),
            actor_id: Some("u1".into()),
            action: "client.created".into(),
            target: Some(format!("client-{n}")),
            detail: "name \"web\"".into(),
            address: Some("127.0.0.1".into()),
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let previous = out.last().map(|e| (e.seq, e.hash.as_str()));
            let entry = chain_entry(previous, record(i));
            out.push(entry);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies_in_batches() {
        let entries = chain(10);
        let mut state = None;
        assert_eq!(verify_chain(&mut state, &entries[..4]), Ok(4));
        assert_eq!(verify_chain(&mut state, &entries[4..]), Ok(6));
        assert_eq!(state.map(|s| s.0), Some(10));
    }

    #[test]
    fn edits_deletions_and_reordering_are_found_at_the_right_entry() {
        let mut edited = chain(6);
        edited[3].record.detail = "something else".into();
        let err = verify_chain(&mut None, &edited).expect_err("edit");
        assert_eq!(err.seq, 4);

        let mut deleted = chain(6);
        deleted.remove(2);
        let err = verify_chain(&mut None, &deleted).expect_err("deletion");
        assert_eq!(err.seq, 3);

        // An edit that also recomputes the entry's own hash breaks the next link.
        let mut rehashed = chain(6);
        rehashed[1].record.actor = "mallory".into();
        rehashed[1].hash = entry_hash(&rehashed[1].prev_hash, 2, &rehashed[1].record);
        let err = verify_chain(&mut None, &rehashed).expect_err("rehash");
        assert_eq!(err.seq, 3);
    }

    #[test]
    fn fields_are_length_prefixed() {
        let mut a = record(1);
        let mut b = record(1);
        a.actor = "ab".into();
        a.action = "c".into();
        b.actor = "a".into();
        b.action = "bc".into();
        assert_ne!(
            entry_hash(GENESIS_HASH, 1, &a),
            entry_hash(GENESIS_HASH, 1, &b)
        );
        let mut c = record(1);
        c.target = None;
        let mut d = record(1);
        d.target = Some(String::new());
        assert_ne!(
            entry_hash(GENESIS_HASH, 1, &c),
            entry_hash(GENESIS_HASH, 1, &d)
        );
    }
}
