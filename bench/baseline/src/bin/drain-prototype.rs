//! Prototype of a shutdown sequence that loses no in-flight request (for bench/chaos.sh
//! --server drain-prototype). Same stack as the baseline, plus:
//!
//! 1. SIGTERM: keep serving for --drain-delay, but answer every HTTP/1.1 request with
//!    `Connection: close`, so no keep-alive connection is left idle when the drain starts;
//! 2. then stop taking new connections: a gate in front of the TLS acceptor closes newly
//!    accepted sockets before the handshake (the client sees a failed handshake: nothing sent);
//! 3. linger --linger seconds so connections already in their TLS handshake finish it and
//!    are served (axum-server's graceful shutdown drops connections still in the handshake,
//!    and hyper's HTTP/1 graceful shutdown closes connections whose first request is not yet
//!    parsed, which a TLS 1.3 client has already sent);
//! 4. graceful shutdown with a timeout.
//!
//! Usage: drain-prototype --listen ADDR --tls-cert FILE --tls-key FILE [--drain-delay S] [--linger S]
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

const ALLOW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}"#;

async fn validate(body: Body) -> Response {
    match axum::body::to_bytes(body, 8 << 20).await {
        Ok(_) => ([(header::CONTENT_TYPE, "application/json")], ALLOW).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad body\n").into_response(),
    }
}

/// Answers `Connection: close` on HTTP/1.x once draining.
async fn close_when_draining(
    State(draining): State<Arc<AtomicBool>>,
    req: Request,
    next: Next,
) -> Response {
    let h1 = req.version() <= Version::HTTP_11;
    let mut res = next.run(req).await;
    if h1 && draining.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Closes newly accepted sockets once `closed` is set; otherwise delegates.
#[derive(Clone)]
struct Gate<A> {
    inner: A,
    closed: Arc<AtomicBool>,
}

impl<A, S> Accept<TcpStream, S> for Gate<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: 'static,
    A::Service: 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        if self.closed.load(Ordering::Acquire) {
            drop(stream);
            return Box::pin(async {
                Err(io::Error::new(io::ErrorKind::ConnectionAborted, "draining"))
            });
        }
        Box::pin(self.inner.accept(stream, service))
    }
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:18445".parse().unwrap();
    let (mut cert, mut key) = (None, None);
    let (mut drain_delay, mut linger) = (1.0f64, 0.5f64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().expect("a value");
        match a.as_str() {
            "--listen" => listen = v.parse().expect("--listen"),
            "--tls-cert" => cert = Some(v),
            "--tls-key" => key = Some(v),
            "--drain-delay" => drain_delay = v.parse().expect("--drain-delay"),
            "--linger" => linger = v.parse().expect("--linger"),
            _ => panic!("unknown argument {a}"),
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert.expect("--tls-cert"))
            .expect("read --tls-cert")
            .filter_map(Result::ok)
            .collect();
    let key = PrivateKeyDer::from_pem_file(key.expect("--tls-key")).expect("read --tls-key");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let draining = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let app =
            Router::new()
                .route("/validate", post(validate))
                .layer(middleware::from_fn_with_state(
                    draining.clone(),
                    close_when_draining,
                ));
        let handle = axum_server::Handle::new();
        let acceptor = Gate {
            inner: RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(config)))
                .acceptor(NoDelayAcceptor::new()),
            closed: closed.clone(),
        };
        let mut server = axum_server::bind(listen)
            .acceptor(acceptor)
            .handle(handle.clone());
        server
            .http_builder()
            .http1()
            .header_read_timeout(Duration::from_secs(5));
        let serve = tokio::spawn(server.serve(app.into_make_service()));
        eprintln!("drain-prototype serving on https://{listen}");
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        term.recv().await;
        draining.store(true, Ordering::Release);
        tokio::time::sleep(Duration::from_secs_f64(drain_delay)).await;
        closed.store(true, Ordering::Release);
        tokio::time::sleep(Duration::from_secs_f64(linger)).await;
        handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = serve.await;
        eprintln!("stopped");
    });
}
