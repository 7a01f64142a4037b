//! Connection guards: no connection may hold the server's memory or a socket forever.
//!
//! Every accepted socket is wrapped in a [`GuardedIo`] (below TLS, so the handshake is
//! covered too) that shares a [`ConnState`] with the connection's service
//! ([`ConnService`]). The guard closes the connection when
//! - it is idle: no request in flight and nothing received for `idle_timeout` (a TLS client
//!   that sends nothing, a partial HTTP/2 preface, an idle keep-alive connection);
//! - a write to the socket has made no progress for `write_timeout` (a client that does not
//!   read its HTTP/1.1 answer);
//! - an answer has not been taken by the connection within `write_timeout` of being ready
//!   (an HTTP/2 client that keeps its flow-control window at zero).
//!
//! The service puts the peer's address in each request ([`Peer`]), for the body budget's
//! per-peer share ([`super::budget`]).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use axum::http::{Request, Response};
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Timeouts enforced on every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Limits {
    /// How often an otherwise quiet connection checks its deadlines.
    fn tick(&self) -> Duration {
        (self.idle_timeout.min(self.write_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// What the socket guard and the connection's service share.
pub struct ConnState {
    start: Instant,
    /// Milliseconds since `start` of the last byte received or request started/finished.
    last_activity_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Answers handed to the connection and not yet taken by it: id → when ready.
    pending: Mutex<Vec<(u64, Instant)>>,
    next_id: AtomicU64,
    /// Set to close the connection to make room for a new one (connection cap).
    evict: AtomicBool,
    /// The connection task, to wake it when evicted.
    waker: Mutex<Option<Waker>>,
    /// The client's address (None when unknown).
    peer: Option<IpAddr>,
}

/// The address of the client that sent a request (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

impl ConnState {
    #[cfg(test)]
    fn new() -> Self {
        Self::with_peer(None)
    }

    fn with_peer(peer: Option<IpAddr>) -> Self {
        ConnState {
            peer,
            start: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            evict: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Closes the connection soon (its task is woken).
    fn evict(&self) {
        self.evict.store(true, Ordering::Release);
        if let Some(w) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn idle_for(&self, now: Instant) -> Duration {
        let last =
            self.start + Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    fn oldest_pending(&self) -> Option<Instant> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.iter().map(|(_, t)| *t).min()
    }

    /// Why the connection must be closed now, if it must.
    fn verdict(
        &self,
        limits: &Limits,
        write_blocked_since: Option<Instant>,
    ) -> Option<&'static str> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Acquire) == 0 && self.idle_for(now) >= limits.idle_timeout
        {
            return Some("idle");
        }
        if write_blocked_since
            .is_some_and(|t| now.saturating_duration_since(t) >= limits.write_timeout)
        {
            return Some("client does not read");
        }
        if self
            .oldest_pending()
            .is_some_and(|t| now.saturating_duration_since(t) >= limits.write_timeout)
        {
            return Some("answer not taken by the client");
        }
        None
    }
}

/// A socket with deadlines; see the module documentation.
pub struct GuardedIo<S> {
    inner: S,
    conn: Arc<ConnState>,
    limits: Limits,
    tick: Pin<Box<tokio::time::Sleep>>,
    write_blocked_since: Option<Instant>,
    /// Under a connection cap: the task's waker is kept so an eviction can wake it.
    evictable: bool,
}

impl<S> GuardedIo<S> {
    fn new(inner: S, conn: Arc<ConnState>, limits: Limits, evictable: bool) -> Self {
        GuardedIo {
            inner,
            conn,
            limits,
            tick: Box::pin(tokio::time::sleep(limits.tick())),
            write_blocked_since: None,
            evictable,
        }
    }

    /// Registers the tick with the task; when it fires, checks the deadlines.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.evictable {
            if self.conn.evict.load(Ordering::Acquire) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "too many connections: closing an idle one",
                ));
            }
            let mut w = self.conn.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        while self.tick.as_mut().poll(cx).is_ready() {
            if let Some(why) = self.conn.verdict(&self.limits, self.write_blocked_since) {
                tracing::debug!(reason = why, "closing connection");
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            let next = Instant::now() + self.limits.tick();
            self.tick.as_mut().reset(next);
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.conn.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> GuardedIo<S> {
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
        progressed: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(Ok(v)) => {
                if progressed(&v) {
                    self.write_blocked_since = None;
                }
                Poll::Ready(Ok(v))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.write_blocked_since.get_or_insert_with(Instant::now);
                match self.check(cx) {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, r, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, r, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.after_write(cx, r, |_| true)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's service: counts requests in flight and tracks each answer until the
/// connection has taken all of it.
#[derive(Clone)]
pub struct ConnService<S> {
    inner: S,
    conn: Arc<ConnState>,
}

impl<S, B, ResB> tower_service::Service<Request<B>> for ConnService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: http_body::Body,
{
    type Response = Response<TrackedBody<ResB>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let conn = self.conn.clone();
        if let Some(ip) = conn.peer {
            req.extensions_mut().insert(Peer(ip));
        }
        conn.touch();
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(conn.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
            conn.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((id, Instant::now()));
            Ok(res.map(|inner| TrackedBody {
                inner,
                id,
                _in_flight: guard,
            }))
        })
    }
}

/// One request in flight on a connection; finished when dropped.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// An answer body; when the connection drops it (sent, or the stream reset), the answer is
/// no longer pending.
pub struct TrackedBody<B> {
    inner: B,
    id: u64,
    _in_flight: InFlight,
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        let conn = &self._in_flight.0;
        let mut p = conn.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|(id, _)| *id != self.id);
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The acceptor for both listeners: refuses sockets once `closed` (shutdown); past
/// `max_connections` open, closes the oldest connection with no request in flight to make
/// room (so a flood of idle or slow connections cannot lock out a health probe), or
/// refuses the new one if every connection is busy; sets TCP_NODELAY (without it small HTTP/2 frames wait for
/// the peer's delayed ACK, ~40 ms), and wraps the socket and the service in the guards
/// before handing them to `inner` (TLS on the webhook port, nothing on the admin port).
#[derive(Clone)]
pub struct Guard<A> {
    inner: A,
    limits: Limits,
    cap: Option<Arc<Cap>>,
    pub closed: Arc<AtomicBool>,
}

/// Open connections under a cap, oldest first.
struct Cap {
    max: usize,
    open: Mutex<Vec<Weak<ConnState>>>,
}

impl Cap {
    /// Registers a new connection; false when it must be refused.
    fn admit(&self, conn: &Arc<ConnState>) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|w| w.strong_count() > 0);
        let live = open
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.evict.load(Ordering::Acquire))
            .collect::<Vec<_>>();
        if live.len() >= self.max {
            let Some(victim) = live
                .iter()
                .find(|c| c.in_flight.load(Ordering::Acquire) == 0)
            else {
                return false;
            };
            victim.evict();
        }
        open.push(Arc::downgrade(conn));
        true
    }
}

impl<A> Guard<A> {
    pub fn new(inner: A, limits: Limits, max_connections: Option<usize>) -> Self {
        Guard {
            inner,
            limits,
            cap: max_connections.map(|max| {
                Arc::new(Cap {
                    max: max.max(1),
                    open: Mutex::new(Vec::new()),
                })
            }),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<A, S> Accept<tokio::net::TcpStream, S> for Guard<A>
where
    A: Accept<GuardedIo<tokio::net::TcpStream>, ConnService<S>>,
    A::Future: Send + 'static,
    A::Stream: 'static,
    A::Service: 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let refuse = |why: &'static str| -> Self::Future {
            Box::pin(async move { Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)) })
        };
        if self.closed.load(Ordering::Acquire) {
            drop(stream);
            return refuse("shutting down");
        }
        // An IPv4 client on a dual-stack socket is one peer whatever the address family.
        let peer = stream.peer_addr().ok().map(|a| a.ip().to_canonical());
        let conn = Arc::new(ConnState::with_peer(peer));
        if let Some(cap) = &self.cap
            && !cap.admit(&conn)
        {
            drop(stream);
            return refuse("too many connections, all busy");
        }
        if let Err(e) = stream.set_nodelay(true) {
            return Box::pin(async move { Err(e) });
        }
        let io = GuardedIo::new(stream, conn.clone(), self.limits, self.cap.is_some());
        let service = ConnService {
            inner: service,
            conn,
        };
        Box::pin(self.inner.accept(io, service))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connection_times_out_but_not_with_a_request_in_flight() {
        let limits = Limits {
            idle_timeout: Duration::from_millis(200),
            write_timeout: Duration::from_secs(5),
        };
        let conn = Arc::new(ConnState::new());
        let (a, _b) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(a, conn.clone(), limits, false);
        let mut buf = [0u8; 8];
        // Busy: a request in flight keeps the connection open past the idle timeout.
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let busy = tokio::time::timeout(
            Duration::from_millis(400),
            tokio::io::AsyncReadExt::read(&mut io, &mut buf),
        )
        .await;
        assert!(busy.is_err(), "closed with a request in flight: {busy:?}");
        conn.in_flight.fetch_sub(1, Ordering::AcqRel);
        conn.touch();
        let err = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "idle");
        // Not before the idle timeout since the request ended.
        assert!(conn.idle_for(Instant::now()) >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn pending_answer_times_out() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_millis(100),
        };
        let conn = Arc::new(ConnState::new());
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.pending.lock().unwrap().push((0, Instant::now()));
        let (a, _b) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(a, conn.clone(), limits, false);
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let err = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "answer not taken by the client");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn over_the_cap_the_oldest_idle_connection_makes_room() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
        };
        let cap = Cap {
            max: 2,
            open: Mutex::new(Vec::new()),
        };
        let busy = Arc::new(ConnState::new());
        busy.in_flight.fetch_add(1, Ordering::AcqRel);
        let idle = Arc::new(ConnState::new());
        assert!(cap.admit(&busy));
        assert!(cap.admit(&idle));
        let (a, _b) = tokio::io::duplex(64);
        let mut io = GuardedIo::new(a, idle.clone(), limits, true);
        let mut buf = [0u8; 8];
        let reading =
            tokio::spawn(async move { tokio::io::AsyncReadExt::read(&mut io, &mut buf).await });
        tokio::task::yield_now().await;
        let newcomer = Arc::new(ConnState::new());
        assert!(cap.admit(&newcomer), "the idle one makes room");
        let err = tokio::time::timeout(Duration::from_secs(5), reading)
            .await
            .expect("the evicted connection is woken at once")
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("too many connections"), "{err}");
        assert!(!busy.evict.load(Ordering::Acquire));
        // Now both open connections are busy: a new one is refused.
        newcomer.in_flight.fetch_add(1, Ordering::AcqRel);
        assert!(!cap.admit(&Arc::new(ConnState::new())));
    }

    #[tokio::test]
    async fn blocked_write_times_out() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_millis(100),
        };
        let conn = Arc::new(ConnState::new());
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        // The peer never reads: the pipe fills and the write blocks.
        let (a, _b) = tokio::io::duplex(16);
        let mut io = GuardedIo::new(a, conn, limits, false);
        let err = tokio::io::AsyncWriteExt::write_all(&mut io, &[0u8; 64])
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "client does not read");
    }
}
