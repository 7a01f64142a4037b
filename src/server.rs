//! The webhook server: a shell that owns its lifecycle. [`run`] takes a [`ServeConfig`],
//! loads TLS and the first policy (any error before listening is fatal), serves the HTTPS
//! webhook and the plain-HTTP admin port, reloads certificates and policy, and drains on
//! SIGTERM/SIGINT. Handlers decode, ask the engine, encode and record metrics; no policy
//! logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::source::{self, PolicyStore};

pub mod drain;
pub mod handlers;
pub mod health;
pub mod metrics;
pub mod tls;

use health::Readiness;
use metrics::Metrics;

/// Default request body limit: the apiserver allows 3 MiB objects and an UPDATE carries two.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound on the time spent on one request when the apiserver gives no `?timeout=`.
pub const MAX_REQUEST_TIME: Duration = Duration::from_secs(30);

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The embedded default policy.
    Embedded,
    /// A file, polled for changes.
    File(PathBuf),
    /// A ConfigMap `namespace/name` (key `policy.yaml`) watched through the Kubernetes API.
    ConfigMap { namespace: String, name: String },
}

/// Everything `run` needs; the command line maps its flags to this.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: tls::TlsFiles,
    pub client_ca: Option<PathBuf>,
    pub policy: PolicySource,
    pub log_allowed: bool,
    pub max_body_bytes: usize,
    /// After SIGTERM, keep serving (readyz 503) this long so the endpoint leaves the Service.
    pub drain_delay: Duration,
    /// Then give in-flight requests this long.
    pub shutdown_timeout: Duration,
    /// How often certificate and policy files are checked.
    pub reload_interval: Duration,
    pub header_read_timeout: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Policy(#[from] crate::engine::PolicyError),
    #[error("{}: cannot read: {source}", path.display())]
    PolicyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--policy-configmap {namespace}/{name}: no Kubernetes API configuration: {source}")]
    Kube {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("{what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("webhook server: {0}")]
    Serve(std::io::Error),
    #[error("webhook server task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub policies: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
    pub max_body_bytes: usize,
    pub log_allowed: bool,
}

impl AppState {
    pub fn new(max_body_bytes: usize, log_allowed: bool) -> Self {
        let metrics = Arc::new(Metrics::new());
        AppState {
            policies: Arc::new(PolicyStore::new(metrics.clone())),
            metrics,
            ready: Arc::new(Readiness::default()),
            max_body_bytes,
            log_allowed,
        }
    }
}

/// The TLS port: `POST /validate`, plus `/livez` and `/readyz` for kubelet HTTPS probes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(handlers::validate))
        .route("/mutate", post(handlers::mutate))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            drain::close_when_draining,
        ))
        .with_state(state)
}

/// The plain-HTTP admin port: `/livez`, `/readyz`, `/metrics`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(handlers::metrics))
        .with_state(state)
}

/// Runs the server on its own multi-threaded runtime until a signal has drained it.
pub fn run_blocking(config: ServeConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(run(config))
}

/// Starts the policy source: an invalid policy at start is fatal; later changes are
/// validated and swapped (the last good one stays in force).
async fn start_policy_source(
    config: &ServeConfig,
    state: &AppState,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), Error> {
    match &config.policy {
        PolicySource::File(path) => {
            let text = std::fs::read(path).map_err(|source| Error::PolicyFile {
                path: path.clone(),
                source,
            })?;
            let name = path.display().to_string();
            let source_name = format!("file {name}");
            state
                .policies
                .apply_text(&String::from_utf8_lossy(&text), &name, &source_name)?;
            let store = state.policies.clone();
            background.push(tokio::spawn(source::file::watch(
                vec![path.clone()],
                config.reload_interval,
                vec![text],
                move |contents| {
                    let _ = store.apply_text(
                        &String::from_utf8_lossy(&contents[0]),
                        &name,
                        &source_name,
                    );
                },
            )));
        }
        PolicySource::ConfigMap { namespace, name } => {
            let client = kube::Client::try_default()
                .await
                .map_err(|source| Error::Kube {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            background.push(tokio::spawn(source::configmap::watch(
                client,
                namespace.clone(),
                name.clone(),
                state.policies.clone(),
            )));
        }
        PolicySource::Embedded => {
            state
                .policies
                .apply_default("no --policy-file or --policy-configmap");
        }
    }
    Ok(())
}

/// Serves until SIGTERM or SIGINT, then drains (see [`drain`]).
pub async fn run(config: ServeConfig) -> Result<(), Error> {
    let state = AppState::new(config.max_body_bytes, config.log_allowed);

    // TLS: everything is checked before listening.
    let files = config.tls.resolve()?;
    let loaded = tls::LoadedKey::read(&files)?;
    let resolver = Arc::new(tls::ReloadingResolver::new(loaded.key));
    let tls_config = tls::server_config(resolver.clone(), config.client_ca.as_deref())?;
    state.metrics.cert_reload("success");

    let mut background = Vec::new();
    start_policy_source(&config, &state, &mut background).await?;
    background.push(tokio::spawn(tls::watch(
        files.clone(),
        config.reload_interval,
        loaded.pems,
        resolver,
        state.metrics.clone(),
        state.ready.clone(),
    )));

    let listener = std::net::TcpListener::bind(config.listen).map_err(|source| Error::Bind {
        what: "--listen",
        addr: config.listen,
        source,
    })?;
    listener.set_nonblocking(true).map_err(Error::Serve)?;
    let admin = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .map_err(|source| Error::Bind {
            what: "--admin-listen",
            addr: config.admin_listen,
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    let admin_local = admin.local_addr().map_err(Error::Serve)?;

    let handle = axum_server::Handle::new();
    let gate = drain::gate(tls_config);
    let gate_closed = gate.closed.clone();
    let mut server = axum_server::from_tcp(listener)
        .map_err(Error::Serve)?
        .acceptor(gate)
        .handle(handle.clone());
    server
        .http_builder()
        .http1()
        .header_read_timeout(config.header_read_timeout);
    let app = router(state.clone());
    let webhook = tokio::spawn(server.serve(app.into_make_service()));

    let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin_app = admin_router(state.clone());
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

    drain::wait_for_signal().await;
    drain::drain(
        &state,
        &handle,
        &gate_closed,
        config.drain_delay,
        config.shutdown_timeout,
    )
    .await;
    let _ = admin_stop_tx.send(());
    webhook.await?.map_err(Error::Serve)?;
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_task).await;
    for t in background {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
