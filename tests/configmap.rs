//! `--policy-configmap` against a scripted Kubernetes API endpoint speaking list/watch as
//! the API server does: initial load, update, invalid update kept out, deletion (kept for a
//! grace period, then the embedded default), delete-then-create, and the faults of a real
//! cluster: the server ending watches, BOOKMARK events, an ERROR event with a 410 Status, a
//! 410 on opening a watch, RBAC removed (403), a watch that goes silent (half-open).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// What the scripted endpoint sends on open watches: a JSON line, or the end of the stream
/// (the API server's `timeoutSeconds`, or a restart).
#[derive(Clone, Debug)]
enum Out {
    Line(String),
    Close,
}

#[derive(Clone)]
struct Api {
    /// The ConfigMap as the list returns it (None: not found).
    current: Arc<Mutex<Option<Value>>>,
    events: broadcast::Sender<Out>,
    /// Requests seen: "list" or "watch rv=N".
    seen: Arc<Mutex<Vec<String>>>,
    /// Answer every request with this status code (403: RBAC removed).
    refuse: Arc<Mutex<Option<u16>>>,
    /// Answer watch requests with 410 (their resourceVersion is compacted).
    watch_gone: Arc<Mutex<bool>>,
    /// The resourceVersion of the list.
    list_rv: Arc<Mutex<u32>>,
}

fn configmap(policy: &str, rv: u32) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "volguard-policy", "namespace": "ops", "resourceVersion": rv.to_string(),
                        "uid": "0b6f3c52-3f1e-4e57-9c3a-6a1f1f8f0001"},
           "data": {"policy.yaml": policy}})
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

async fn configmaps(
    State(api): State<Api>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    assert_eq!(
        q.get("fieldSelector").map(String::as_str),
        Some("metadata.name=volguard-policy")
    );
    let watch = q.get("watch").map(String::as_str) == Some("true");
    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
    let seen = if watch {
        format!("watch rv={rv}")
    } else {
        "list".to_owned()
    };
    // A watch that is answered is recorded once subscribed, so that an event sent after
    // `seen` shows it is not lost.
    let answered_watch =
        watch && api.refuse.lock().unwrap().is_none() && !*api.watch_gone.lock().unwrap();
    if !answered_watch {
        api.seen.lock().unwrap().push(seen.clone());
    }
    let refuse = *api.refuse.lock().unwrap();
    if let Some(code) = refuse {
        let body = status(
            code,
            "Forbidden",
            "configmaps \"volguard-policy\" is forbidden: User \"system:serviceaccount:volguard:volguard\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"ops\"",
        );
        return (
            axum::http::StatusCode::from_u16(code).unwrap(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    if watch {
        assert_eq!(
            q.get("allowWatchBookmarks").map(String::as_str),
            Some("true")
        );
        assert!(q.contains_key("timeoutSeconds"));
        if *api.watch_gone.lock().unwrap() {
            let body = status(410, "Gone", "too old resource version: 1 (120)");
            return (
                axum::http::StatusCode::GONE,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
        let rx = api.events.subscribe();
        api.seen.lock().unwrap().push(seen);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(Out::Line(line)) => {
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line + "\n")), rx))
                }
                Ok(Out::Close) | Err(_) => None,
            }
        });
        return axum::body::Body::from_stream(stream).into_response();
    }
    let items: Vec<Value> = api.current.lock().unwrap().iter().cloned().collect();
    let rv = api.list_rv.lock().unwrap().to_string();
    let list = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": rv}, "items": items});
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

async fn start_api(initial: Option<Value>) -> (Api, std::net::SocketAddr) {
    let (events, _) = broadcast::channel(64);
    let api = Api {
        current: Arc::new(Mutex::new(initial)),
        events,
        seen: Arc::default(),
        refuse: Arc::default(),
        watch_gone: Arc::default(),
        list_rv: Arc::new(Mutex::new(1)),
    };
    let app = Router::new()
        .route("/api/v1/namespaces/ops/configmaps", get(configmaps))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (api, addr)
}

fn kubeconfig(dir: &std::path::Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster: {{server: \"http://{addr}\"}}\nusers:\n- name: u\n  user: {{token: test-token}}\ncontexts:\n- name: c\n  context: {{cluster: mock, user: u, namespace: ops}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

impl Api {
    async fn watching(&self) {
        for _ in 0..400 {
            if self.events.receiver_count() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("volguard never watched: {:?}", self.seen.lock().unwrap());
    }

    /// A watch event; the list is kept consistent with it, as after a re-list.
    async fn event(&self, kind: &str, object: Value) {
        self.watching().await;
        match kind {
            "DELETED" => *self.current.lock().unwrap() = None,
            "ADDED" | "MODIFIED" => *self.current.lock().unwrap() = Some(object.clone()),
            _ => {}
        }
        if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
            *self.list_rv.lock().unwrap() = rv.parse().unwrap();
        }
        self.events
            .send(Out::Line(
                json!({"type": kind, "object": object}).to_string(),
            ))
            .unwrap();
    }

    /// Ends every open watch, as the API server does at `timeoutSeconds`.
    async fn close_watches(&self) {
        self.watching().await;
        self.events.send(Out::Close).unwrap();
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, what: &str) -> usize {
        self.seen().iter().filter(|s| s.starts_with(what)).count()
    }
}

fn verdict(r: &Value) -> &'static str {
    let resp = &r["response"];
    if resp["allowed"] == false {
        "deny"
    } else if resp.get("warnings").is_some() {
        "warn"
    } else if resp.get("auditAnnotations").is_some() {
        "audit"
    } else {
        "allow"
    }
}

fn serve(kc: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec!["--policy-configmap", "ops/volguard-policy"];
    args.extend_from_slice(extra);
    Server::start_with(&args, &[("KUBECONFIG", kc.to_str().unwrap())], true)
}

/// The value of the first line of metric `name` (labelled or not).
fn metric(m: &str, name: &str) -> Option<f64> {
    m.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = match rest.strip_prefix('{') {
            Some(labels) => labels.split_once("} ")?.1,
            None => rest.strip_prefix(' ')?,
        };
        value.parse().ok()
    })
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_load_update_invalid_delete() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &["--policy-delete-grace", "1"]);
    assert!(api.count("list") >= 1);
    let client = server.client(Version::Http1);
    let seed = seed_create("cm");
    let (c, s) = (&client, &seed);
    assert_eq!(verdict(&client.review(&seed).await.json()), "warn");

    api.event("MODIFIED", configmap("mode: audit\n", 2)).await;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "audit"
        })
        .await
    );

    api.event("MODIFIED", configmap("mode: audit\nrules: {nope: {}}\n", 3))
        .await;
    let srv = &server;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            srv.metrics()
                .contains(r#"volguard_policy_reloads_total{result="invalid"} 1"#)
        })
        .await
    );
    assert_eq!(
        verdict(&client.review(&seed).await.json()),
        "audit",
        "invalid update kept out"
    );

    // Deleted: the last good policy for the grace period (1 s here), then the default.
    let deleted = std::time::Instant::now();
    api.event("DELETED", configmap("mode: audit\n", 4)).await;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "deny"
        })
        .await
    );
    assert!(
        deleted.elapsed() >= Duration::from_millis(900),
        "{:?}",
        deleted.elapsed()
    );
    let m = server.metrics();
    assert!(m.contains(r#"source="embedded default""#), "{m}");
}

/// `kubectl replace --force` / Argo CD Replace: DELETED then ADDED. Within the grace
/// period the policy of the ConfigMap stays in force throughout; the built-in default
/// (enforce) is never applied in the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_then_create_never_enforces_the_default() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &["--policy-delete-grace", "30"]);
    let client = server.client(Version::Http2);
    let seed = seed_create("r");
    api.event("DELETED", configmap("mode: warn\n", 2)).await;
    let mut verdicts = Vec::new();
    for _ in 0..10 {
        verdicts.push(verdict(&client.review(&seed).await.json()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.event("ADDED", configmap("mode: audit\n", 3)).await;
    let (c, s) = (&client, &seed);
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "audit"
        })
        .await
    );
    assert!(verdicts.iter().all(|v| *v == "warn"), "{verdicts:?}");
    let m = server.metrics();
    assert!(!m.contains(r#"source="embedded default""#), "{m}");
    assert!(m.contains("volguard_policy_generation 2"), "{m}");
}

/// Watches ended by the server are re-opened from the last resourceVersion seen (a
/// BOOKMARK's included); an ERROR event with a 410 Status, or a 410 on opening the watch,
/// lists again. Every step counts as a sync; none as an error.
/// (client-go `tools/cache` `Reflector.watch`/`ListAndWatch`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_closed_bookmarks_and_410_relist() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 5))).await;
    *api.list_rv.lock().unwrap() = 5;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &[]);
    api.watching().await;
    assert_eq!(api.seen(), ["list", "watch rv=5"]);
    let synced_at_start = metric(
        &server.metrics(),
        "volguard_policy_source_last_sync_timestamp_seconds",
    )
    .expect("sync time exported");
    assert!((now() - synced_at_start).abs() < 30.0, "{synced_at_start}");

    // A bookmark moves the resourceVersion on; the server ends the watch; it is re-opened
    // from the bookmark's resourceVersion, not from the list's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.event(
        "BOOKMARK",
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": "42"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.close_watches().await;
    let a = &api;
    assert!(
        eventually(Duration::from_secs(10), || async move {
            a.seen().contains(&"watch rv=42".to_owned())
        })
        .await,
        "{:?}",
        api.seen()
    );
    assert_eq!(api.count("list"), 1, "{:?}", api.seen());
    let m = server.metrics();
    let synced = metric(&m, "volguard_policy_source_last_sync_timestamp_seconds").unwrap();
    assert!(synced > synced_at_start, "the bookmark is a sync: {m}");

    // ERROR 410 on the open watch: a new list.
    api.watching().await;
    api.event(
        "ERROR",
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "too old resource version: 42 (300)", "reason": "Expired", "code": 410}),
    )
    .await;
    assert!(
        eventually(
            Duration::from_secs(10),
            || async move { a.count("list") == 2 }
        )
        .await,
        "{:?}",
        api.seen()
    );

    // 410 on opening the watch: a new list too.
    api.watching().await;
    *api.watch_gone.lock().unwrap() = true;
    api.close_watches().await;
    assert!(
        eventually(
            Duration::from_secs(10),
            || async move { a.count("list") >= 3 }
        )
        .await,
        "{:?}",
        api.seen()
    );
    *api.watch_gone.lock().unwrap() = false;
    api.watching().await;
    // A change after all that still arrives.
    api.event("MODIFIED", configmap("mode: audit\n", 400)).await;
    let client = server.client(Version::Http1);
    let seed = seed_create("w");
    let (c, s) = (&client, &seed);
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "audit"
        })
        .await
    );
    let m = server.metrics();
    assert!(!m.contains("volguard_policy_source_errors_total{"), "{m}");
}

/// RBAC removed: every request 403. The policy in force stays, readiness stays, and the
/// metrics say it: the failing class and the last sync time standing still. RBAC back: in
/// sync again, the failing class gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_is_visible_and_recovers() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &[]);
    api.watching().await;
    *api.refuse.lock().unwrap() = Some(403);
    api.close_watches().await;
    let srv = &server;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            srv.metrics()
                .contains(r#"volguard_policy_source_failing{class="forbidden"} 1"#)
        })
        .await,
        "{}",
        server.metrics()
    );
    let m = server.metrics();
    assert!(
        m.contains(r#"volguard_policy_source_errors_total{class="forbidden"} "#),
        "{m}"
    );
    let stale = metric(&m, "volguard_policy_source_last_sync_timestamp_seconds").unwrap();
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    let client = server.client(Version::Http1);
    assert_eq!(
        verdict(&client.review(&seed_create("f")).await.json()),
        "warn"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        metric(
            &server.metrics(),
            "volguard_policy_source_last_sync_timestamp_seconds"
        ),
        Some(stale),
        "no sync while refused"
    );

    *api.refuse.lock().unwrap() = None;
    assert!(
        eventually(Duration::from_secs(40), || async move {
            !srv.metrics().contains("volguard_policy_source_failing{")
        })
        .await,
        "{}",
        server.metrics()
    );
    let synced = metric(
        &server.metrics(),
        "volguard_policy_source_last_sync_timestamp_seconds",
    )
    .unwrap();
    assert!(synced > stale);
}

/// A watch that stops sending anything (a half-open connection, a blackholed API server) is
/// given up after the idle timeout and re-opened, counted as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_watch_is_reopened() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &["--kube-read-timeout", "1"]);
    api.watching().await;
    let a = &api;
    assert!(
        eventually(
            Duration::from_secs(15),
            || async move { a.count("watch") >= 3 }
        )
        .await,
        "{:?}",
        api.seen()
    );
    let m = server.metrics();
    assert!(
        m.contains(r#"volguard_policy_source_errors_total{class="timeout"} "#),
        "{m}"
    );
    assert_eq!(
        api.count("list"),
        1,
        "re-opened from the same resourceVersion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configmap_means_the_embedded_default() {
    let (_api, addr) = start_api(None).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = serve(&kc, &[]);
    let r = server
        .client(Version::Http2)
        .review(&seed_create("d"))
        .await;
    assert_eq!(verdict(&r.json()), "deny");
}

/// A replica that starts while the ConfigMap holds an invalid policy has no last good
/// policy: it stays up but not ready, `/readyz` says why, and the first valid version
/// makes it ready (docs/install.md, "A replica that starts with an invalid policy").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configmap_at_start_is_not_ready_until_valid() {
    let (api, addr) = start_api(Some(configmap("modee: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let mut server = Server::start_with(
        &["--policy-configmap", "ops/volguard-policy"],
        &[("KUBECONFIG", kc.to_str().unwrap())],
        false,
    );
    let admin = server.admin;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            matches!(admin_get(admin, "/readyz"), Some((503, body)) if body.contains("policy invalid: configmap ops/volguard-policy key policy.yaml: modee: unknown key"))
        })
        .await,
        "{:?}",
        admin_get(admin, "/readyz")
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "it must not exit"
    );

    api.event("MODIFIED", configmap("mode: warn\n", 2)).await;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            matches!(admin_get(admin, "/readyz"), Some((200, _)))
        })
        .await
    );
    let r = server
        .client(Version::Http1)
        .review(&seed_create("late"))
        .await;
    assert_eq!(verdict(&r.json()), "warn");
    server.terminate();
    let log = server.stderr();
    assert_eq!(
        log.matches("policy invalid and no policy loaded yet")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("policy valid again; loaded"), "{log}");
}
