//! A bounded pool for CPU-heavy work (argon2, RSA signing) so it never blocks the async
//! runtime and never queues without limit.

use std::sync::Arc;
use tokio::sync::Semaphore;

/// The pool's queue is full: the caller should answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU pool overloaded")
    }
}

/// At most `workers` jobs run at once on tokio's blocking threads; at most `queue` more wait.
#[derive(Debug, Clone)]
pub struct CpuPool {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    capacity: usize,
}

impl CpuPool {
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            running: Arc::new(Semaphore::new(workers)),
            capacity: workers + queue,
        }
    }

    /// Runs `job` on a blocking thread once a worker is free, or fails at once with
    /// [`Overloaded`] when the queue is full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        let _running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Overloaded)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| Overloaded)
    }

    /// Jobs admitted and not yet finished (running plus waiting).
    pub fn depth(&self) -> usize {
        self.capacity - self.admitted.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_when_the_queue_is_full() {
        let pool = CpuPool::new(1, 1);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
        let first = {
            let pool = pool.clone();
            let rx = release_rx.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
                .await
            })
        };
        while pool.depth() < 1 {
            tokio::task::yield_now().await;
        }
        let second = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        while pool.depth() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 3).await, Err(Overloaded));
        release_tx.send(()).ok();
        assert!(first.await.ok().and_then(|r| r.ok()).is_some());
        assert_eq!(second.await.ok().and_then(|r| r.ok()), Some(2));
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }
}
