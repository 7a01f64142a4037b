//! Bare-stack baseline for the volguard load benchmark.
//!
//! Same stack as `volguard serve`: tokio multi-thread runtime, axum 0.8, axum-server 0.9 with
//! rustls 0.23 (ring provider, TLS 1.2 + 1.3, ALPN h2 then http/1.1), the same 5 s HTTP/1
//! header-read timeout. `POST /validate` drains the request body (up to 8 MiB, as volguard's
//! limit) and answers a fixed allowing AdmissionReview without parsing anything: the floor no
//! webhook on this stack can beat.
//!
//! Usage: volguard-baseline --listen 127.0.0.1:18444 --tls-cert tls.crt --tls-key tls.key [--nodelay]
//!
//! `--nodelay` sets TCP_NODELAY on accepted sockets (axum-server's `NoDelayAcceptor`); off by
//! default to match `volguard serve`. bench/load.sh --nodelay-baseline shows what it changes.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const ALLOW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}"#;
const MAX_BODY: usize = 8 * 1024 * 1024;

async fn validate(body: Body) -> Response {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(_) => ([(header::CONTENT_TYPE, "application/json")], ALLOW).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad body\n").into_response(),
    }
}

fn usage() -> ! {
    eprintln!("usage: volguard-baseline --listen ADDR --tls-cert FILE --tls-key FILE [--nodelay]");
    std::process::exit(2)
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:18444".parse().unwrap();
    let (mut cert, mut key) = (None, None);
    let mut nodelay = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = val().parse().unwrap_or_else(|_| usage()),
            "--tls-cert" => cert = Some(val()),
            "--tls-key" => key = Some(val()),
            // Off by default, as in `volguard serve` (axum-server does not set TCP_NODELAY).
            "--nodelay" => nodelay = true,
            _ => usage(),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        usage()
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("read --tls-cert")
        .filter_map(Result::ok)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).expect("read --tls-key");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("certificate and key");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = Router::new()
            .route("/validate", post(validate))
            .route("/livez", get(|| async { "ok\n" }));
        let handle = axum_server::Handle::new();
        let tls = RustlsConfig::from_config(Arc::new(config));
        let serve = if nodelay {
            let mut server = axum_server::bind(listen)
                .acceptor(RustlsAcceptor::new(tls).acceptor(NoDelayAcceptor::new()))
                .handle(handle.clone());
            server
                .http_builder()
                .http1()
                .header_read_timeout(Duration::from_secs(5));
            tokio::spawn(server.serve(app.into_make_service()))
        } else {
            let mut server = axum_server::bind_rustls(listen, tls).handle(handle.clone());
            server
                .http_builder()
                .http1()
                .header_read_timeout(Duration::from_secs(5));
            tokio::spawn(server.serve(app.into_make_service()))
        };
        eprintln!("volguard-baseline serving on https://{listen}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        handle.graceful_shutdown(Some(Duration::from_secs(5)));
        let _ = serve.await;
    });
}
