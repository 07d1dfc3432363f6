//! Serving HTTP/1.1 connections with hyper: a header-read timeout, an idle timeout, a cap
//! on open connections that keeps room for new ones, and graceful shutdown with a deadline.
//!
//! hyper's own header-read timeout (with tokio's timer) bounds how long a request head may
//! take; hyper starts that clock whenever it waits for a head, so it also bounds the wait
//! for the next request on a kept-alive connection. On top of it, each connection counts
//! the bytes it moves: one on which nothing moves for the idle timeout while no request is
//! being handled (a client that stopped reading its answer) is closed. At the cap, a new
//! connection closes the longest-idle open one, so a flood of idle or trickling
//! connections cannot keep a real client (or a health check) out; only when every open
//! connection has a request in progress is the new one closed at once.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// File descriptors kept out of the connection cap besides the database pool: key files,
/// log and standard streams, the listeners, SQLite's WAL and SHM files, the runtime's own
/// (epoll, event fds), mail files and a margin.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 64;
/// The connection cap of the metrics listener (a scraper or two).
pub const METRICS_MAX_CONNECTIONS: usize = 16;
/// At the cap, how many of the oldest connections are looked at for the longest-idle one
/// (all of them only when these are all busy), so that admitting stays cheap at any cap.
const EVICTION_CANDIDATES: usize = 64;
/// The least time between two warnings about refused connections.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// The smallest default cap, however low the open-file limit.
const MIN_DEFAULT_CONNECTIONS: u64 = 16;

/// The timeouts and the cap of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Descriptors counted per database connection: a SQLite connection holds the database,
/// its WAL and its shared-memory file (a PostgreSQL one holds one socket).
pub const FILE_DESCRIPTORS_PER_DB_CONNECTION: u64 = 3;

/// The default `--max-connections`: the soft open-file limit (RLIMIT_NOFILE) less the
/// database pool, [`RESERVED_FILE_DESCRIPTORS`] and the metrics listener's cap.
pub fn default_max_connections(db_max_connections: u32) -> u64 {
    let soft = match rlimit::Resource::NOFILE.get() {
        Ok((soft, _hard)) if soft != rlimit::INFINITY => soft,
        // No limit (or it cannot be read): a cap that still bounds memory.
        _ => 65_536,
    };
    let reserve = u64::from(db_max_connections) * FILE_DESCRIPTORS_PER_DB_CONNECTION
        + RESERVED_FILE_DESCRIPTORS
        + METRICS_MAX_CONNECTIONS as u64;
    soft.saturating_sub(reserve).max(MIN_DEFAULT_CONNECTIONS)
}

/// Tells every listener to stop accepting and every connection to finish.
#[derive(Clone)]
pub struct Shutdown {
    signal: watch::Receiver<bool>,
}

/// The sending side of [`Shutdown`].
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Self) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Self { signal: rx })
    }

    async fn requested(&mut self) {
        // An error means the trigger is gone: nobody can ask any more, so shut down too.
        let _ = self.signal.wait_for(|stop| *stop).await;
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish their
/// requests for at most `shutdown_timeout` and closes whatever is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: Shutdown,
    shutdown_timeout: Duration,
) {
    let registry = Arc::new(Registry::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut refused = 0u64;
    let mut last_refusal_warning: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was taken:
                    // wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.requested() => break,
        };
        let Some(registration) = registry.admit() else {
            drop(stream);
            refused += 1;
            // One line per interval, not one per connection: a flood must not flood the log.
            if last_refusal_warning.is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_INTERVAL) {
                tracing::warn!(
                    %peer,
                    refused,
                    max_connections = limits.max_connections,
                    "connection limit reached and every connection is busy: new connections closed"
                );
                last_refusal_warning = Some(Instant::now());
                refused = 0;
            }
            continue;
        };
        let connection = registration.connection.clone();
        let io = TokioIo::new(CountingIo {
            inner: stream,
            connection: connection.clone(),
        });
        let service = {
            let connection = connection.clone();
            let router = router.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let busy = Busy::enter(connection.clone());
                let router = router.clone();
                async move {
                    let response = router.oneshot(request.map(Body::new)).await;
                    drop(busy);
                    response
                }
            })
        };
        let served = graceful.watch(builder.serve_connection(io, service));
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let _registration = registration;
            tokio::select! {
                result = served => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                _ = connection.close.notified() => {
                    tracing::debug!(%peer, "closed an idle connection to make room for a new one");
                }
                _ = connection.idle_for(idle_timeout) => {
                    tracing::debug!(%peer, "closed a connection idle for the idle timeout");
                }
            }
        });
    }
    // No new connections from here on.
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, "waiting for open connections to finish");
    }
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        let left = registry.close_all();
        tracing::warn!(
            connections = left,
            timeout = ?shutdown_timeout,
            "shutdown timeout reached: closed the connections still open"
        );
    }
}

/// What the accept loop and a connection's task share about one connection.
struct Connection {
    /// Requests of this connection being handled now.
    busy: AtomicUsize,
    /// When a byte last moved or a request last finished, in milliseconds since `epoch`.
    last_activity_ms: AtomicU64,
    epoch: Instant,
    /// Closes the connection (made room for a newer one, or the shutdown deadline passed).
    close: Notify,
}

impl Connection {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            last_activity_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            close: Notify::new(),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
        self.last_activity_ms.store(now, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed))
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed) > 0
    }

    /// Completes once nothing has moved for `timeout` while no request was being handled.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last_activity() + timeout;
            tokio::time::sleep_until(deadline.into()).await;
            if !self.is_busy() && self.last_activity() + timeout <= Instant::now() {
                return;
            }
            if self.is_busy() {
                // A handler runs (bounded by the request timeout): look again later.
                tokio::time::sleep(timeout).await;
            }
        }
    }
}

/// Marks a connection busy while one of its requests is handled (dropped when the
/// handler finishes or is cancelled).
struct Busy(Arc<Connection>);

impl Busy {
    fn enter(connection: Arc<Connection>) -> Self {
        connection.busy.fetch_add(1, Ordering::Relaxed);
        Self(connection)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections of one listener.
struct Registry {
    max_connections: usize,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

/// A connection's place in the registry, given up when dropped.
struct Registration {
    registry: Arc<Registry>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.open).remove(&self.id);
    }
}

impl Registry {
    fn new(max_connections: usize) -> Self {
        Self {
            max_connections: max_connections.max(1),
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes a place for a new connection; at the cap, closes the longest-idle of the
    /// oldest open connections to make room, or refuses when every one is busy.
    fn admit(self: &Arc<Self>) -> Option<Registration> {
        let mut open = lock(&self.open);
        if open.len() >= self.max_connections {
            let longest_idle = |candidates: &mut dyn Iterator<Item = (&u64, &Arc<Connection>)>| {
                candidates
                    .filter(|(_, c)| !c.is_busy())
                    .min_by_key(|(_, c)| c.last_activity())
                    .map(|(id, _)| *id)
            };
            let oldest_idle = longest_idle(&mut open.iter().take(EVICTION_CANDIDATES))
                .or_else(|| longest_idle(&mut open.iter()))?;
            if let Some(evicted) = open.remove(&oldest_idle) {
                evicted.close.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new());
        open.insert(id, connection.clone());
        Some(Registration {
            registry: self.clone(),
            id,
            connection,
        })
    }

    /// Closes every open connection; returns how many there were.
    fn close_all(&self) -> usize {
        let open = lock(&self.open);
        for connection in open.values() {
            connection.close.notify_one();
        }
        open.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A TCP stream that notes when bytes move, for the idle timeout and the choice of which
/// connection to close at the cap.
struct CountingIo {
    inner: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.touch();
        }
        result
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let registry = Arc::new(Registry::new(2));
        let first = registry.admit().expect("first");
        let second = registry.admit().expect("second");
        let _busy_second = Busy::enter(second.connection.clone());
        first.connection.touch();
        let third = registry.admit().expect("room made");
        assert_eq!(lock(&registry.open).len(), 2);
        assert!(
            !lock(&registry.open).contains_key(&first.id),
            "the idle one went"
        );
        let _busy_third = Busy::enter(third.connection.clone());
        assert!(registry.admit().is_none(), "every one busy: refused");
    }
}
