//! Group commit of DPoP proof records (RFC 9449 §11.1). Every token request with a proof
//! must record its replay key before it is answered, so that a replay fails on every
//! replica; one write per request made each DPoP token cost a database commit (a disk sync
//! on SQLite). Here one task per `Authority` takes whatever records have queued while the
//! previous write was on its way and writes them in one call
//! ([`AccessTokenDenyList::record_dpop_proofs`]).
//!
//! A caller hears back only after the write. Within one batch the first request of a replay
//! key is the one written; any other request with the same key is a replay. When the write
//! fails, every caller in the batch gets the error, and nothing of the batch was recorded.

use crate::store::{AccessTokenDenyList, Store, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};

/// At most this many records share one write.
const MAX_BATCH: usize = 64;

struct Pending {
    replay_key: String,
    until: i64,
    now: i64,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue to the writer task, which starts with the first record (on the runtime of the
/// request that makes it) and stops when the `Authority` is dropped.
pub(crate) struct ProofRecorder {
    store: Arc<dyn Store>,
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl ProofRecorder {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            queue: OnceLock::new(),
        }
    }

    /// Records the proof with `replay_key` until `until`; false when it was recorded before
    /// and has not expired (a replay), here or on another replica.
    pub(crate) async fn record(
        &self,
        replay_key: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(run(self.store.clone(), receiver));
            queue
        });
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            replay_key: replay_key.to_string(),
            until,
            now,
            reply,
        };
        let stopped = || StoreError::Unavailable("the DPoP proof recorder has stopped".into());
        queue.send(pending).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write(store.as_ref(), std::mem::take(&mut batch)).await;
    }
}

/// Writes one batch and answers each of its callers.
async fn write(store: &dyn Store, batch: Vec<Pending>) {
    // The first request of each key is written; `slot` is its place among the written.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut proofs: Vec<(String, i64)> = Vec::new();
    let mut slot_of = Vec::with_capacity(batch.len());
    for pending in &batch {
        let first = seen.insert(&pending.replay_key);
        if first {
            proofs.push((pending.replay_key.clone(), pending.until));
        }
        slot_of.push(first.then(|| proofs.len() - 1));
    }
    // The latest clock of the batch: a record that expired by then is taken over.
    let now = batch.iter().map(|p| p.now).max().unwrap_or_default();
    let outcome = AccessTokenDenyList::record_dpop_proofs(store, &proofs, now).await;
    for (pending, slot) in batch.into_iter().zip(slot_of) {
        let answer = match (&outcome, slot) {
            (Ok(first_uses), Some(slot)) => Ok(first_uses.get(slot).copied().unwrap_or(false)),
            // Another request of this batch has the same key: this one is its replay.
            (Ok(_), None) => Ok(false),
            (Err(error), _) => Err(copy(error)),
        };
        let _ = pending.reply.send(answer);
    }
}

/// The same error for each caller of a failed batch.
fn copy(error: &StoreError) -> StoreError {
    match error {
        StoreError::Conflict(what) => StoreError::Conflict(what.clone()),
        StoreError::Unavailable(what) => StoreError::Unavailable(what.clone()),
        other => StoreError::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn of_racing_uses_of_one_proof_exactly_one_wins_and_others_are_recorded() {
        let recorder = Arc::new(ProofRecorder::new(Arc::new(MemoryStore::new())));
        let mut racers = Vec::new();
        // 40 keys, each used 5 times at once: 200 records queued together, in batches.
        for round in 0..5 {
            for key in 0..40 {
                let recorder = recorder.clone();
                racers.push(tokio::spawn(async move {
                    let first = recorder
                        .record(&format!("key{key}"), 1_060, 1_000 + round)
                        .await
                        .expect("record");
                    (key, first)
                }));
            }
        }
        let mut wins = [0; 40];
        for racer in racers {
            let (key, first) = racer.await.expect("join");
            if first {
                wins[key] += 1;
            }
        }
        assert_eq!(wins, [1; 40], "each key won exactly once");
        // Recorded for real: later uses are replays until the record expires.
        assert!(!recorder.record("key7", 1_060, 1_059).await.expect("record"));
        assert!(recorder.record("key7", 2_000, 1_060).await.expect("record"));
    }
}
