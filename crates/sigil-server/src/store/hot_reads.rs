//! [`HotReads`]: the connections the hot-path reads keep aside, so that sqlx does not
//! ping each one on its way back to the pool.

use super::DatabaseOptions;

/// Connections kept aside for the reads on the hot paths (client, user, refresh token,
/// deny list, sign-in failures), taken and put back without going through the pool.
///
/// sqlx pings every connection it takes back into its pool (a round trip to PostgreSQL, a
/// hand-off to SQLite's thread) and offers no way to turn that off. A read that succeeds
/// puts its connection here instead, up to `keep` of them; the next read takes the most
/// recently used one. The connections stay checked out of the pool, so `max_connections`
/// still bounds the total. A read that fails or is given up on drops its connection back
/// to the pool, which tests it as usual.
pub struct HotReads<DB: sqlx::Database> {
    idle: std::sync::Mutex<Vec<sqlx::pool::PoolConnection<DB>>>,
    keep: usize,
    closed: std::sync::atomic::AtomicBool,
}

impl<DB: sqlx::Database> HotReads<DB> {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            idle: std::sync::Mutex::new(Vec::new()),
            keep,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Gives every kept connection back to the pool and keeps none from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.give_back();
    }

    /// Gives every kept connection back to the pool, which tests each (sqlx pings a
    /// connection it takes back) and closes the broken ones: after a connection was found
    /// broken, the others kept beside it may be too.
    pub(crate) fn give_back(&self) {
        let kept = match self.idle.lock() {
            Ok(mut idle) => std::mem::take(&mut *idle),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        drop(kept);
    }

    pub(crate) async fn take(
        &self,
        pool: &sqlx::Pool<DB>,
    ) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        let kept = match self.idle.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        match kept {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        }
    }

    pub(crate) fn keep(&self, conn: sqlx::pool::PoolConnection<DB>) {
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < self.keep && !self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            idle.push(conn);
        }
        // Otherwise `conn` drops here, after the lock: back to the pool.
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for HotReads<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotReads")
            .field("keep", &self.keep)
            .finish()
    }
}

/// How many connections [`HotReads`] keeps: half the pool (none of a pool of one), so
/// writes always find some.
pub(crate) fn hot_reads_kept(options: &DatabaseOptions) -> usize {
    options.max_connections as usize / 2
}
