//! The server's lifecycle: [`run`] reads as its steps. Load (TLS and the first policy, with
//! their reloaders), bind both ports, start the webhook, start the admin port, wait for a
//! signal, drain and stop. Anything that can fail at start fails before a port serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use super::{
    AppState, Error, HTTP1_MAX_BUF, HTTP2_CONN_WINDOW, HTTP2_KEEPALIVE_INTERVAL,
    HTTP2_KEEPALIVE_TIMEOUT, HTTP2_STREAM_WINDOW, ServeConfig, admin_router, conn, drain, router,
    start_policy_source, tls,
};

/// Serves until SIGTERM or SIGINT, then drains (see [`drain`]); SIGHUP re-reads the policy
/// file and the certificate. Everything that can fail at start (TLS, the first policy, the
/// ports) fails before anything is served.
pub async fn run(config: ServeConfig) -> Result<(), Error> {
    // From here on SIGHUP no longer ends the process.
    let mut signals = drain::Signals::new().map_err(Error::Serve)?;
    let state = AppState::new(&config)?;
    let loaded = load(&config, &state).await?;
    let listeners = Listeners::bind(&config)?;
    let addrs = (listeners.webhook_addr, listeners.admin_addr);
    let webhook = start_webhook(&config, &state, listeners.webhook, loaded.tls)?;
    let admin = axum_server::Handle::new();
    start_admin(listeners.admin, &config, state.clone(), admin.clone())?;
    state.ready.tls_loaded.store(true, Ordering::Release);
    announce(&state, addrs, loaded.dev_ca.as_deref());
    wait_for_stop(&mut signals, &loaded.reread_now).await;
    stop(&config, &state, webhook, admin, loaded.background).await
}

/// What is read and checked before listening: TLS and the first policy, and the tasks that
/// reload them.
struct Loaded {
    tls: rustls::ServerConfig,
    /// The development CA, when `volguard` made its own certificate.
    dev_ca: Option<PathBuf>,
    /// SIGHUP pokes the file pollers, so a re-read goes through the same validation,
    /// metrics and logs as any change they notice themselves.
    reread_now: tokio::sync::watch::Sender<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

async fn load(config: &ServeConfig, state: &AppState) -> Result<Loaded, Error> {
    let files = config.tls.resolve()?;
    let key = tls::LoadedKey::read(&files)?;
    let resolver = Arc::new(tls::ReloadingResolver::new(key.key));
    let tls = tls::server_config(resolver.clone(), config.client_ca.as_deref())?;
    state.metrics.cert_reload("success");
    let (reread_now, reread) = tokio::sync::watch::channel(());
    let mut background = Vec::new();
    start_policy_source(config, state, &reread, &mut background).await?;
    let dev_ca = files.dev_ca.clone();
    background.push(tokio::spawn(tls::watch(
        files,
        config.reload_interval,
        key.pems,
        resolver,
        state.metrics.clone(),
        state.ready.clone(),
        reread,
    )));
    Ok(Loaded {
        tls,
        dev_ca,
        reread_now,
        background,
    })
}

/// Both ports, bound before either serves.
struct Listeners {
    webhook: std::net::TcpListener,
    admin: std::net::TcpListener,
    webhook_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl Listeners {
    fn bind(config: &ServeConfig) -> Result<Self, Error> {
        let bind = |what, addr| {
            let l = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind {
                what,
                addr,
                source,
            })?;
            l.set_nonblocking(true).map_err(Error::Serve)?;
            let local = l.local_addr().map_err(Error::Serve)?;
            Ok::<_, Error>((l, local))
        };
        let (webhook, webhook_addr) = bind("--listen", config.listen)?;
        let (admin, admin_addr) = bind("--admin-listen", config.admin_listen)?;
        Ok(Listeners {
            webhook,
            admin,
            webhook_addr,
            admin_addr,
        })
    }
}

/// The webhook server, serving.
struct Webhook {
    handle: axum_server::Handle<SocketAddr>,
    /// Set once the listener stops accepting (see [`drain`]).
    gate_closed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The TLS port on the main runtime: connection guard (limits, timeouts), HTTP/1.1 and
/// HTTP/2 settings, the router.
fn start_webhook(
    config: &ServeConfig,
    state: &AppState,
    listener: std::net::TcpListener,
    tls_config: rustls::ServerConfig,
) -> Result<Webhook, Error> {
    let handle = axum_server::Handle::new();
    let tls_acceptor = RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(tls_config)))
        .handshake_timeout(config.tls_handshake_timeout);
    let guard = conn::Guard::new(tls_acceptor, conn_limits(config), None);
    let gate_closed = guard.closed.clone();
    let mut server = axum_server::from_tcp(listener)
        .map_err(Error::Serve)?
        .acceptor(guard)
        .handle(handle.clone())
        // A connection that sends no complete request this long after its handshake is
        // closed (TLS then silence, a partial HTTP/2 preface).
        .first_request_timeout(config.header_read_timeout);
    let builder = server.http_builder();
    builder
        .http1()
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(HTTP1_MAX_BUF);
    builder
        .http2()
        .max_concurrent_streams(config.http2_max_streams)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONN_WINDOW)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    let app = router(state.clone());
    let task = tokio::spawn(server.serve(app.into_make_service()));
    Ok(Webhook {
        handle,
        gate_closed,
        task,
    })
}

fn conn_limits(config: &ServeConfig) -> conn::Limits {
    conn::Limits {
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
    }
}

fn announce(
    state: &AppState,
    (local, admin): (SocketAddr, SocketAddr),
    dev_ca: Option<&std::path::Path>,
) {
    tracing::info!(listen = %local, admin = %admin, version = env!("CARGO_PKG_VERSION"), evaluation_workers = state.executor.workers(), "volguard serving");
    if let Some(ca) = dev_ca {
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
}

/// Until SIGTERM or SIGINT; each SIGHUP pokes the pollers.
async fn wait_for_stop(signals: &mut drain::Signals, reread_now: &tokio::sync::watch::Sender<()>) {
    loop {
        match signals.next().await {
            drain::Asked::Reload => {
                tracing::info!(
                    "SIGHUP: re-reading the policy file and the certificate (a ConfigMap policy is watched already)"
                );
                reread_now.send_replace(());
            }
            drain::Asked::Stop(name) => {
                tracing::info!(signal = name, "stopping");
                return;
            }
        }
    }
}

/// Drains the webhook, then stops the admin port and the reloaders.
async fn stop(
    config: &ServeConfig,
    state: &AppState,
    webhook: Webhook,
    admin: axum_server::Handle<SocketAddr>,
    background: Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), Error> {
    // The drain is bounded whatever is in flight: connections still open after the
    // shutdown timeout are dropped (an evaluation running on a worker is not waited for).
    let bound = config.drain_delay + drain::HANDSHAKE_LINGER + config.shutdown_timeout + STOP_GRACE;
    let stopped = tokio::time::timeout(bound, async {
        drain::drain(
            state,
            &webhook.handle,
            &webhook.gate_closed,
            config.drain_delay,
            config.shutdown_timeout,
        )
        .await;
        webhook.task.await
    })
    .await;
    admin.shutdown();
    for t in background {
        t.abort();
    }
    match stopped {
        Ok(result) => result?.map_err(Error::Serve)?,
        Err(_) => {
            tracing::warn!("connections still open after the shutdown timeout; stopping anyway")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Past the configured drain delay and shutdown timeout, the most the stop may take.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// The admin port on its own thread and runtime: `/livez` never waits behind webhook work.
/// Same header-read, first-request and idle timeouts as the webhook, and a connection cap.
fn start_admin(
    listener: std::net::TcpListener,
    config: &ServeConfig,
    state: AppState,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<(), Error> {
    let limits = conn_limits(config);
    let header_read_timeout = config.header_read_timeout;
    let max_connections = config.admin_max_connections.max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    std::thread::Builder::new()
        .name("volguard-admin".into())
        .spawn(move || {
            rt.block_on(async move {
                let guard = conn::Guard::new(DefaultAcceptor::new(), limits, Some(max_connections));
                let mut server = match axum_server::from_tcp(listener) {
                    Ok(s) => s
                        .acceptor(guard)
                        .handle(handle)
                        .first_request_timeout(header_read_timeout),
                    Err(e) => {
                        tracing::error!(error = %e, "admin port");
                        return;
                    }
                };
                server
                    .http_builder()
                    .http1()
                    .header_read_timeout(header_read_timeout)
                    .max_buf_size(HTTP1_MAX_BUF);
                if let Err(e) = server.serve(admin_router(state).into_make_service()).await {
                    tracing::error!(error = %e, "admin port stopped");
                }
            })
        })
        .map_err(Error::Admin)?;
    Ok(())
}
