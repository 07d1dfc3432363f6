//! A bounded pool for CPU-heavy work (argon2, RSA signing) so it never blocks the async
//! runtime and never queues without limit. Its workers are its own few threads, started
//! once: argon2 allocates 19 MiB per hash, and the C allocator keeps freed memory per
//! thread, so running hashes on an ever-changing set of threads would let memory grow with
//! the number of threads that ever hashed. A fixed set keeps it to a few hashes' worth.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// The pool's queue is full: the caller should answer 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

impl std::fmt::Display for Overloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU pool overloaded")
    }
}

/// A full pool is `temporarily_unavailable` ([`crate::error::Cause::Overloaded`]).
impl From<Overloaded> for crate::error::OAuthError {
    fn from(_: Overloaded) -> Self {
        Self::overloaded()
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A place in a [`CpuPool`]'s queue, taken with [`CpuPool::admit`].
#[derive(Debug)]
pub struct Admission {
    permit: OwnedSemaphorePermit,
    jobs: mpsc::Sender<Job>,
}

impl Admission {
    /// Queues `job` and waits for its answer. The place goes with the job: it is given
    /// back when the job has run, not when this future is dropped.
    pub async fn run<T, F>(self, job: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Self { permit, jobs } = self;
        let (done, result) = oneshot::channel();
        jobs.send(Box::new(move || {
            let answer = job();
            // Given back before the answer is sent, so that whoever sees the answer sees
            // the place free again.
            drop(permit);
            let _ = done.send(answer);
        }))
        .map_err(|_| Overloaded)?;
        result.await.map_err(|_| Overloaded)
    }
}

/// `workers` threads run the jobs; at most `queue` more jobs wait for one. The channel to
/// the workers is unbounded, but only admitted jobs are sent, and a job keeps its
/// admission until it has run, so the channel never holds more than `workers + queue`.
#[derive(Debug, Clone)]
pub struct CpuPool {
    admitted: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    capacity: usize,
}

impl CpuPool {
    /// Starts `workers` threads named `{name}-0`, `{name}-1`, … (the name shows in `top -H`,
    /// in profiles and in the load suite's CPU accounting; Linux keeps 15 bytes of it).
    pub fn new(name: &str, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || loop {
                    let job = {
                        let guard = match receiver.lock() {
                            Ok(guard) => guard,
                            Err(poisoned) => poisoned.into_inner(),
                        };
                        guard.recv()
                    };
                    match job {
                        // A panicking job must not take the worker with it.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                        }
                        // Every handle to the pool is gone.
                        Err(_) => break,
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a CPU worker thread");
            }
        }
        Self {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            jobs,
            capacity: workers + queue,
        }
    }

    /// Runs `job` on a worker thread once one is free, or fails at once with
    /// [`Overloaded`] when the queue is full.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Overloaded>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.admit()?.run(job).await
    }

    /// Takes a place in the queue now, for a job given later with [`Admission::run`], or
    /// fails at once with [`Overloaded`]. The place is held until that job has finished
    /// on a worker (or the admission is dropped unused), whatever happens to the future
    /// that waits for the answer: a caller that gives up (a client that hangs up, a
    /// request timeout) cannot free its place while its job still waits or runs.
    pub fn admit(&self) -> Result<Admission, Overloaded> {
        let permit = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Overloaded)?;
        Ok(Admission {
            permit,
            jobs: self.jobs.clone(),
        })
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
        let pool = CpuPool::new("test-pool", 1, 1);
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

    #[tokio::test]
    async fn jobs_run_on_the_pools_own_threads_and_survive_panics() {
        let pool = CpuPool::new("test-pool", 2, 64);
        let mut names = std::collections::BTreeSet::new();
        let jobs: Vec<_> = (0..40)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    pool.run(|| std::thread::current().name().map(str::to_string))
                        .await
                })
            })
            .collect();
        for job in jobs {
            let name = job.await.ok().and_then(|r| r.ok()).flatten();
            names.insert(name.unwrap_or_default());
        }
        assert!(names.len() <= 2, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("test-pool-")),
            "{names:?}"
        );
        let panicked = pool.run(|| -> i32 { panic!("job failure") }).await;
        assert_eq!(panicked, Err(Overloaded));
        assert_eq!(pool.run(|| 5).await, Ok(5), "the workers survive a panic");
        assert_eq!(pool.depth(), 0);
    }

    #[tokio::test]
    async fn a_dropped_caller_keeps_its_place_until_the_job_has_run() {
        let pool = CpuPool::new("test-pool", 1, 1);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        // A running job whose caller gives up at once.
        let running = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    started_tx.send(()).ok();
                    release_rx.recv().ok();
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .ok();
        running.abort();
        let _ = running.await;
        // A queued job whose caller gives up too.
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| ()).await }
        });
        while pool.depth() < 2 {
            tokio::task::yield_now().await;
        }
        queued.abort();
        let _ = queued.await;
        assert_eq!(pool.depth(), 2, "both places stay taken");
        assert_eq!(pool.run(|| 1).await, Err(Overloaded));
        release_tx.send(()).ok();
        while pool.depth() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 2).await, Ok(2));
    }
}
