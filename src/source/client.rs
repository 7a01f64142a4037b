//! The Kubernetes API client of `serve --policy-configmap` and `audit`, set up as kubectl
//! (client-go) sets its own up:
//!
//! - `--kubeconfig` (with `--context`), else `$KUBECONFIG` or `~/.kube/config`, else the
//!   in-cluster service account (its CA, and its token re-read from the projected file, which
//!   kube does every minute, so kubelet's rotation is followed);
//! - client certificates, bearer tokens and token files, exec credential plugins: kube's
//!   kubeconfig support;
//! - a proxy: the kubeconfig's `proxy-url` if set, else `HTTPS_PROXY` (for an `https://`
//!   server; `HTTP_PROXY` for `http://`) unless `NO_PROXY` names the API server, matched
//!   against the **API server's** host as Go's `golang.org/x/net/http/httpproxy`
//!   (`config.useProxy`) does, with loopback never proxied. kube 5 matches `NO_PROXY` against
//!   the proxy's own URL and ignores the proxy variables for the in-cluster config, so the
//!   proxy is decided here;
//! - a read timeout, so a half-open connection (a NAT entry gone, a blackholed API server)
//!   fails the request instead of hanging it until the Job's `activeDeadlineSeconds`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: cannot read kubeconfig: {message}")]
    Read { path: String, message: String },
    #[error("{source_name}: {message}")]
    Config {
        source_name: String,
        message: String,
    },
    #[error("no Kubernetes API configuration: {0}")]
    NoConfig(String),
    #[error("proxy {proxy}: {message}")]
    Proxy { proxy: String, message: String },
    #[error("Kubernetes API client for {url}: {message}")]
    Client { url: String, message: String },
}

/// The client for `kubeconfig`/`context` (see the module documentation) with `read_timeout`
/// between reads of a response (and before its headers), and for connecting (at most 30 s).
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    read_timeout: Duration,
) -> Result<Client, ClientError> {
    let config = config(kubeconfig, context, read_timeout).await?;
    let url = config.cluster_url.to_string();
    Client::try_from(config).map_err(|e| ClientError::Client {
        url,
        message: e.to_string(),
    })
}

/// The [`Config`] behind [`client`].
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    read_timeout: Duration,
) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let (file, name) = match kubeconfig {
        Some(path) => (
            Some(Kubeconfig::read_from(path).map_err(|e| ClientError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?),
            path.display().to_string(),
        ),
        None => match Kubeconfig::read() {
            Ok(k) => (Some(k), "kubeconfig".to_owned()),
            // --context names a kubeconfig context: no in-cluster fallback then.
            Err(e) if context.is_some() => {
                return Err(ClientError::Read {
                    path: "kubeconfig".into(),
                    message: e.to_string(),
                });
            }
            Err(_) => (None, String::new()),
        },
    };
    let mut config =
        match file {
            Some(file) => {
                let explicit_proxy = kubeconfig_proxy(&file, context);
                let mut config = Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| ClientError::Config {
                        source_name: name,
                        message: e.to_string(),
                    })?;
                config.proxy_url =
                    match explicit_proxy {
                        Some(p) => Some(p.parse().map_err(|e: http::uri::InvalidUri| {
                            ClientError::Proxy {
                                proxy: p.clone(),
                                message: e.to_string(),
                            }
                        })?),
                        None => env_proxy(&config.cluster_url, &Env::process())?,
                    };
                config
            }
            None => {
                let mut config =
                    Config::incluster().map_err(|e| ClientError::NoConfig(e.to_string()))?;
                config.proxy_url = env_proxy(&config.cluster_url, &Env::process())?;
                config
            }
        };
    config.apply_debug_overrides();
    config.read_timeout = Some(read_timeout);
    // Connecting (TCP, a proxy's CONNECT, TLS) gets as long, at most kube's 30 s.
    config.connect_timeout = Some(read_timeout.min(Duration::from_secs(30)));
    // The timeout counts from the request, not from when a pooled connection went idle.
    config.reset_reader_on_write = true;
    Ok(config)
}

/// The `proxy-url` of the cluster the context (or the current context) uses.
fn kubeconfig_proxy(file: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let context_name = context
        .map(str::to_owned)
        .or_else(|| file.current_context.clone())?;
    let cluster_name = file
        .contexts
        .iter()
        .find(|c| c.name == context_name)?
        .context
        .as_ref()?
        .cluster
        .clone();
    file.clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?
        .proxy_url
        .clone()
        .filter(|p| !p.is_empty())
}

/// The proxy variables, read once.
#[derive(Debug, Default, Clone)]
pub struct Env {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Env {
    pub fn process() -> Env {
        // Upper case first, as Go's httpproxy.FromEnvironment reads them.
        let get = |upper: &str, lower: &str| {
            std::env::var(upper)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(lower).ok().filter(|v| !v.is_empty()))
        };
        Env {
            https_proxy: get("HTTPS_PROXY", "https_proxy"),
            http_proxy: get("HTTP_PROXY", "http_proxy"),
            no_proxy: get("NO_PROXY", "no_proxy"),
        }
    }
}

/// The proxy for requests to `server` from the environment, as Go's
/// `httpproxy.Config.ProxyFunc` decides it (client-go's default `Proxy` is
/// `http.ProxyFromEnvironment`): `HTTPS_PROXY` for https, `HTTP_PROXY` for http, none for
/// `localhost` or a loopback address, none when `NO_PROXY` matches the server's host.
/// A proxy without a scheme means `http://`, as in Go.
pub fn env_proxy(server: &http::Uri, env: &Env) -> Result<Option<http::Uri>, ClientError> {
    let https = server.scheme_str() != Some("http");
    let Some(proxy) = (if https {
        env.https_proxy.clone()
    } else {
        env.http_proxy.clone()
    }) else {
        return Ok(None);
    };
    let host = server
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = server
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 })
        .to_string();
    if !use_proxy(&host, &port, env.no_proxy.as_deref().unwrap_or("")) {
        return Ok(None);
    }
    let with_scheme = if proxy.contains("://") {
        proxy.clone()
    } else {
        format!("http://{proxy}")
    };
    with_scheme
        .parse()
        .map(Some)
        .map_err(|e: http::uri::InvalidUri| ClientError::Proxy {
            proxy,
            message: e.to_string(),
        })
}

/// Go's `httpproxy` `config.useProxy` for `host:port` under `no_proxy` (entries parsed as
/// its `config.init` does): comma separated, empty ones ignored; `*` matches everything; a
/// CIDR or an IP (with an optional port) matches an IP host; `example.com` matches it and its
/// subdomains, `.example.com` and `*.example.com` only subdomains, optionally with a port.
pub fn use_proxy(host: &str, port: &str, no_proxy: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    if host == "localhost" {
        return false;
    }
    let ip: Option<IpAddr> = host.parse().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return false;
    }
    for entry in no_proxy.split(',') {
        let p = entry.trim().to_ascii_lowercase();
        if p.is_empty() {
            continue;
        }
        if p == "*" {
            return false;
        }
        if let Some((net, bits)) = p.split_once('/')
            && let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u8>())
        {
            if ip.is_some_and(|ip| in_cidr(ip, net, bits)) {
                return false;
            }
            continue;
        }
        let (phost, pport) = split_host_port(&p).unwrap_or((p.as_str(), ""));
        if phost.is_empty() {
            continue;
        }
        let port_ok = pport.is_empty() || pport == port;
        if let Ok(pip) = phost.parse::<IpAddr>() {
            if ip == Some(pip) && port_ok {
                return false;
            }
            continue;
        }
        let phost = phost
            .strip_prefix('*')
            .filter(|h| h.starts_with('.'))
            .unwrap_or(phost);
        let match_host = !phost.starts_with('.');
        let suffix = if match_host {
            format!(".{phost}")
        } else {
            phost.to_owned()
        };
        if (host.ends_with(&suffix) || (match_host && host == &suffix[1..])) && port_ok {
            return false;
        }
    }
    true
}

/// Go's `net.SplitHostPort`, for what NO_PROXY entries hold: `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        return Some((h, p));
    }
    let (h, p) = s.split_once(':')?;
    (!p.contains(':')).then_some((h, p))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// An API error as kubectl would say it: the Status message, its reason and code; any
/// other error with its chain of causes (connection refused, TLS...).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!("{} ", s.reason)
            };
            let message = if s.message.is_empty() {
                "no message".to_owned()
            } else {
                s.message.clone()
            };
            format!("{reason}({}): {message}", s.code)
        }
        e => chain(e),
    }
}

/// An error and its causes, each once.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's golang.org/x/net/http/httpproxy proxy_test.go (`TestUseProxy` and the
    /// NO_PROXY rows of `proxyForURLTests`), for the host:port of an API server.
    #[test]
    fn no_proxy_as_go_matches_it() {
        let np = "foobar.com, .barbaz.net, *.wildcard.io, 10.0.0.0/8, 192.168.1.1, example.org:6443, ::2, [::3]:6443, 2001:db8::/32";
        for (host, port, proxied) in [
            ("localhost", "443", false),
            ("127.0.0.1", "6443", false),
            ("::1", "443", false),
            ("foobar.com", "443", false),
            ("www.foobar.com", "443", false),
            ("foofoobar.com", "443", true),
            ("barbaz.net", "443", true),
            ("www.barbaz.net", "443", false),
            ("wildcard.io", "443", true),
            ("api.wildcard.io", "443", false),
            ("10.96.0.1", "443", false),
            ("11.0.0.1", "443", true),
            ("192.168.1.1", "443", false),
            ("192.168.1.2", "443", true),
            ("example.org", "6443", false),
            ("example.org", "443", true),
            ("::2", "443", false),
            ("::3", "6443", false),
            ("::3", "443", true),
            ("2001:db8::1", "443", false),
            ("2001:db9::1", "443", true),
            ("kubernetes.default.svc", "443", true),
        ] {
            assert_eq!(use_proxy(host, port, np), proxied, "{host}:{port}");
        }
        assert!(!use_proxy("anything", "443", "*"));
        // Empty entries (a trailing comma) are ignored, not an error.
        assert!(!use_proxy("a.example", "443", "x.example,,a.example,"));
        // A domain entry is a suffix match on the host text, an IP host's too.
        assert!(!use_proxy("10.0.0.1", "443", "0.1"));
    }

    #[test]
    fn proxy_for_the_api_server_not_for_the_proxy() {
        let env = Env {
            https_proxy: Some("proxy.corp:3128".into()),
            http_proxy: Some("http://plain.corp:8080".into()),
            no_proxy: Some("10.0.0.0/8,.svc".into()),
        };
        let p = |s: &str| {
            env_proxy(&s.parse().unwrap(), &env)
                .unwrap()
                .map(|u| u.to_string())
        };
        assert_eq!(
            p("https://api.example.com:6443").as_deref(),
            Some("http://proxy.corp:3128/")
        );
        assert_eq!(
            p("http://api.example.com").as_deref(),
            Some("http://plain.corp:8080/")
        );
        assert_eq!(p("https://10.96.0.1:443"), None, "in NO_PROXY's CIDR");
        assert_eq!(p("https://kubernetes.default.svc"), None);
        assert_eq!(p("https://127.0.0.1:6443"), None, "loopback");
        assert_eq!(
            env_proxy(&"https://x".parse().unwrap(), &Env::default()).unwrap(),
            None
        );
    }
}
