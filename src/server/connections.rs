//! The listener: who may hold a connection, and for how long. Anyone who can open
//! TCP connections could otherwise hold every file descriptor of the process, and
//! then `/healthz` stops answering and the channels cannot open the sockets that
//! carry pages. So:
//!
//! - the process's descriptor limit is raised to its hard limit at start, and a
//!   reserve of it is kept for everything but inbound connections (the store, the
//!   channels' connections, scrapes, logs);
//! - at most `server.max_connections` connections are held (never more than the
//!   descriptors left after that reserve). At the limit a new connection is still
//!   taken, and the connection that has been idle longest is closed to make room
//!   (one with no request in progress; only if every one is busy, the one whose
//!   request started first). A flood of idle or slow-header connections then
//!   evicts itself, while a client that sends its request at once is served;
//! - hyper closes a connection that has not sent a request's headers within
//!   `server.header_read_timeout` of connecting or of its previous answer, and a
//!   connection on which no byte moves for `server.idle_timeout` is closed.
//!
//! axum's own `serve` cannot be given a header timeout or a connection limit, so
//! this is hyper's HTTP/1 connection builder with hyper-util's graceful shutdown,
//! and the one accept loop that feeds them. HTTP/2 is not served: Alertmanager,
//! Prometheus, Slack and Twilio all speak HTTP/1.1 to tocsin.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::config::Server;
use crate::daemon::Daemon;

/// Descriptors kept for everything but inbound connections: a quarter of the limit,
/// at least this many ...
const RESERVE_MIN: u64 = 64;
/// ... and at most this many (the store, a few pooled connections per channel and
/// scrape target, logs: far fewer than this).
const RESERVE_MAX: u64 = 1024;

/// How often the "connection limit reached" warning may repeat.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How long requests in progress get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The descriptor limit after raising it, and how many connections fit under it.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// The process's descriptor limit (soft), after raising it to the hard limit.
    pub descriptors: u64,
    /// Connections held at most: `server.max_connections`, or fewer when the
    /// descriptors left after the reserve are fewer.
    pub connections: usize,
}

/// Raises the descriptor limit to the hard limit (Linux starts most processes at
/// 1024 soft) and sizes the connection limit to what is left after the reserve.
pub fn budget(max_connections: usize) -> Budget {
    let descriptors = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|e| {
            tracing::warn!(error = %e, "cannot raise the open-file limit; keeping it");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft)
        })
        .unwrap_or(1024);
    let reserve = (descriptors / 4).clamp(RESERVE_MIN, RESERVE_MAX);
    let fit = usize::try_from(descriptors.saturating_sub(reserve)).unwrap_or(usize::MAX);
    Budget {
        descriptors,
        connections: max_connections.min(fit).max(1),
    }
}

/// Serves `router` on `listener` until `stop` says so, then lets requests in
/// progress finish (for a while).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &Server,
    limit: usize,
    daemon: Daemon,
    mut stop: watch::Receiver<bool>,
) {
    let held = Arc::new(Held::new(limit));
    let metrics = daemon.metrics();
    metrics.http_connection_limit.set(limit as i64);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let warnings = Warnings::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e, &warnings).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let (conn, shed) = held.admit();
        if let Some(shed) = shed {
            metrics
                .http_connections_shed
                .get_or_create(&vec![("kind".to_string(), shed.name().to_string())])
                .inc();
            warnings.limit_reached(limit, shed);
        }
        metrics.http_connections.set(held.open() as i64);
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(IdleTimeout::new(stream, settings.idle_timeout));
        let service = {
            let (held, router) = (held.clone(), router.clone());
            let id = conn.id;
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                let busy = Busy::start(&held, id);
                // Who is calling, as axum's `ConnectInfo` gives it (the limit on
                // refused credentials is per address).
                request.extensions_mut().insert(ConnectInfo(peer));
                let answer = tower::ServiceExt::oneshot(router.clone(), request);
                async move {
                    let answer = answer.await;
                    drop(busy);
                    answer
                }
            })
        };
        let served = graceful.watch(http.serve_connection(io, service));
        let daemon = daemon.clone();
        let held = held.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = served => {}
                // Closed to make room: dropping the connection closes the socket.
                _ = conn.evicted.notified() => {}
            }
            held.close(conn.id);
            daemon.metrics().http_connections.set(held.open() as i64);
        });
    }
    drop(listener);
    // Idle connections close at once; requests in progress get a grace period.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stopping with requests still in progress");
    }
}

/// An accept that failed. A connection reset before it was taken is nothing; out
/// of descriptors (EMFILE, ENFILE) despite the reserve is worth a warning, and a
/// short pause so closing connections give some back.
async fn accept_failed(e: io::Error, warnings: &Warnings) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) {
        return;
    }
    warnings.accept_failed(&e);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Which connection was closed to make room for a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shed {
    /// One with no request in progress: the usual case, and the whole of a flood of
    /// idle or slow-header connections.
    Idle,
    /// Every held connection was working on a request: the one that started first.
    Busy,
}

impl Shed {
    fn name(self) -> &'static str {
        match self {
            Shed::Idle => "idle",
            Shed::Busy => "busy",
        }
    }
}

/// The connections held, in the order they would be closed to make room: idle ones
/// (by when they became idle), then busy ones (by when their request started).
struct Held {
    limit: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// A counter giving each connection an id and each change of state its place in
    /// `order`.
    next: u64,
    /// Connections held and not yet closed to make room.
    open: HashMap<u64, Slot>,
    /// `(busy, since) → id`: the first entry is the next to close.
    order: BTreeMap<(bool, u64), u64>,
}

struct Slot {
    key: (bool, u64),
    evicted: Arc<Notify>,
}

/// A connection's registration: its id, and the signal that it must close.
struct Conn {
    id: u64,
    evicted: Arc<Notify>,
}

impl Held {
    fn new(limit: usize) -> Held {
        Held {
            limit,
            table: Mutex::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> usize {
        self.table().open.len()
    }

    /// Registers a new connection, closing the first in line if the limit is
    /// reached.
    fn admit(&self) -> (Conn, Option<Shed>) {
        let mut t = self.table();
        let mut shed = None;
        if t.open.len() >= self.limit
            && let Some(((busy, _), victim)) = t.order.pop_first()
            && let Some(slot) = t.open.remove(&victim)
        {
            // `notify_one` keeps the signal if the connection's task is not
            // waiting yet.
            slot.evicted.notify_one();
            shed = Some(if busy { Shed::Busy } else { Shed::Idle });
        }
        t.next += 1;
        let (id, key) = (t.next, (false, t.next));
        let evicted = Arc::new(Notify::new());
        t.open.insert(
            id,
            Slot {
                key,
                evicted: evicted.clone(),
            },
        );
        t.order.insert(key, id);
        (Conn { id, evicted }, shed)
    }

    /// Moves connection `id` to the back of the idle or of the busy line.
    fn mark(&self, id: u64, busy: bool) {
        let mut t = self.table();
        t.next += 1;
        let key = (busy, t.next);
        let Some(slot) = t.open.get_mut(&id) else {
            return; // already closed to make room
        };
        let old = std::mem::replace(&mut slot.key, key);
        t.order.remove(&old);
        t.order.insert(key, id);
    }

    /// Forgets connection `id` once its socket is closed.
    fn close(&self, id: u64) {
        let mut t = self.table();
        if let Some(slot) = t.open.remove(&id) {
            t.order.remove(&slot.key);
        }
    }
}

/// A request in progress on a connection: it is busy until this is dropped.
struct Busy {
    held: Arc<Held>,
    id: u64,
}

impl Busy {
    fn start(held: &Arc<Held>, id: u64) -> Busy {
        held.mark(id, true);
        Busy {
            held: held.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.held.mark(self.id, false);
    }
}

/// The warnings of the listener, at most one per [`WARN_EVERY`] each, counting
/// what happened in between: a flood must not become a flood of log lines.
#[derive(Default)]
struct Warnings {
    /// When the last limit warning was logged (ms since the first), plus one; 0
    /// for never.
    limit_logged: AtomicU64,
    shed_idle: AtomicU64,
    shed_busy: AtomicU64,
    accept_logged: AtomicU64,
    accept_failed: AtomicU64,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl Warnings {
    /// Whether a warning last logged at `last` may be logged again now.
    fn due(&self, last: &AtomicU64) -> bool {
        let started = *self.started.get_or_init(std::time::Instant::now);
        let now = started.elapsed().as_millis() as u64 + 1;
        let before = last.load(Ordering::Relaxed);
        (before == 0 || now.saturating_sub(before) >= WARN_EVERY.as_millis() as u64)
            && last
                .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn limit_reached(&self, limit: usize, shed: Shed) {
        match shed {
            Shed::Idle => self.shed_idle.fetch_add(1, Ordering::Relaxed),
            Shed::Busy => self.shed_busy.fetch_add(1, Ordering::Relaxed),
        };
        if self.due(&self.limit_logged) {
            let idle = self.shed_idle.swap(0, Ordering::Relaxed);
            let busy = self.shed_busy.swap(0, Ordering::Relaxed);
            tracing::warn!(
                limit,
                closed_idle = idle,
                closed_busy = busy,
                "connection limit reached: closing the connections idle longest to make room \
                 (server.max_connections; counts since the last warning)"
            );
        }
    }

    fn accept_failed(&self, e: &io::Error) {
        self.accept_failed.fetch_add(1, Ordering::Relaxed);
        if self.due(&self.accept_logged) {
            let failed = self.accept_failed.swap(0, Ordering::Relaxed);
            tracing::error!(error = %e, failed, "cannot accept connections (counts since the last warning)");
        }
    }
}

/// A socket closed when no byte has moved either way for a while: hyper's header
/// timeout covers a request that is slow to start, this covers an upload that
/// stalls and a client that stops reading its answer. Progress either way resets
/// it (tokio-io-timeout times each direction on its own, which would cut a long
/// answer to a client that sends nothing meanwhile).
struct IdleTimeout {
    stream: TcpStream,
    after: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, after: Duration) -> IdleTimeout {
        IdleTimeout {
            stream,
            after,
            deadline: Box::pin(tokio::time::sleep(after)),
        }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.after;
        self.deadline.as_mut().reset(next);
    }

    /// What a direction that cannot move now answers: still waiting, or timed out.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no data moved within server.idle_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.waiting(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.waiting(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_the_connection_idle_longest_makes_room() {
        let held = Arc::new(Held::new(3));
        let (a, none) = held.admit();
        assert_eq!(none, None);
        let (b, _) = held.admit();
        let (c, _) = held.admit();
        // `a` sends a request: it is busy now, `b` idle longest.
        let busy = Busy::start(&held, a.id);
        let (_d, shed) = held.admit();
        assert_eq!(shed, Some(Shed::Idle));
        assert_eq!(held.open(), 3);
        // `b`'s task is told to close.
        let told = b.evicted.notified();
        tokio_test_now(told);
        // `a` finishes: it is idle after `c` became idle, so `c` goes next.
        drop(busy);
        let (_e, shed) = held.admit();
        assert_eq!(shed, Some(Shed::Idle));
        tokio_test_now(c.evicted.notified());
        // Closing a connection that was already shed changes nothing.
        held.close(b.id);
        assert_eq!(held.open(), 3);
    }

    #[test]
    fn when_every_connection_is_busy_the_oldest_request_is_cut() {
        let held = Arc::new(Held::new(2));
        let (a, _) = held.admit();
        let (b, _) = held.admit();
        let _first = Busy::start(&held, a.id);
        let _second = Busy::start(&held, b.id);
        let (_c, shed) = held.admit();
        assert_eq!(shed, Some(Shed::Busy));
        tokio_test_now(a.evicted.notified());
    }

    /// The notification was stored: a waiter is woken at once.
    fn tokio_test_now(notified: tokio::sync::futures::Notified<'_>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), notified)
                .await
                .expect("told to close");
        });
    }
}
