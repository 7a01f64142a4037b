//! `volguard serve`: flags (and their environment variables) mapped to a
//! [`ServeConfig`]; the server owns everything from there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::ValueEnum;

use crate::server::log::LogSink;
use crate::server::{self, PolicySource, ServeConfig, tls::TlsFiles};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

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
    #[arg(long, env = "VOLGUARD_POLICY_CONFIGMAP", value_parser = super::parse_ns_name)]
    pub policy_configmap: Option<(String, String)>,
    /// Seconds a deleted policy ConfigMap's policy stays in force (so a delete-then-create
    /// never enforces the embedded default in between); then the embedded default.
    #[arg(long, env = "VOLGUARD_POLICY_DELETE_GRACE", default_value_t = 60.0)]
    pub policy_delete_grace: f64,
    /// Seconds the Kubernetes API may stay silent: a response (before its headers or
    /// between reads), or the policy watch (the API server sends a bookmark about every
    /// minute); then the request fails or the watch is re-opened.
    #[arg(long, env = "VOLGUARD_KUBE_READ_TIMEOUT", default_value_t = 150.0)]
    pub kube_read_timeout: f64,
    /// Plain-HTTP address for /livez, /readyz and /metrics.
    #[arg(long, env = "VOLGUARD_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    #[arg(long, env = "VOLGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds between writes of buffered log lines to stderr (0: write each line at once).
    /// Lines never wait longer; a process killed outright loses at most this much of its log.
    #[arg(long, env = "VOLGUARD_LOG_FLUSH_INTERVAL", default_value_t = 0.05)]
    pub log_flush_interval: f64,
    /// Also log plain allows (one line per request) at info level.
    #[arg(long, env = "VOLGUARD_LOG_ALLOWED")]
    pub log_allowed: bool,
    /// Seconds to keep serving after SIGTERM before draining (lets the endpoint leave the Service).
    #[arg(long, env = "VOLGUARD_DRAIN_DELAY", default_value_t = 5.0)]
    pub drain_delay: f64,
    /// Seconds to let in-flight requests finish once draining starts.
    #[arg(long, env = "VOLGUARD_SHUTDOWN_TIMEOUT", default_value_t = 20.0)]
    pub shutdown_timeout: f64,
    /// Seconds between checks of the certificate and policy files for changes.
    #[arg(long, env = "VOLGUARD_RELOAD_INTERVAL", default_value_t = 1.0)]
    pub reload_interval: f64,
    /// Limits that keep hostile or broken clients from stalling the server.
    #[command(flatten)]
    pub limits: Box<LimitArgs>,
    /// Directory of the generated development certificate.
    #[arg(long, env = "VOLGUARD_DEV_CERT_DIR", default_value = "certs/dev")]
    pub dev_cert_dir: PathBuf,
}

/// Load and connection limits (boxed: they would make `Command` lopsided).
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Largest accepted request body in bytes (413 above it).
    #[arg(long, env = "VOLGUARD_MAX_BODY_BYTES", default_value_t = server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds a client has to send a request's headers (and a new connection its first
    /// request) before the connection is closed.
    #[arg(long, env = "VOLGUARD_HEADER_READ_TIMEOUT", default_value_t = 5.0)]
    pub header_read_timeout: f64,
    /// Evaluation worker threads (0: one per available core), plus one kept for small
    /// bodies (<= 256 KiB). Bodies up to --inline-evaluation-max-bytes are judged on the
    /// connection's own thread instead.
    #[arg(long, env = "VOLGUARD_MAX_CONCURRENT_EVALUATIONS", default_value_t = 0)]
    pub max_concurrent_evaluations: usize,
    /// Bodies up to this many bytes are judged on the thread that read them (bounded work,
    /// cheaper than the hand-off to an evaluation worker); larger ones go to the workers.
    /// 0 sends every body to the workers.
    #[arg(long, env = "VOLGUARD_INLINE_EVALUATION_MAX_BYTES", default_value_t = server::DEFAULT_INLINE_EVALUATION_MAX_BYTES)]
    pub inline_evaluation_max_bytes: usize,
    /// Evaluations waiting for a worker; more get 503 with Retry-After at once.
    #[arg(long, env = "VOLGUARD_MAX_QUEUED_EVALUATIONS", default_value_t = server::DEFAULT_MAX_QUEUED_EVALUATIONS)]
    pub max_queued_evaluations: usize,
    /// Bytes of request and response bodies held across all connections; requests beyond it
    /// get 503 at once instead of being buffered.
    #[arg(long, env = "VOLGUARD_BODY_MEMORY_BUDGET_BYTES", default_value_t = server::DEFAULT_BODY_MEMORY_BUDGET_BYTES)]
    pub body_memory_budget_bytes: usize,
    /// Of the body memory budget, bytes that only small bodies (a Content-Length up to
    /// 256 KiB) may use: large or unfinished bodies can never take them. Default: a sixth of
    /// the budget (8 MiB).
    #[arg(long, env = "VOLGUARD_BODY_MEMORY_SMALL_RESERVE_BYTES")]
    pub body_memory_small_reserve_bytes: Option<usize>,
    /// Bytes of the body memory budget that the bodies of one client address may hold
    /// (0: no cap). Default: half the budget (24 MiB).
    #[arg(long, env = "VOLGUARD_BODY_MEMORY_PER_PEER_BYTES")]
    pub body_memory_per_peer_bytes: Option<usize>,
    /// Seconds a request body has to arrive (also bounded by the request's ?timeout=);
    /// later, the request is dropped with 408. Set it to the webhook's timeoutSeconds.
    #[arg(long, env = "VOLGUARD_BODY_TIMEOUT", default_value_t = server::DEFAULT_BODY_TIMEOUT.as_secs_f64())]
    pub body_timeout: f64,
    /// Seconds a connection with no request in flight may stay silent before it is closed.
    #[arg(long, env = "VOLGUARD_IDLE_TIMEOUT", default_value_t = 120.0)]
    pub idle_timeout: f64,
    /// Seconds the TLS handshake may take.
    #[arg(long, env = "VOLGUARD_TLS_HANDSHAKE_TIMEOUT", default_value_t = 5.0)]
    pub tls_handshake_timeout: f64,
    /// Seconds a client has to take an answer (read it, or open its HTTP/2 window) before
    /// the connection is closed.
    #[arg(long, env = "VOLGUARD_WRITE_TIMEOUT", default_value_t = 10.0)]
    pub write_timeout: f64,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "VOLGUARD_HTTP2_MAX_STREAMS", default_value_t = server::DEFAULT_HTTP2_MAX_STREAMS)]
    pub http2_max_streams: u32,
    /// Open connections on the admin port; past it the oldest one with no request in flight
    /// is closed to make room (a new one is refused only if all are busy).
    #[arg(long, env = "VOLGUARD_ADMIN_MAX_CONNECTIONS", default_value_t = server::DEFAULT_ADMIN_MAX_CONNECTIONS)]
    pub admin_max_connections: usize,
}

/// Logs go to stderr through a [`LogSink`] (batched writes, bounded memory); a panic flushes
/// it before the panic message is printed.
fn init_tracing(format: LogFormat, flush_interval: Duration) -> LogSink {
    use tracing_subscriber::EnvFilter;
    let sink = LogSink::stderr(flush_interval)
        .or_else(|_| LogSink::stderr(Duration::ZERO))
        .expect("a log sink without a thread cannot fail");
    let on_panic = sink.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.flush();
        previous(info);
    }));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(sink.writer());
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder
            .fmt_fields(super::log_fields::PlainFields)
            .try_init(),
    };
    sink
}

fn secs(s: f64, min: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.max(min) } else { min })
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsFiles::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsFiles::Dev {
                dir: self.dev_cert_dir.clone(),
            },
        };
        let policy = match (&self.policy_file, &self.policy_configmap) {
            (Some(path), _) => PolicySource::File(path.clone()),
            (None, Some((namespace, name))) => {
                let mut watch = crate::source::configmap::WatchConfig::new(namespace, name);
                watch.delete_grace = secs(self.policy_delete_grace, 0.0);
                watch.idle_timeout = secs(self.kube_read_timeout, 0.5);
                PolicySource::ConfigMap(Box::new(watch))
            }
            (None, None) => PolicySource::Embedded,
        };
        ServeConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            tls,
            client_ca: self.client_ca.clone(),
            policy,
            log_allowed: self.log_allowed,
            max_body_bytes: self.limits.max_body_bytes,
            drain_delay: secs(self.drain_delay, 0.0),
            shutdown_timeout: secs(self.shutdown_timeout, 0.0),
            reload_interval: secs(self.reload_interval, 0.05),
            header_read_timeout: secs(self.limits.header_read_timeout, 0.1),
            max_concurrent_evaluations: self.limits.max_concurrent_evaluations,
            max_queued_evaluations: self.limits.max_queued_evaluations,
            inline_evaluation_max_bytes: self.limits.inline_evaluation_max_bytes,
            body_memory_budget_bytes: self.limits.body_memory_budget_bytes,
            body_memory_small_reserve_bytes: self
                .limits
                .body_memory_small_reserve_bytes
                .unwrap_or(self.limits.body_memory_budget_bytes / 6),
            body_memory_per_peer_bytes: self
                .limits
                .body_memory_per_peer_bytes
                .unwrap_or(self.limits.body_memory_budget_bytes / 2),
            body_timeout: secs(self.limits.body_timeout, 0.1).min(server::MAX_REQUEST_TIME),
            idle_timeout: secs(self.limits.idle_timeout, 0.1),
            tls_handshake_timeout: secs(self.limits.tls_handshake_timeout, 0.1),
            write_timeout: secs(self.limits.write_timeout, 0.1),
            http2_max_streams: self.limits.http2_max_streams.max(1),
            admin_max_connections: self.limits.admin_max_connections.max(1),
        }
    }
}

pub fn run(args: ServeArgs) -> ExitCode {
    let args_log_format = args.log_format;
    let log = init_tracing(
        args.log_format,
        secs(args.log_flush_interval, 0.0).min(Duration::from_secs(10)),
    );
    let code = match server::run_blocking(args.config()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: structured for a JSON log, plain on a terminal.
            match args_log_format {
                LogFormat::Json => tracing::error!("{e}"),
                LogFormat::Text => {
                    log.flush();
                    eprintln!("error: {e}");
                }
            }
            log.flush();
            ExitCode::from(2)
        }
    };
    log.close();
    code
}
