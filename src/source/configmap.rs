//! The policy from a ConfigMap (key `policy.yaml`), kept in sync through the Kubernetes API
//! with a list, then a watch from the list's resourceVersion, as client-go's reflector does
//! (`k8s.io/client-go/tools/cache` `Reflector.ListAndWatch`): `allowWatchBookmarks`, the
//! watch re-opened from the last resourceVersion seen when the server ends it
//! (`timeoutSeconds`) or the connection breaks, a new list when the resourceVersion is too
//! old (410 Gone, or an `ERROR` event carrying a 410 Status).
//!
//! What the source is doing is exported (see [`super::PolicyObserver`]): the time of the
//! last successful sync (a list, a watch opened, any event including `BOOKMARK`, which the
//! API server's watch cache sends about every minute) and, while failing, the error class.
//! A watch silent for longer than the idle timeout is presumed dead (a half-open
//! connection) and re-opened.
//!
//! A ConfigMap (or key) missing at start means the embedded default. A ConfigMap deleted
//! while its policy is in force keeps that policy for a grace period, so a delete-then-create
//! (`kubectl replace --force`, Argo CD `Replace=true`, a prune before a create) never
//! enforces the built-in default in between; if it is not back by then, the embedded default.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use kube::Client;
use kube::api::{ListParams, WatchParams};
use kube::core::Request;
use serde::Deserialize;
use tokio::time::Instant;

use super::PolicyStore;

pub const KEY: &str = "policy.yaml";

/// How the ConfigMap is watched.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub namespace: String,
    pub name: String,
    /// `timeoutSeconds` of each watch: the API server ends it then and it is re-opened.
    pub watch_timeout: Duration,
    /// A watch with no byte for this long is presumed dead and re-opened.
    pub idle_timeout: Duration,
    /// How long a deleted ConfigMap's policy stays in force.
    pub delete_grace: Duration,
}

impl WatchConfig {
    pub fn new(namespace: &str, name: &str) -> WatchConfig {
        WatchConfig {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            watch_timeout: Duration::from_secs(290),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            delete_grace: DEFAULT_DELETE_GRACE,
        }
    }
}

/// 2.5 times the watch cache's bookmark period (about a minute).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(150);
pub const DEFAULT_DELETE_GRACE: Duration = Duration::from_secs(60);

/// First and longest pause between failed attempts (doubled each failure, reset by a sync).
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A ConfigMap as the policy source reads it: the one reading shared by the watcher and
/// `audit --policy-configmap` (its [`ConfigMap::policy_text`]).
#[derive(Deserialize)]
pub struct ConfigMap {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    data: Option<std::collections::BTreeMap<String, String>>,
}

impl ConfigMap {
    /// The policy text under [`KEY`]; `None` when the key (or all data) is missing, which
    /// means the embedded default.
    pub fn policy_text(&self) -> Option<&str> {
        self.data.as_ref()?.get(KEY).map(String::as_str)
    }
}

/// How the ConfigMap `namespace/name` is named in messages: as a source
/// (`configmap NS/NAME`), and as the file a policy error points at (`... key policy.yaml`).
pub fn names(namespace: &str, name: &str) -> (String, String) {
    let source = format!("configmap {namespace}/{name}");
    let file = format!("{source} key {KEY}");
    (source, file)
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    resource_version: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    items: Option<Vec<ConfigMap>>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// Why a sync failed, as exported in `volguard_policy_source_errors_total{class}`.
pub fn error_class(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => status_class(s.code),
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => "decode",
        e => {
            let text = super::client::describe(e).to_ascii_lowercase();
            if text.contains("timed out") || text.contains("timeout") || text.contains("deadline") {
                "timeout"
            } else if text.contains("certificate") || text.contains("tls") {
                "tls"
            } else {
                "connect"
            }
        }
    }
}

fn status_class(code: u16) -> &'static str {
    match code {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        410 => "expired",
        429 => "throttled",
        500..=599 => "server",
        _ => "other",
    }
}

enum Ended {
    /// The resourceVersion is too old: list again (after a pause when the watch could not
    /// even be opened, so a server answering 410 to every watch is not hammered).
    Relist { opened: bool },
    /// The server ended the watch (its timeout): re-open from the same resourceVersion.
    Closed,
    /// The watch failed: back off, then re-open from the same resourceVersion.
    Failed(&'static str, String),
}

struct Watcher {
    client: Client,
    cfg: WatchConfig,
    store: Arc<PolicyStore>,
    path: String,
    source: String,
    file: String,
    /// When a deleted ConfigMap's policy stops being kept.
    grace_until: Option<Instant>,
    backoff: Duration,
}

/// Keeps `store` on the ConfigMap's policy until the process ends. Failures are retried
/// with backoff; the policy in force stays meanwhile.
pub async fn watch(client: Client, cfg: WatchConfig, store: Arc<PolicyStore>) {
    let (source, file) = names(&cfg.namespace, &cfg.name);
    let mut w = Watcher {
        path: format!("/api/v1/namespaces/{}/configmaps", cfg.namespace),
        source,
        file,
        client,
        cfg,
        store,
        grace_until: None,
        backoff: BACKOFF_MIN,
    };
    loop {
        let grace_until = w.grace_until;
        let mut rv = match race(grace_until, w.list()).await {
            None => {
                w.grace_over();
                continue;
            }
            Some(Ok(rv)) => rv,
            Some(Err(e)) => {
                w.failed(error_class(&e), &super::client::describe(&e));
                w.pause().await;
                continue;
            }
        };
        loop {
            match w.watch_from(&mut rv).await {
                Ended::Relist { opened: true } => break,
                Ended::Relist { opened: false } => {
                    w.pause().await;
                    break;
                }
                Ended::Closed => {}
                Ended::Failed(class, message) => {
                    w.failed(class, &message);
                    w.pause().await;
                }
            }
        }
    }
}

impl Watcher {
    fn params(&self) -> String {
        format!("metadata.name={}", self.cfg.name)
    }

    /// Lists the ConfigMap and installs what it says; the list's resourceVersion.
    async fn list(&mut self) -> Result<String, kube::Error> {
        let params = ListParams {
            field_selector: Some(self.params()),
            ..Default::default()
        };
        let req = Request::new(&self.path)
            .list(&params)
            .map_err(kube::Error::BuildRequest)?;
        let text = self.client.request_text(req).await?;
        let list: List = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        self.synced();
        match list
            .items
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.metadata.name == self.cfg.name)
        {
            Some(cm) => self.present(&cm),
            None => self.absent("not found"),
        }
        Ok(list.metadata.resource_version)
    }

    /// One watch from `rv` (advanced as events arrive) until it ends.
    async fn watch_from(&mut self, rv: &mut String) -> Ended {
        let params = WatchParams {
            field_selector: Some(self.params()),
            timeout: Some(self.cfg.watch_timeout.as_secs().clamp(1, u32::MAX as u64) as u32),
            bookmarks: true,
            ..Default::default()
        };
        let req = match Request::new(&self.path).watch(&params, rv) {
            Ok(r) => r,
            Err(e) => return Ended::Failed("other", e.to_string()),
        };
        let stream = match race(self.grace_until, self.client.request_stream(req)).await {
            None => {
                self.grace_over();
                return Ended::Closed;
            }
            Some(Ok(s)) => s,
            Some(Err(kube::Error::Api(s))) if s.code == 410 => {
                return Ended::Relist { opened: false };
            }
            Some(Err(e)) => return Ended::Failed(error_class(&e), super::client::describe(&e)),
        };
        self.synced();
        let mut lines = stream.lines();
        loop {
            let idle = tokio::time::sleep(self.cfg.idle_timeout);
            let next = tokio::select! {
                l = lines.next() => l,
                () = idle => {
                    return Ended::Failed(
                        "timeout",
                        format!("watch silent for {:?}; re-opening", self.cfg.idle_timeout),
                    );
                }
                () = grace(self.grace_until) => {
                    self.grace_over();
                    continue;
                }
            };
            let line = match next {
                None => return Ended::Closed,
                Some(Err(e)) => return Ended::Failed(io_class(&e), super::client::chain(&e)),
                Some(Ok(l)) if l.trim().is_empty() => continue,
                Some(Ok(l)) => l,
            };
            if let Some(ended) = self.event(&line, rv) {
                return ended;
            }
        }
    }

    /// One line of the watch stream: the ConfigMap's change installed and `rv` advanced, or
    /// how the watch ends (an ERROR event, an undecodable event).
    fn event(&mut self, line: &str, rv: &mut String) -> Option<Ended> {
        let event: WatchEvent = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => return Some(Ended::Failed("decode", format!("watch event: {e}"))),
        };
        if event.kind == "ERROR" {
            return Some(self.watch_error(event.object));
        }
        let cm: ConfigMap = match serde_json::from_value(event.object) {
            Ok(cm) => cm,
            Err(e) => return Some(Ended::Failed("decode", format!("watch event object: {e}"))),
        };
        if !cm.metadata.resource_version.is_empty() {
            rv.clone_from(&cm.metadata.resource_version);
        }
        self.synced();
        match event.kind.as_str() {
            "ADDED" | "MODIFIED" if cm.metadata.name == self.cfg.name => self.present(&cm),
            "DELETED" if cm.metadata.name == self.cfg.name => self.absent("deleted"),
            _ => {} // BOOKMARK: the resourceVersion only.
        }
        None
    }

    /// An ERROR event's Status: 410 Gone/Expired means the resourceVersion was compacted.
    fn watch_error(&self, object: serde_json::Value) -> Ended {
        #[derive(Default, Deserialize)]
        struct Status {
            #[serde(default)]
            code: u16,
            #[serde(default)]
            message: String,
        }
        let status: Status = serde_json::from_value(object).unwrap_or_default();
        if status.code == 410 {
            tracing::info!(source = %self.source, message = %status.message, "watch resourceVersion too old; listing again");
            return Ended::Relist { opened: true };
        }
        Ended::Failed(
            status_class(status.code),
            format!("watch ERROR event: {} ({})", status.message, status.code),
        )
    }

    fn present(&mut self, cm: &ConfigMap) {
        if self.grace_until.take().is_some() {
            tracing::info!(source = %self.source, "ConfigMap back within the grace period");
        }
        match cm.policy_text() {
            Some(text) => {
                let _ = self.store.apply_text(text, &self.file, &self.source);
            }
            None => {
                self.store
                    .apply_default(&format!("{} has no {KEY} key", self.source));
            }
        }
    }

    /// The ConfigMap is not there: the embedded default at once when its policy is not the
    /// one in force (not found at start), else after the grace period.
    fn absent(&mut self, why: &str) {
        let ours = self.store.is_loaded() && self.store.current().source == self.source;
        if !ours || self.cfg.delete_grace.is_zero() {
            self.store.apply_default(&format!("{} {why}", self.source));
            return;
        }
        if self.grace_until.is_none() {
            self.grace_until = Some(Instant::now() + self.cfg.delete_grace);
            tracing::warn!(
                source = %self.source,
                grace_seconds = self.cfg.delete_grace.as_secs_f64(),
                kept_generation = self.store.current().generation,
                "ConfigMap {why}; keeping its policy for the grace period, then the embedded default"
            );
        }
    }

    fn grace_over(&mut self) {
        if self.grace_until.take().is_some() {
            self.store.apply_default(&format!(
                "{} deleted and not recreated within {:?}",
                self.source, self.cfg.delete_grace
            ));
        }
    }

    fn synced(&mut self) {
        self.backoff = BACKOFF_MIN;
        self.store.synced(&self.source);
    }

    fn failed(&mut self, class: &'static str, message: &str) {
        tracing::warn!(source = %self.source, class, error = %message, retry_in = ?self.backoff, "policy ConfigMap sync failed; the policy in force is kept");
        self.store.sync_failed(class);
    }

    async fn pause(&mut self) {
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        let deadline = Instant::now() + pause;
        while race(self.grace_until, tokio::time::sleep_until(deadline))
            .await
            .is_none()
        {
            self.grace_over();
        }
    }
}

/// Runs `f` unless the grace period ends first (then `None`, and `f` is dropped: the caller
/// ends the grace period and starts over).
async fn race<T>(grace_until: Option<Instant>, f: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        r = f => Some(r),
        () = grace(grace_until) => None,
    }
}

/// A broken watch stream: a timeout (the client's read timeout) or the connection.
fn io_class(e: &std::io::Error) -> &'static str {
    let text = super::client::chain(e).to_ascii_lowercase();
    if e.kind() == std::io::ErrorKind::TimedOut
        || text.contains("timed out")
        || text.contains("timeout")
    {
        "timeout"
    } else {
        "connect"
    }
}

/// Resolves when the grace period ends; never without one.
async fn grace(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
