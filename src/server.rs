//! The webhook server: a shell that owns its lifecycle. [`run`] takes a [`ServeConfig`],
//! loads TLS and the first policy (any error before listening is fatal), serves the HTTPS
//! webhook and the plain-HTTP admin port, reloads certificates and policy, and drains on
//! SIGTERM/SIGINT. Handlers decode, ask the engine, encode and record metrics; no policy
//! logic lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::source::{self, PolicyStore};

pub mod body;
pub mod budget;
pub mod conn;
pub mod drain;
pub mod executor;
pub mod handlers;
pub mod health;
mod lifecycle;
pub mod log;
pub mod metrics;
mod record;
pub mod tls;

use health::Readiness;
pub use lifecycle::run;
use metrics::Metrics;

/// Default request body limit: the apiserver allows 3 MiB objects and an UPDATE carries two.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound on the time spent on one request when the apiserver gives no `?timeout=`.
pub const MAX_REQUEST_TIME: Duration = Duration::from_secs(30);
/// Default bytes of request and response bodies held across all connections.
/// With the ~10 MiB the process needs besides, this keeps a Pod well inside the chart's
/// 128Mi limit; it still admits 16 requests of the apiserver's largest (3 MiB) objects.
pub const DEFAULT_BODY_MEMORY_BUDGET_BYTES: usize = 48 * 1024 * 1024;
/// Default time a request body has to arrive: the apiserver's default `timeoutSeconds`
/// (`SetDefaults_ValidatingWebhook`, k8s.io/kubernetes pkg/apis/admissionregistration/v1).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest body judged on the async worker that read it instead of the evaluation
/// pool (see [`ServeConfig::inline_evaluation_max_bytes`]).
pub const DEFAULT_INLINE_EVALUATION_MAX_BYTES: usize = 16 * 1024;
/// Default evaluations waiting for a worker before new ones get 503.
pub const DEFAULT_MAX_QUEUED_EVALUATIONS: usize = 64;
/// Default HTTP/2 streams per connection: what one connection can hold in answers its
/// client does not take (the apiserver opens another connection when it needs more).
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 16;
/// Default connections on the admin port.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 64;
/// HTTP/2: while streams are open, a PING this often; no answer within the timeout closes.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-stream and per-connection HTTP/2 receive windows: what a client may send before we
/// read it.
const HTTP2_STREAM_WINDOW: u32 = 256 * 1024;
const HTTP2_CONN_WINDOW: u32 = 1024 * 1024;
/// HTTP/1.1 read buffer (headers); bodies are read into the budget.
const HTTP1_MAX_BUF: usize = 64 * 1024;

/// Where the policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The embedded default policy.
    Embedded,
    /// A file, polled for changes.
    File(PathBuf),
    /// A ConfigMap `namespace/name` (key `policy.yaml`) watched through the Kubernetes API.
    ConfigMap(Box<source::configmap::WatchConfig>),
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
    /// Evaluation worker threads (0: one per available core).
    pub max_concurrent_evaluations: usize,
    /// Evaluations waiting for a worker; beyond it, 503 at once.
    pub max_queued_evaluations: usize,
    /// Bodies up to this many bytes are decoded, judged and encoded on the async worker that
    /// read them: their work is bounded (tens of microseconds for an ordinary Pod, well under
    /// a millisecond for the worst shape that fits; `bench/README.md`), cheaper than the
    /// hand-off to a pool thread and back. Larger ones go to the evaluation pool. 0 sends
    /// every body to the pool.
    pub inline_evaluation_max_bytes: usize,
    /// Bytes of request and response bodies held across all connections; beyond it, 503.
    pub body_memory_budget_bytes: usize,
    /// Of the budget, bytes only small bodies may use ([`budget`]).
    pub body_memory_small_reserve_bytes: usize,
    /// Bytes the bodies of one client address may hold (0: no cap).
    pub body_memory_per_peer_bytes: usize,
    /// A request body must have arrived within this (and within the request's `?timeout=`).
    pub body_timeout: Duration,
    /// A connection with no request in flight and nothing received this long is closed.
    pub idle_timeout: Duration,
    /// The TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// An answer not taken by the client (socket or HTTP/2 window) within this closes the
    /// connection.
    pub write_timeout: Duration,
    /// HTTP/2 concurrent streams per connection.
    pub http2_max_streams: u32,
    /// Open connections on the admin port.
    pub admin_max_connections: usize,
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
    #[error("--policy-configmap {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        source: source::client::ClientError,
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
    #[error("cannot start the evaluation workers: {0}")]
    Workers(std::io::Error),
    #[error("admin server: {0}")]
    Admin(std::io::Error),
}

/// Shared by every handler: one reference count, so the clone axum makes for each
/// extractor and middleware is one atomic increment, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub policies: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
    pub max_body_bytes: usize,
    pub log_allowed: bool,
    pub inline_evaluation_max_bytes: usize,
    pub executor: Arc<executor::Executor>,
    pub budget: Arc<budget::Budget>,
    pub body_timeout: Duration,
}

impl AppState {
    pub fn new(config: &ServeConfig) -> Result<Self, Error> {
        let metrics = Arc::new(Metrics::new());
        let workers = match config.max_concurrent_evaluations {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let m = metrics.clone();
        let executor = executor::Executor::new(
            workers,
            config.max_queued_evaluations,
            Arc::new(move |d| {
                m.shed(match d {
                    executor::Dropped::Gone => "client_gone",
                    executor::Dropped::Late => "deadline",
                })
            }),
        )
        .map_err(Error::Workers)?;
        Ok(AppState(Arc::new(Shared {
            policies: Arc::new(PolicyStore::new(metrics.clone())),
            metrics,
            ready: Arc::new(Readiness::default()),
            max_body_bytes: config.max_body_bytes,
            log_allowed: config.log_allowed,
            inline_evaluation_max_bytes: config.inline_evaluation_max_bytes,
            executor: Arc::new(executor),
            budget: budget::Budget::new(budget::BudgetConfig::new(
                config.body_memory_budget_bytes,
                config.body_memory_small_reserve_bytes,
                config.body_memory_per_peer_bytes,
            )),
            body_timeout: config.body_timeout,
        })))
    }
}

/// The TLS port: `POST /validate`, plus `/livez` and `/readyz` for kubelet HTTPS probes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(handlers::validate))
        .route("/mutate", post(handlers::mutate))
        .route("/livez", get(health::tls_livez))
        .route("/readyz", get(health::tls_readyz))
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

/// What a thread that judges requests runs when it runs out of work (set by the binary).
static IDLE_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what a runtime worker runs before it parks and an evaluation worker before it waits
/// for the next job. The binary (`src/main.rs`) gives back the memory the thread's allocator
/// heap has freed: mimalloc returns freed pages to the OS only when the thread that owns them
/// calls into it again, so without this a burst of large reviews left megabytes resident in
/// idle threads (`src/main.rs` says what the hook does and what it costs). Set once; later
/// calls are ignored.
pub fn set_idle_hook(hook: fn()) {
    let _ = IDLE_HOOK.set(hook);
}

fn idle() {
    if let Some(hook) = IDLE_HOOK.get() {
        hook();
    }
}

/// Runs the server on its own multi-threaded runtime until a signal has drained it.
pub fn run_blocking(config: ServeConfig) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .on_thread_park(idle)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let result = rt.block_on(run(config));
    // Whatever is still running (a connection past the shutdown timeout) must not delay the
    // exit; evaluation threads are not waited for either.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Starts the policy source: an invalid policy at start is fatal; later changes are
/// validated and swapped (the last good one stays in force).
async fn start_policy_source(
    config: &ServeConfig,
    state: &AppState,
    reread: &source::file::Reread,
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
            state.policies.apply_first_text(
                &String::from_utf8_lossy(&text),
                &name,
                &source_name,
            )?;
            let store = state.policies.clone();
            background.push(tokio::spawn(source::file::watch(
                vec![path.clone()],
                config.reload_interval,
                vec![text],
                reread.clone(),
                move |contents| {
                    let _ = store.apply_text(
                        &String::from_utf8_lossy(&contents[0]),
                        &name,
                        &source_name,
                    );
                },
            )));
        }
        PolicySource::ConfigMap(watch) => {
            let client = source::client::client(None, None, watch.idle_timeout)
                .await
                .map_err(|source| Error::Kube {
                    namespace: watch.namespace.clone(),
                    name: watch.name.clone(),
                    source,
                })?;
            background.push(tokio::spawn(source::configmap::watch(
                client,
                (**watch).clone(),
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
