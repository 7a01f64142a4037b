//! `volguard serve`: wiring of TLS, policy sources, the two listeners and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use super::LogFormat;
use crate::certs;
use crate::server::tls::{self, ReloadingResolver};
use crate::server::{self, AppState};
use crate::source;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// HTTPS address of the webhook.
    #[arg(long, env = "VOLGUARD_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// PEM certificate chain (reloaded when it changes). Without --tls-cert/--tls-key a
    /// development CA and certificate are generated into certs/dev/.
    #[arg(long, env = "VOLGUARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (reloaded when it changes).
    #[arg(long, env = "VOLGUARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (e.g. the apiserver's).
    #[arg(long, env = "VOLGUARD_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Policy file, reloaded when it changes (including kubelet's ConfigMap symlink swap).
    #[arg(
        long,
        env = "VOLGUARD_POLICY_FILE",
        conflicts_with = "policy_configmap"
    )]
    pub policy_file: Option<PathBuf>,
    /// ConfigMap NAMESPACE/NAME (key policy.yaml) watched through the Kubernetes API.
    #[arg(long, env = "VOLGUARD_POLICY_CONFIGMAP", value_parser = parse_ns_name)]
    pub policy_configmap: Option<(String, String)>,
    /// Plain-HTTP address for /livez, /readyz and /metrics.
    #[arg(long, env = "VOLGUARD_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    #[arg(long, env = "VOLGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Also log plain allows (one line per request) at info level.
    #[arg(long, env = "VOLGUARD_LOG_ALLOWED")]
    pub log_allowed: bool,
    /// Largest accepted request body in bytes (413 above it).
    #[arg(long, env = "VOLGUARD_MAX_BODY_BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds to keep serving after SIGTERM before draining (lets the endpoint leave the Service).
    #[arg(long, env = "VOLGUARD_DRAIN_DELAY", default_value_t = 5.0)]
    pub drain_delay: f64,
    /// Seconds to let in-flight requests finish once draining starts.
    #[arg(long, env = "VOLGUARD_SHUTDOWN_TIMEOUT", default_value_t = 20.0)]
    pub shutdown_timeout: f64,
    /// Seconds between checks of the certificate and policy files for changes.
    #[arg(long, env = "VOLGUARD_RELOAD_INTERVAL", default_value_t = 1.0)]
    pub reload_interval: f64,
    /// Seconds a client has to send a request's headers before the connection is closed.
    #[arg(long, env = "VOLGUARD_HEADER_READ_TIMEOUT", default_value_t = 5.0)]
    pub header_read_timeout: f64,
    /// Directory of the generated development certificate.
    #[arg(long, env = "VOLGUARD_DEV_CERT_DIR", default_value = "certs/dev")]
    pub dev_cert_dir: PathBuf,
}

fn parse_ns_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn main(args: ServeArgs) -> ExitCode {
    init_tracing(args.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The certificate and key files in use, and whether they were generated for development.
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    dev_ca: Option<PathBuf>,
}

fn dev_certificate(dir: &Path) -> Result<CertFiles, String> {
    let files = CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        dev_ca: Some(dir.join("ca.crt")),
    };
    let reusable = match (std::fs::read(&files.cert), std::fs::read(&files.key)) {
        (Ok(c), Ok(k)) => {
            tls::certified_key(&c, &k, "tls.crt", "tls.key").is_ok() && dir.join("ca.crt").exists()
        }
        _ => false,
    };
    if reusable {
        tracing::info!(dir = %dir.display(), "reusing the development certificate");
    } else {
        let bundle = certs::generate(&certs::dev_sans(), 365).map_err(|e| e.to_string())?;
        certs::write_bundle(dir, &bundle).map_err(|e| e.to_string())?;
        tracing::info!(dir = %dir.display(), "generated a development CA and certificate for localhost, 127.0.0.1 and ::1");
    }
    Ok(files)
}

async fn run(args: ServeArgs) -> Result<(), String> {
    let state = AppState::new(args.max_body_bytes, args.log_allowed);
    let interval = Duration::from_secs_f64(args.reload_interval.max(0.05));

    // TLS: everything is checked before listening.
    let files = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => CertFiles {
            cert: c.clone(),
            key: k.clone(),
            dev_ca: None,
        },
        _ => dev_certificate(&args.dev_cert_dir)?,
    };
    let cert_pem = tls::read(&files.cert).map_err(|e| e.to_string())?;
    let key_pem = tls::read(&files.key).map_err(|e| e.to_string())?;
    let cert_name = files.cert.display().to_string();
    let key_name = files.key.display().to_string();
    let key = tls::certified_key(&cert_pem, &key_pem, &cert_name, &key_name)
        .map_err(|e| e.to_string())?;
    let resolver = Arc::new(ReloadingResolver::new(key));
    let tls_config = tls::server_config(resolver.clone(), args.client_ca.as_deref())
        .map_err(|e| e.to_string())?;
    state.metrics.cert_reload("success");

    // Policy: an invalid file at start is fatal; later changes are validated and swapped.
    let mut background = Vec::new();
    if let Some(path) = &args.policy_file {
        let text =
            std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let name = path.display().to_string();
        let source_name = format!("file {name}");
        state
            .policies
            .apply_text(&String::from_utf8_lossy(&text), &name, &source_name)
            .map_err(|e| e.to_string())?;
        let store = state.policies.clone();
        background.push(tokio::spawn(source::watch_files(
            vec![path.clone()],
            interval,
            vec![text],
            move |contents| {
                let _ =
                    store.apply_text(&String::from_utf8_lossy(&contents[0]), &name, &source_name);
            },
        )));
    } else if let Some((ns, name)) = &args.policy_configmap {
        let client = kube::Client::try_default().await.map_err(|e| {
            format!("--policy-configmap {ns}/{name}: no Kubernetes API configuration: {e}")
        })?;
        background.push(tokio::spawn(source::configmap::watch(
            client,
            ns.clone(),
            name.clone(),
            state.policies.clone(),
        )));
    } else {
        state
            .policies
            .apply_default("no --policy-file or --policy-configmap");
    }

    // Certificate rotation: swap the key pair when both files parse and match.
    {
        let resolver = resolver.clone();
        let metrics = state.metrics.clone();
        background.push(tokio::spawn(source::watch_files(
            vec![files.cert.clone(), files.key.clone()],
            interval,
            vec![cert_pem, key_pem],
            move |contents| match tls::certified_key(&contents[0], &contents[1], &cert_name, &key_name) {
                Ok(k) => {
                    resolver.replace(k);
                    metrics.cert_reload("success");
                    tracing::info!(cert = %cert_name, "TLS certificate reloaded");
                }
                Err(e) => {
                    metrics.cert_reload("invalid");
                    tracing::warn!(error = %e, "new TLS certificate rejected; keeping the current one");
                }
            },
        )));
    }

    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .map_err(|e| format!("--admin-listen {}: {e}", args.admin_listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_local = admin.local_addr().map_err(|e| e.to_string())?;

    let handle = axum_server::Handle::new();
    // TCP_NODELAY: without it small HTTP/2 frames wait for the peer's delayed ACK (~40 ms).
    let gate_closed = Arc::new(AtomicBool::new(false));
    let acceptor = Gate {
        inner: RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls_config)))
            .acceptor(NoDelayAcceptor::new()),
        closed: gate_closed.clone(),
    };
    let mut server = axum_server::from_tcp(listener)
        .map_err(|e| e.to_string())?
        .acceptor(acceptor)
        .handle(handle.clone());
    server
        .http_builder()
        .http1()
        .header_read_timeout(Duration::from_secs_f64(args.header_read_timeout.max(0.1)));
    let app = server::router(state.clone());
    let webhook = tokio::spawn(server.serve(app.into_make_service()));

    let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin_app = server::admin_router(state.clone());
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_app)
            .with_graceful_shutdown(async {
                let _ = admin_stop_rx.await;
            })
            .await
    });

    state.ready.tls_loaded.store(true, Ordering::Release);
    tracing::info!(listen = %local, admin = %admin_local, version = env!("CARGO_PKG_VERSION"), "volguard serving");
    if let Some(ca) = &files.dev_ca {
        let host = if local.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            local.ip().to_string()
        };
        tracing::info!(
            "try: curl --cacert {} -H 'Content-Type: application/json' --data @examples/admission-review.json https://{host}:{}/validate",
            ca.display(),
            local.port()
        );
    }

    wait_for_signal().await;
    // 1. Keep serving while the endpoint is removed from the Service: /readyz says 503 and
    //    HTTP/1.1 answers carry `Connection: close`, so no idle keep-alive connection is left.
    state.ready.shutting_down.store(true, Ordering::Release);
    tracing::info!(
        drain_delay_s = args.drain_delay,
        "SIGTERM: still serving while the endpoint is removed"
    );
    tokio::time::sleep(Duration::from_secs_f64(args.drain_delay.max(0.0))).await;
    // 2. Stop taking connections: new sockets are closed before the TLS handshake (the client
    //    has sent nothing), and handshakes already under way get a moment to finish, because
    //    the graceful shutdown below would drop them although a TLS 1.3 client may already
    //    have sent its request.
    gate_closed.store(true, Ordering::Release);
    tokio::time::sleep(HANDSHAKE_LINGER).await;
    // 3. Finish in-flight requests, then stop.
    let grace = Duration::from_secs_f64(args.shutdown_timeout.max(0.0));
    tracing::info!(
        in_flight_connections = handle.connection_count(),
        "draining"
    );
    handle.graceful_shutdown(Some(grace));
    let _ = admin_stop_tx.send(());
    match webhook.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("webhook server: {e}")),
        Err(e) => return Err(format!("webhook server task: {e}")),
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_task).await;
    for t in background {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long handshakes already under way may take to finish once new connections are refused.
const HANDSHAKE_LINGER: Duration = Duration::from_millis(500);

/// Closes newly accepted sockets once `closed` is set (before any TLS byte is read, so the
/// client knows nothing was sent); otherwise hands them to the TLS acceptor.
#[derive(Clone)]
struct Gate<A> {
    inner: A,
    closed: Arc<AtomicBool>,
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

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
