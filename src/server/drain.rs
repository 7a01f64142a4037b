//! Graceful shutdown: keep serving while the endpoint leaves the Service, stop taking
//! connections, finish what is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Version, header};
use axum::response::Response;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use super::AppState;

/// How long handshakes already under way may take to finish once new connections are refused.
const HANDSHAKE_LINGER: Duration = Duration::from_millis(500);

/// Once shutting down, HTTP/1.1 answers carry `Connection: close`, so no keep-alive
/// connection is left idle (and closed under a request already on its way) when the drain
/// starts. HTTP/2 connections get a GOAWAY from the graceful shutdown instead.
pub async fn close_when_draining(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h1 = req.version() <= Version::HTTP_11;
    let mut res = next.run(req).await;
    if h1 && st.ready.shutting_down.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// The webhook's acceptor: TCP_NODELAY (without it small HTTP/2 frames wait for the peer's
/// delayed ACK, ~40 ms), then TLS; once `closed` is set, new sockets are closed before any
/// TLS byte is read, so the client knows nothing was sent.
#[derive(Clone)]
pub struct Gate<A> {
    inner: A,
    pub closed: Arc<AtomicBool>,
}

/// The TLS acceptor behind the gate.
pub fn gate(tls: rustls::ServerConfig) -> Gate<RustlsAcceptor<NoDelayAcceptor>> {
    Gate {
        inner: RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls)))
            .acceptor(NoDelayAcceptor::new()),
        closed: Arc::new(AtomicBool::new(false)),
    }
}

impl<A, S> Accept<tokio::net::TcpStream, S> for Gate<A>
where
    A: Accept<tokio::net::TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: 'static,
    A::Service: 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        if self.closed.load(Ordering::Acquire) {
            drop(stream);
            return Box::pin(async {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "shutting down",
                ))
            });
        }
        Box::pin(self.inner.accept(stream, service))
    }
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The three steps after the signal.
pub async fn drain(
    state: &AppState,
    handle: &axum_server::Handle<std::net::SocketAddr>,
    gate_closed: &AtomicBool,
    drain_delay: Duration,
    shutdown_timeout: Duration,
) {
    // 1. Keep serving while the endpoint is removed from the Service: /readyz says 503 and
    //    HTTP/1.1 answers carry `Connection: close`, so no idle keep-alive connection is left.
    state.ready.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        drain_delay_s = drain_delay.as_secs_f64(),
        "signal received: still serving while the endpoint is removed"
    );
    tokio::time::sleep(drain_delay).await;
    // 2. Stop taking connections: new sockets are closed before the TLS handshake, and
    //    handshakes already under way get a moment to finish, because the graceful shutdown
    //    below would drop them although a TLS 1.3 client may already have sent its request.
    gate_closed.store(true, Ordering::Release);
    tokio::time::sleep(HANDSHAKE_LINGER).await;
    // 3. Finish in-flight requests, then stop.
    tracing::info!(
        in_flight_connections = handle.connection_count(),
        "draining"
    );
    handle.graceful_shutdown(Some(shutdown_timeout));
}
