//! `--policy-configmap` against a scripted Kubernetes API endpoint speaking list/watch:
//! initial load, update, invalid update kept out, deletion back to the embedded default.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use common::*;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Clone)]
struct Api {
    /// The ConfigMap as the list returns it (None: not found).
    current: Arc<Mutex<Option<Value>>>,
    events: broadcast::Sender<String>,
    lists: Arc<Mutex<u32>>,
}

fn configmap(policy: &str, rv: u32) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "volguard-policy", "namespace": "ops", "resourceVersion": rv.to_string(),
                        "uid": "0b6f3c52-3f1e-4e57-9c3a-6a1f1f8f0001"},
           "data": {"policy.yaml": policy}})
}

async fn configmaps(
    State(api): State<Api>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    assert_eq!(
        q.get("fieldSelector").map(String::as_str),
        Some("metadata.name=volguard-policy")
    );
    if q.get("watch").map(String::as_str) == Some("true") {
        let rx = api.events.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(line) => Some((Ok::<_, std::io::Error>(bytes::Bytes::from(line + "\n")), rx)),
                Err(_) => None,
            }
        });
        let stream = axum::body::Body::from_stream(stream);
        return stream.into_response();
    }
    *api.lists.lock().unwrap() += 1;
    let items: Vec<Value> = api.current.lock().unwrap().iter().cloned().collect();
    let rv = items
        .first()
        .and_then(|i| i["metadata"]["resourceVersion"].as_str())
        .unwrap_or("1")
        .to_owned();
    let list = json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": rv}, "items": items});
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        list.to_string(),
    )
        .into_response()
}

async fn start_api(initial: Option<Value>) -> (Api, std::net::SocketAddr) {
    let (events, _) = broadcast::channel(16);
    let api = Api {
        current: Arc::new(Mutex::new(initial)),
        events,
        lists: Arc::new(Mutex::new(0)),
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

async fn send_event(api: &Api, kind: &str, object: Value) {
    // Wait for the watcher to be connected so the event is not lost.
    for _ in 0..200 {
        if api.events.receiver_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(api.events.receiver_count() > 0, "volguard never watched");
    // Keep the list consistent with the events, as the API server would after a re-list.
    *api.current.lock().unwrap() = if kind == "DELETED" {
        None
    } else {
        Some(object.clone())
    };
    api.events
        .send(json!({"type": kind, "object": object}).to_string())
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_load_update_invalid_delete() {
    let (api, addr) = start_api(Some(configmap("mode: warn\n", 1))).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = Server::start_with(
        &["--policy-configmap", "ops/volguard-policy"],
        &[("KUBECONFIG", kc.to_str().unwrap())],
        true,
    );
    assert!(*api.lists.lock().unwrap() >= 1);
    let client = server.client(Version::Http1);
    let seed = seed_create("cm");
    let (c, s) = (&client, &seed);
    assert_eq!(verdict(&client.review(&seed).await.json()), "warn");

    send_event(&api, "MODIFIED", configmap("mode: audit\n", 2)).await;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "audit"
        })
        .await
    );

    send_event(
        &api,
        "MODIFIED",
        configmap("mode: audit\nrules: {nope: {}}\n", 3),
    )
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

    send_event(&api, "DELETED", configmap("mode: audit\n", 4)).await;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            verdict(&c.review(s).await.json()) == "deny"
        })
        .await
    );
    let m = server.metrics();
    assert!(m.contains(r#"source="embedded default""#), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configmap_means_the_embedded_default() {
    let (_api, addr) = start_api(None).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), addr);
    let server = Server::start_with(
        &["--policy-configmap", "ops/volguard-policy"],
        &[("KUBECONFIG", kc.to_str().unwrap())],
        true,
    );
    let r = server
        .client(Version::Http2)
        .review(&seed_create("d"))
        .await;
    assert_eq!(verdict(&r.json()), "deny");
}
