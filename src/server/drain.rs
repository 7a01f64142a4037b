//! Graceful shutdown: keep serving while the endpoint leaves the Service, stop taking
//! connections, finish what is in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, Version, header};
use axum::response::Response;

use super::AppState;

/// How long handshakes already under way may take to finish once new connections are refused.
pub const HANDSHAKE_LINGER: Duration = Duration::from_millis(500);

/// Once shutting down, HTTP/1.1 answers carry `Connection: close`, so no keep-alive
/// connection is left idle (and closed under a request already on its way) when the drain
/// starts. HTTP/2 connections get a GOAWAY from the graceful shutdown instead. Called by each
/// handler of the TLS port on its answer (a plain call: a middleware layer would box every
/// request's future and clone the route's service).
pub fn close_when_draining(st: &AppState, version: Version, res: &mut Response) {
    if version <= Version::HTTP_11 && st.ready.shutting_down.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The signals the server acts on. Created before serving, so that SIGHUP never takes its
/// default action (ending the process) from then on.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// SIGHUP: re-read the policy file and the certificate now.
    Reload,
    /// SIGTERM or SIGINT: drain and stop.
    Stop(&'static str),
}

impl Signals {
    pub fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop("SIGTERM"),
            _ = self.int.recv() => Asked::Stop("SIGINT"),
            _ = self.hup.recv() => Asked::Reload,
        }
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
