//! `volguard audit` (the real binary) against a scripted Kubernetes API server: paginated
//! lists of every kind, a 403 on one kind, owner references, `--namespace`, `--selector`,
//! the policy from a ConfigMap, and PolicyReports written by server-side apply and
//! validated against the CRD's OpenAPI schema (tests/data/policyreport/).
//!
//! With VOLGUARD_AUDIT_REPORTS_DIR set, the PolicyReport bodies received are also written
//! there (one JSON file each), for .ci/audit-check.sh to validate with check-jsonschema.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The cluster's content.

const BAD: &str = r#"{"containers":[{"name":"app","image":"nginx","volumeMounts":[{"name":"cache","mountPath":"/cache"}]}],"volumes":[{"name":"cache","emptyDir":{}}]}"#;
const WARN_ONLY: &str = r#"{"containers":[{"name":"app","image":"nginx"}],"volumes":[{"name":"spare","emptyDir":{"sizeLimit":"1Gi"}}]}"#;
const CLEAN: &str = r#"{"containers":[{"name":"app","image":"nginx","volumeMounts":[{"name":"cache","mountPath":"/cache"}]}],"volumes":[{"name":"cache","emptyDir":{"sizeLimit":"1Gi"}}]}"#;

fn meta(ns: &str, name: &str, uid: &str, owner: Option<(&str, &str)>, app: &str) -> Value {
    let mut m = json!({"name": name, "namespace": ns, "uid": uid, "resourceVersion": "7",
                       "labels": {"app": app},
                       "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]});
    if let Some((kind, owner_uid)) = owner {
        m["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": "owner",
                                       "uid": owner_uid, "controller": true, "blockOwnerDeletion": true}]);
    }
    m
}

fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    owner: Option<(&str, &str)>,
    app: &str,
    spec: &str,
) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(ns, name, uid, owner, app),
           "spec": serde_json::from_str::<Value>(spec).unwrap(), "status": {"phase": "Running"}})
}

fn workload(
    kind: &str,
    ns: &str,
    name: &str,
    uid: &str,
    owner: Option<(&str, &str)>,
    app: &str,
    spec: &str,
) -> Value {
    let template = json!({"metadata": {"labels": {"app": app}}, "spec": serde_json::from_str::<Value>(spec).unwrap()});
    let spec = match kind {
        "CronJob" => {
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        _ => {
            json!({"replicas": 1, "selector": {"matchLabels": {"app": app}}, "template": template})
        }
    };
    let api_version = match kind {
        "Job" | "CronJob" => "batch/v1",
        "ReplicationController" | "PodTemplate" => "v1",
        _ => "apps/v1",
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": meta(ns, name, uid, owner, app), "spec": spec})
}

/// Every kind's items, keyed by plural.
fn cluster() -> HashMap<&'static str, Vec<Value>> {
    let mut c: HashMap<&'static str, Vec<Value>> = HashMap::new();
    c.insert(
        "deployments",
        vec![
            workload("Deployment", "shop", "web", "d-web", None, "web", BAD),
            workload(
                "Deployment",
                "kube-system",
                "coredns",
                "d-dns",
                None,
                "dns",
                BAD,
            ),
        ],
    );
    c.insert(
        "replicasets",
        vec![
            workload(
                "ReplicaSet",
                "shop",
                "web-7d4",
                "rs-web",
                Some(("Deployment", "d-web")),
                "web",
                BAD,
            ),
            workload(
                "ReplicaSet",
                "kube-system",
                "coredns-5c9",
                "rs-dns",
                Some(("Deployment", "d-dns")),
                "dns",
                BAD,
            ),
        ],
    );
    c.insert(
        "statefulsets",
        vec![workload(
            "StatefulSet",
            "shop",
            "db",
            "sts-db",
            None,
            "db",
            BAD,
        )],
    );
    c.insert(
        "daemonsets",
        vec![workload(
            "DaemonSet",
            "dev",
            "agent",
            "ds-agent",
            None,
            "agent",
            CLEAN,
        )],
    );
    c.insert(
        "cronjobs",
        vec![workload(
            "CronJob", "shop", "nightly", "cj-n", None, "nightly", WARN_ONLY,
        )],
    );
    c.insert(
        "jobs",
        vec![workload(
            "Job",
            "shop",
            "nightly-29",
            "job-n",
            Some(("CronJob", "cj-n")),
            "nightly",
            WARN_ONLY,
        )],
    );
    c.insert("replicationcontrollers", vec![]);
    c.insert("podtemplates", vec![]);
    c.insert(
        "pods",
        vec![
            pod(
                "dev",
                "agent-x1",
                "p1",
                Some(("DaemonSet", "ds-agent")),
                "agent",
                CLEAN,
            ),
            pod("dev", "scratch", "p2", None, "scratch", BAD),
            pod(
                "kube-system",
                "coredns-5c9-a",
                "p3",
                Some(("ReplicaSet", "rs-dns")),
                "dns",
                BAD,
            ),
            pod(
                "shop",
                "db-0",
                "p4",
                Some(("StatefulSet", "sts-db")),
                "db",
                BAD,
            ),
            pod(
                "shop",
                "nightly-29-q",
                "p5",
                Some(("Job", "job-n")),
                "nightly",
                WARN_ONLY,
            ),
            pod(
                "shop",
                "web-7d4-a",
                "p6",
                Some(("ReplicaSet", "rs-web")),
                "web",
                BAD,
            ),
            pod(
                "shop",
                "web-7d4-b",
                "p7",
                Some(("ReplicaSet", "rs-web")),
                "web",
                BAD,
            ),
        ],
    );
    c
}

// ---------------------------------------------------------------------------------------
// The scripted API server.

#[derive(Clone, Default)]
struct Api {
    inner: Arc<Mutex<Recorded>>,
    /// Plural answered with 403 Forbidden.
    forbidden: Option<&'static str>,
    crd_installed: bool,
    policy_configmap: Option<&'static str>,
    /// PolicyReports already in the cluster: (namespace, name).
    earlier_reports: Vec<(&'static str, &'static str)>,
    /// Faults, as a real API server and etcd produce them.
    faults: Faults,
}

#[derive(Clone, Default)]
struct Faults {
    /// Plural whose first `continue` request answers 410 Expired (etcd compacted the
    /// revision of the first page), with the fallback token a real API server puts in it.
    expire_continue: Option<&'static str>,
    /// A Pod deleted from the cluster at the moment the token expires (so a consistent
    /// relist no longer shows it, and mixing old pages with new ones would).
    delete_on_expiry: Option<&'static str>,
    /// (plural, n): the first n `continue` requests of the plural answer 500.
    server_errors: Option<(&'static str, usize)>,
    /// Plural whose every `continue` request answers 500.
    always_500_on_continue: Option<&'static str>,
    /// Namespaces deleted (apply: 404 namespaces) or terminating (apply of a new object:
    /// 403 NamespaceTerminating) since they were listed.
    deleted_namespaces: Vec<&'static str>,
    terminating_namespaces: Vec<&'static str>,
    /// Namespace whose report apply fails with 500.
    apply_500: Option<&'static str>,
    /// Failing Pods added in namespace `big`.
    big_namespace_pods: usize,
}

/// etcd's default `--max-request-bytes`: bigger writes fail with "etcdserver: request is too
/// large" (500 from the API server).
const ETCD_MAX_REQUEST_BYTES: usize = 1_572_864;

#[derive(Default)]
struct Recorded {
    /// Every request: "METHOD path?query".
    requests: Vec<String>,
    /// The Authorization header of each request.
    auth: Vec<String>,
    /// PolicyReport applies: (path, query, content type, body).
    patches: Vec<(String, HashMap<String, String>, String, Value)>,
    /// Continue requests answered so far, by plural.
    continues: HashMap<String, usize>,
    expired: bool,
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn respond(code: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    respond(code, status_json(code, reason, message))
}

fn json_response(v: Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

async fn handle(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.inner
        .lock()
        .unwrap()
        .requests
        .push(format!("{method} {}", uri));
    api.inner.lock().unwrap().auth.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    );
    let path = uri.path();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Discovery of the PolicyReport group.
    if path == "/apis/wgpolicyk8s.io/v1alpha2" {
        return if api.crd_installed {
            json_response(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "wgpolicyk8s.io/v1alpha2",
                "resources": [{"name": "policyreports", "singularName": "policyreport", "namespaced": true, "kind": "PolicyReport",
                               "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]}),
            )
        } else {
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        };
    }
    if method == Method::PATCH {
        // /apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports/{name}
        assert_eq!(
            &segs[..4],
            ["apis", "wgpolicyk8s.io", "v1alpha2", "namespaces"],
            "{path}"
        );
        assert_eq!(segs[5], "policyreports");
        let (ns, name) = (segs[4], segs[6]);
        let exists = api.earlier_reports.iter().any(|r| r == &(ns, name));
        // NamespaceLifecycle (plugin/pkg/admission/namespace/lifecycle, Admit): a create in a
        // namespace that is gone is NotFound for the namespace; a create (not an update) in
        // a terminating one is Forbidden with the cause NamespaceTerminating.
        if api.faults.deleted_namespaces.contains(&ns) {
            let mut r = status_json(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
            r["details"] = json!({"name": ns, "kind": "namespaces"});
            return respond(404, r);
        }
        if api.faults.terminating_namespaces.contains(&ns) && !exists {
            let mut r = status_json(
                403,
                "Forbidden",
                &format!(
                    "policyreports.wgpolicyk8s.io \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            r["details"] = json!({"name": name, "group": "wgpolicyk8s.io", "kind": "policyreports",
                "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]});
            return respond(403, r);
        }
        if api.faults.apply_500 == Some(ns) {
            return status(
                500,
                "InternalError",
                "Internal error occurred: etcdserver: leader changed",
            );
        }
        if body.len() > ETCD_MAX_REQUEST_BYTES {
            return status(500, "InternalError", "etcdserver: request is too large");
        }
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = serde_json::from_slice(&body).expect("apply body is JSON");
        api.inner
            .lock()
            .unwrap()
            .patches
            .push((path.to_owned(), q, ct, body.clone()));
        return json_response(body);
    }
    if let Some(cm) = api.policy_configmap
        && path == "/api/v1/namespaces/ops/configmaps/volguard-policy"
    {
        return json_response(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "volguard-policy", "namespace": "ops"}, "data": {"policy.yaml": cm}}));
    }
    // Lists: /api/v1[/namespaces/{ns}]/{plural}, /apis/{group}/{version}[/namespaces/{ns}]/{plural}
    let rest = if segs[0] == "api" {
        &segs[2..]
    } else {
        &segs[3..]
    };
    let (ns, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", ns, plural] => (Some(*ns), *plural),
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    let group = if segs[0] == "api" { "" } else { segs[1] };
    if api.forbidden == Some(plural) {
        let res = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        return status(
            403,
            "Forbidden",
            &format!(
                "{res} is forbidden: User \"system:serviceaccount:volguard:volguard-audit\" cannot list resource \"{plural}\" in API group \"{group}\" at the cluster scope"
            ),
        );
    }
    if let Some(token) = q.get("continue") {
        let mut rec = api.inner.lock().unwrap();
        let n = {
            let c = rec.continues.entry(plural.to_owned()).or_default();
            *c += 1;
            *c
        };
        if api.faults.expire_continue == Some(plural) && n == 1 {
            rec.expired = true;
            // As the API server words it (staging/src/k8s.io/apiserver/pkg/storage/errors.go,
            // NewResourceExpired via etcd3's continue handling), with the inconsistent
            // fallback token in metadata.continue.
            let mut r = status_json(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            );
            r["metadata"] = json!({"continue": token});
            return respond(410, r);
        }
        if api
            .faults
            .server_errors
            .is_some_and(|(p, k)| p == plural && n <= k)
            || api.faults.always_500_on_continue == Some(plural)
        {
            return status(
                500,
                "InternalError",
                "Internal error occurred: etcdserver: leader changed",
            );
        }
    }
    let items = if plural == "policyreports" {
        Some(api.earlier_reports.iter().map(|(ns, name)| json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "volguard"}}, "results": []})).collect())
    } else {
        let mut c = cluster();
        if plural == "pods" {
            let pods = c.get_mut("pods").unwrap();
            for i in 0..api.faults.big_namespace_pods {
                pods.push(pod(
                    "big",
                    &format!("cache-{i:05}"),
                    &format!("big-{i}"),
                    None,
                    "cache",
                    BAD,
                ));
            }
            if let Some(gone) = api.faults.delete_on_expiry
                && api.inner.lock().unwrap().expired
            {
                pods.retain(|p| p["metadata"]["name"] != gone);
            }
        }
        c.remove(plural)
    };
    let Some(all) = items else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let selected: Vec<Value> = all
        .into_iter()
        .filter(|i| ns.is_none_or(|ns| i["metadata"]["namespace"] == ns))
        .filter(|i| match q.get("labelSelector") {
            Some(sel) => {
                let (k, v) = sel.split_once('=').expect("equality selector");
                i["metadata"]["labels"][k] == v
            }
            None => true,
        })
        .collect();
    // Pagination as the apiserver does it: `limit` items, then an opaque continue token.
    // Without `limit`, everything (the full list client-go's pager falls back to).
    let limit: usize = match q.get("limit") {
        Some(l) => l.parse().unwrap(),
        None => {
            assert!(
                api.faults.expire_continue == Some(plural) && !q.contains_key("continue"),
                "only a relist after 410 is unpaginated: {uri}"
            );
            usize::MAX
        }
    };
    let start: usize = match q.get("continue") {
        Some(t) => t
            .strip_prefix("tok-")
            .expect("a token we issued")
            .parse()
            .unwrap(),
        None => 0,
    };
    let end = start.saturating_add(limit).min(selected.len());
    let mut list_meta = json!({"resourceVersion": "100"});
    if end < selected.len() {
        list_meta["continue"] = json!(format!("tok-{end}"));
        list_meta["remainingItemCount"] = json!(selected.len() - end);
    }
    json_response(
        json!({"apiVersion": "v1", "kind": "List", "metadata": list_meta, "items": selected[start..end]}),
    )
}

async fn start(api: Api) -> SocketAddr {
    let app = Router::new().fallback(handle).with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A kubeconfig whose current context is an unreachable cluster: every test passes
/// `--context scripted`, so `--context` is honoured or the test fails.
fn kubeconfig(dir: &Path, addr: SocketAddr) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: scripted\n  cluster: {{server: \"http://{addr}\"}}\n- name: unreachable\n  cluster: {{server: \"http://127.0.0.1:1\"}}\nusers:\n- name: u\n  user: {{token: test-token}}\ncontexts:\n- name: other\n  context: {{cluster: unreachable, user: u}}\n- name: scripted\n  context: {{cluster: scripted, user: u}}\ncurrent-context: other\n"
        ),
    )
    .unwrap();
    path
}

/// `audit --context scripted ARGS` against a scripted API server serving `api`.
async fn audit_api(api: &Api, args: &[&str]) -> Output {
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    audit(&kubeconfig(dir.path(), addr), args).await
}

async fn audit(kubeconfig: &Path, args: &[&str]) -> Output {
    audit_with(kubeconfig, &["--context", "scripted"], args, &[]).await
}

/// The proxy variables are removed unless `envs` sets them.
async fn audit_with(
    kubeconfig: &Path,
    context: &[&str],
    args: &[&str],
    envs: &[(&str, &str)],
) -> Output {
    // $VOLGUARD_TEST_BIN: see tests/common/mod.rs `volguard_bin`.
    let bin = std::env::var_os("VOLGUARD_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_volguard").into());
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("audit")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(context)
        .args(args)
        .env_remove("KUBECONFIG");
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_forbidden_kind_and_owners() {
    let api = Api {
        forbidden: Some("statefulsets"),
        ..Default::default()
    };
    let out = audit_api(&api, &["--page-size", "2"]).await;
    let (stdout, stderr) = text(&out);
    // Incomplete (one kind forbidden): exit 2, as `check` with an unreadable input.
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");

    // Pods: 7 items, pages of 2, followed to the end with the tokens the server issued.
    let requests = api.inner.lock().unwrap().requests.clone();
    let pods: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods"))
        .collect();
    assert_eq!(pods.len(), 4, "{pods:?}");
    assert!(
        pods[0].contains("limit=2") && !pods[0].contains("continue="),
        "{}",
        pods[0]
    );
    for (page, token) in pods[1..].iter().zip(["tok-2", "tok-4", "tok-6"]) {
        assert!(
            page.contains(&format!("continue={token}")) && page.contains("limit=2"),
            "{page}"
        );
    }
    // Every kind was asked for, in all namespaces, the forbidden one too.
    for path in [
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/daemonsets",
        "/apis/apps/v1/replicasets",
        "/api/v1/replicationcontrollers",
        "/apis/batch/v1/jobs",
        "/apis/batch/v1/cronjobs",
        "/api/v1/podtemplates",
        "/api/v1/pods",
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with(&format!("GET {path}?"))),
            "{path} not listed: {requests:?}"
        );
    }
    assert!(
        stdout.contains(
            "error: statefulsets.apps: cannot list: Forbidden (403): statefulsets.apps is forbidden"
        ),
        "{stdout}"
    );

    // Reported once, at the workload: the Deployment (not its ReplicaSet or Pods), the
    // CronJob (not its Job or Pod). db-0's StatefulSet could not be listed: the Pod is.
    assert!(stdout.contains("shop/Deployment/web: denied\n"), "{stdout}");
    assert!(stdout.contains("shop/Pod/db-0: denied\n"), "{stdout}");
    assert!(stdout.contains("dev/Pod/scratch: denied\n"), "{stdout}");
    assert!(
        stdout.contains("shop/CronJob/nightly: allowed with findings\n"),
        "{stdout}"
    );
    for hidden in ["web-7d4", "nightly-29", "agent-x1", "coredns"] {
        assert!(
            !stdout.contains(&format!("/{hidden}")),
            "{hidden} reported: {stdout}"
        );
    }
    assert!(
        stdout.contains("  deny  [emptydir-size-limit-required] spec.template.spec.volumes[0]"),
        "{stdout}"
    );
    // Summaries by rule and by namespace, then the totals.
    assert!(stdout.contains("\nRULE "), "{stdout}");
    let ns_line = stdout
        .lines()
        .find(|l| l.starts_with("shop "))
        .expect("shop in the namespace summary");
    let cols: Vec<&str> = ns_line.split_whitespace().collect();
    assert_eq!(cols, ["shop", "3", "2", "1", "0", "0"], "{stdout}");
    assert!(
        stdout.ends_with("6 objects checked: 3 denied, 1 allowed with findings, 2 clean; 8 reported at their owner; 1 errors\n"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_and_exit_1_when_something_is_denied() {
    let api = Api::default();
    let out = audit_api(&api, &["-o", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<String> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}",
                o["namespace"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "dev/DaemonSet/agent",
            "dev/Pod/scratch",
            "kube-system/Deployment/coredns",
            "shop/Deployment/web",
            "shop/StatefulSet/db",
            "shop/CronJob/nightly",
        ]
    );
    // The same object entries as `check --output json`.
    let web = &v["objects"][3];
    assert_eq!(web["allowed"], false);
    assert_eq!(web["file"], "cluster");
    assert_eq!(web["violations"][0]["rule"], "emptydir-size-limit-required");
    assert_eq!(web["violations"][0]["action"], "deny");
    assert_eq!(v["objects"][2]["skipped"], "exempt namespace");
    let s = &v["summary"];
    assert_eq!(
        (
            s["objects"].as_u64(),
            s["denied"].as_u64(),
            s["reportedAtOwner"].as_u64()
        ),
        (Some(6), Some(3), Some(9))
    );
    assert_eq!(s["byRule"]["emptydir-size-limit-required"]["objects"], 3);
    assert_eq!(s["byRule"]["volume-unused"]["warn"], 1);
    assert_eq!(s["byNamespace"]["shop"]["denied"], 2);
    assert_eq!(s["byNamespace"]["kube-system"]["exempt"], 1);
    assert_eq!(v["errors"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_selector_and_policy_from_configmap() {
    let api = Api {
        policy_configmap: Some("mode: warn\n"),
        ..Default::default()
    };
    let out = audit_api(
        &api,
        &[
            "-n",
            "shop",
            "-l",
            "app=web",
            "--policy-configmap",
            "ops/volguard-policy",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    // mode: warn turns every deny into a warning, as the webhook would: nothing denied.
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(
            "shop/Deployment/web: allowed with findings\n  warn  [emptydir-size-limit-required]"
        ),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 objects checked: 0 denied, 1 allowed with findings, 0 clean; 3 reported at their owner; 0 errors\n"), "{stdout}");
    let requests = api.inner.lock().unwrap().requests.clone();
    let lists: Vec<&String> = requests.iter().filter(|r| r.contains("limit=")).collect();
    assert_eq!(lists.len(), 9);
    for r in lists {
        assert!(
            r.contains("/namespaces/shop/")
                && r.contains("labelSelector=app%3Dweb")
                && r.contains("limit=500"),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_policy_configmap_means_the_embedded_default() {
    let api = Api::default();
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["-n", "dev", "--policy-configmap", "ops/volguard-policy"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    // As `serve` does: no ConfigMap, the embedded default (which denies dev/Pod/scratch).
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stderr,
        "note: configmap ops/volguard-policy not found: the embedded default policy\n"
    );
    assert!(stdout.starts_with("dev/Pod/scratch: denied\n"), "{stdout}");
    let requests = api.inner.lock().unwrap().requests.clone();
    assert_eq!(
        requests[0],
        "GET /api/v1/namespaces/ops/configmaps/volguard-policy"
    );
    // --exit-zero: denied objects do not fail the run; errors still would.
    let out = audit(&kubeconfig(dir.path(), addr), &["-n", "dev", "--exit-zero"]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policyreports_by_server_side_apply_valid_against_the_crd() {
    // An earlier audit left reports in shop and in gone (nothing there any more); x's
    // report named "other" is not volguard's.
    let api = Api {
        crd_installed: true,
        earlier_reports: vec![("shop", "volguard"), ("gone", "volguard"), ("x", "other")],
        ..Default::default()
    };
    let out = audit_api(&api, &["--report", "policyreport", "--page-size", "3"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.ends_with("; 4 PolicyReports applied\n"), "{stdout}");
    let requests = api.inner.lock().unwrap().requests.clone();
    assert!(
        requests.iter().any(
            |r| r.starts_with("GET /apis/wgpolicyk8s.io/v1alpha2/policyreports?")
                && r.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dvolguard")
        ),
        "{requests:?}"
    );
    let patches = api.inner.lock().unwrap().patches.clone();
    let namespaces: Vec<&str> = patches
        .iter()
        .map(|p| p.3["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["dev", "kube-system", "shop", "gone"]);
    let schema = crd_schema();
    for (path, query, content_type, body) in &patches {
        let ns = body["metadata"]["namespace"].as_str().unwrap();
        assert_eq!(
            path,
            &format!("/apis/wgpolicyk8s.io/v1alpha2/namespaces/{ns}/policyreports/volguard")
        );
        assert_eq!(content_type, "application/apply-patch+yaml");
        assert_eq!(
            query.get("fieldManager").map(String::as_str),
            Some("volguard")
        );
        assert_eq!(query.get("force").map(String::as_str), Some("true"));
        assert_eq!(body["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(body["kind"], "PolicyReport");
        let errors = validate(&schema, body);
        assert!(errors.is_empty(), "{ns}: {errors:#?}\n{body:#}");
        if let Ok(out_dir) = std::env::var("VOLGUARD_AUDIT_REPORTS_DIR") {
            std::fs::create_dir_all(&out_dir).unwrap();
            std::fs::write(
                Path::new(&out_dir).join(format!("{ns}.json")),
                serde_json::to_vec_pretty(body).unwrap(),
            )
            .unwrap();
        }
    }
    // Results per object and rule, counted in the summary.
    let shop = &patches[2].3;
    let results = shop["results"].as_array().unwrap();
    let web: Vec<&Value> = results
        .iter()
        .filter(|r| r["resources"][0]["name"] == "web")
        .collect();
    assert_eq!(web.len(), 1, "{web:#?}");
    assert_eq!(web[0]["rule"], "emptydir-size-limit-required");
    assert_eq!(web[0]["result"], "fail");
    assert_eq!(web[0]["severity"], "high");
    assert_eq!(web[0]["policy"], "volguard");
    assert_eq!(web[0]["source"], "volguard");
    assert_eq!(
        web[0]["resources"][0],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop", "uid": "d-web"})
    );
    assert_eq!(
        web[0]["properties"]["paths"],
        "spec.template.spec.volumes[0].emptyDir"
    );
    let nightly = results
        .iter()
        .find(|r| r["resources"][0]["kind"] == "CronJob")
        .unwrap();
    assert_eq!(
        (&nightly["result"], &nightly["rule"]),
        (&json!("warn"), &json!("volume-unused"))
    );
    let count = |r: &str| results.iter().filter(|x| x["result"] == r).count() as u64;
    for r in ["pass", "fail", "warn", "error", "skip"] {
        assert_eq!(shop["summary"][r].as_u64(), Some(count(r)), "summary.{r}");
    }
    assert_eq!(
        patches[1].3["results"][0]["result"], "skip",
        "kube-system is exempt"
    );
    assert_eq!(
        patches[0].3["summary"]["pass"], 1,
        "dev/DaemonSet/agent is clean"
    );
    // The stale report is emptied, not left behind.
    assert_eq!(patches[3].3["results"], json!([]));
    assert_eq!(
        patches[3].3["summary"],
        json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_policyreport_crd_is_a_clear_error() {
    let api = Api::default();
    let out = audit_api(&api, &["--report", "policyreport"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed; install it (e.g. from Kyverno or Policy Reporter) or run without --report"
    );
    let requests = api.inner.lock().unwrap().requests.clone();
    assert!(
        !requests.iter().any(|r| r.contains("limit=")),
        "nothing listed before the check: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_exits_2() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let out = audit(&kubeconfig(dir.path(), addr), &[]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach the Kubernetes API: "),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

// ---------------------------------------------------------------------------------------
// A real cluster's churn (issue 23): compaction, server errors, namespaces going away,
// reports larger than etcd takes, selectors.

fn patched(api: &Api) -> Vec<(String, String, Value)> {
    api.inner
        .lock()
        .unwrap()
        .patches
        .iter()
        .map(|p| {
            (
                p.3["metadata"]["namespace"].as_str().unwrap().to_owned(),
                p.3["metadata"]["name"].as_str().unwrap().to_owned(),
                p.3.clone(),
            )
        })
        .collect()
}

/// client-go's pager (k8s.io/client-go/tools/pager, `ListPager.list` with
/// `FullListIfExpired`): a 410 on a `continue` request restarts the list in full, and only
/// what that consistent list shows is judged; the pages read before are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_continue_token_relists_in_full() {
    let api = Api {
        faults: Faults {
            expire_continue: Some("pods"),
            // dev/scratch (denied) is deleted while its page's token expires.
            delete_on_expiry: Some("scratch"),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = audit_api(&api, &["--page-size", "1", "-o", "json"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let requests = api.inner.lock().unwrap().requests.clone();
    let pods: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods"))
        .collect();
    // Page 1 (limit=1), the expired continue, then one full list without limit.
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(pods[1].contains("continue="), "{}", pods[1]);
    assert!(
        !pods[2].contains("limit=") && !pods[2].contains("continue="),
        "{}",
        pods[2]
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"scratch"),
        "a deleted Pod from a stale page: {names:?}"
    );
    let mut dedup = names.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), names.len(), "no object twice: {names:?}");
    assert_eq!(v["errors"], json!([]));
    assert_eq!(
        v["notes"],
        json!(["1 list(s) restarted in full after their continue token expired (410)"])
    );
    // The 6 objects of the full cluster minus dev/scratch.
    assert_eq!(v["summary"]["objects"], 5, "{stdout}");
}

/// A 500 (`etcdserver: leader changed`) is retried on the same page; the audit completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let api = Api {
        faults: Faults {
            server_errors: Some(("pods", 2)),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = audit_api(&api, &["--page-size", "3"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with("6 objects checked: 3 denied, 1 allowed with findings, 2 clean; 9 reported at their owner; 0 errors\n"),
        "{stdout}"
    );
    let requests = api.inner.lock().unwrap().requests.clone();
    let tok3 = requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods") && r.contains("continue=tok-3"))
        .count();
    assert_eq!(tok3, 3, "the failed page asked again, twice: {requests:?}");
}

/// A kind that cannot be read completely: no PolicyReport is written (an earlier report
/// would otherwise show findings as fixed), the audit says so and exits 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_listing_writes_no_report() {
    let api = Api {
        crd_installed: true,
        earlier_reports: vec![("shop", "volguard"), ("gone", "volguard")],
        faults: Faults {
            always_500_on_continue: Some("pods"),
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &[
            "--report",
            "policyreport",
            "--page-size",
            "3",
            "--exit-zero",
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        patched(&api).is_empty(),
        "nothing written: {:?}",
        patched(&api)
    );
    assert!(
        stdout.contains("error: pods: cannot list: InternalError (500): Internal error occurred: etcdserver: leader changed\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: no PolicyReport written: not every kind could be read completely (errors above); the reports of earlier audits are left as they were\n"),
        "{stdout}"
    );
    // Pods were dropped entirely, not judged from the pages read.
    assert!(!stdout.contains("dev/Pod/scratch"), "{stdout}");

    // Namespaced: the same failure withholds that namespace's report only (here: all of it).
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["--report", "policyreport", "--page-size", "1", "-n", "shop"],
    )
    .await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(patched(&api).is_empty(), "{:?}", patched(&api));
    assert!(
        stdout.contains("note: no PolicyReport written in namespace(s) shop: not read completely (errors above)\n"),
        "{stdout}"
    );
}

/// Namespaces deleted (404) or terminating (403 NamespaceTerminating) between the listing
/// and the write are skipped and counted, and the audit succeeds; a failed write is an
/// error and is not counted as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_gone_are_skipped_and_failed_writes_not_counted() {
    let api = Api {
        crd_installed: true,
        // kube-system's report exists: an update there is allowed even while terminating.
        earlier_reports: vec![("kube-system", "volguard")],
        faults: Faults {
            deleted_namespaces: vec!["dev"],
            terminating_namespaces: vec!["shop", "kube-system"],
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["--report", "policyreport", "--exit-zero"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "note: namespace(s) dev, shop deleted or terminating since listed: report(s) skipped\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("; 0 errors; 1 PolicyReports applied; 2 namespaces gone\n"),
        "{stdout}"
    );
    let written: Vec<(String, String)> = patched(&api).into_iter().map(|p| (p.0, p.1)).collect();
    assert_eq!(written, [("kube-system".to_owned(), "volguard".to_owned())]);

    let api = Api {
        crd_installed: true,
        faults: Faults {
            apply_500: Some("shop"),
            ..Default::default()
        },
        ..Default::default()
    };
    let addr = start(api.clone()).await;
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["--report", "policyreport", "-o", "json"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["reports"]["written"], 2, "dev and kube-system, not shop");
    assert_eq!(
        v["errors"],
        json!([
            "shop/PolicyReport/volguard: cannot apply: InternalError (500): Internal error occurred: etcdserver: leader changed"
        ])
    );
}

/// 3,500 failing Pods in one namespace (~500 B of report each, 1.7 MiB in one report,
/// over etcd's 1.5 MiB): written as parts under the limit, every result kept; a part an
/// earlier, larger audit left is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_the_etcd_limit_is_split() {
    let api = Api {
        crd_installed: true,
        earlier_reports: vec![("big", "volguard"), ("big", "volguard-7")],
        faults: Faults {
            big_namespace_pods: 3500,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = audit_api(
        &api,
        &["--report", "policyreport", "-n", "big", "-o", "json"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{stderr}",
        &stdout[stdout.len().saturating_sub(2000)..]
    );
    let parts = patched(&api);
    let names: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(names, ["volguard", "volguard-2", "volguard-7"], "{names:?}");
    let mut results = 0;
    let schema = crd_schema();
    for (_, name, body) in &parts {
        let len = serde_json::to_vec(body).unwrap().len();
        assert!(len <= 1024 * 1024, "{name}: {len} bytes");
        assert!(validate(&schema, body).is_empty(), "{name}");
        let n = body["results"].as_array().unwrap().len();
        assert_eq!(
            body["summary"]["fail"], n,
            "{name}: its own results summarised"
        );
        results += n;
    }
    assert_eq!(results, 3500);
    let total: usize = parts
        .iter()
        .map(|p| serde_json::to_vec(&p.2).unwrap().len())
        .sum();
    assert!(
        total > ETCD_MAX_REQUEST_BYTES,
        "one report would not fit: {total} bytes"
    );
    assert_eq!(
        parts[2].2["results"],
        json!([]),
        "the stale part is emptied"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["reports"]["written"], 3);
}

/// With `--selector`, reports go to a set of their own (`volguard-l-<hash>`): the full
/// audit's reports are neither replaced by a subset nor emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_reports_leave_the_full_reports_alone() {
    let api = Api {
        crd_installed: true,
        earlier_reports: vec![("shop", "volguard"), ("dev", "volguard")],
        ..Default::default()
    };
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["--report", "policyreport", "-l", "app=web"],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let parts = patched(&api);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let (ns, name, body) = &parts[0];
    assert_eq!(ns, "shop");
    assert!(
        name.starts_with("volguard-l-") && name.len() == 21,
        "{name}"
    );
    assert_eq!(
        body["metadata"]["annotations"]["volguard.io/selector"],
        "app=web"
    );
    assert_eq!(body["results"][0]["resources"][0]["name"], "web");
    // A later run with the same selector finds its own earlier report in dev (where nothing
    // matches now) and empties it; the full audit's reports stay untouched.
    let own: &'static str = Box::leak(name.clone().into_boxed_str());
    let api2 = Api {
        crd_installed: true,
        earlier_reports: vec![("shop", "volguard"), ("dev", "volguard"), ("dev", own)],
        ..Default::default()
    };
    let addr = start(api2.clone()).await;
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["--report", "policyreport", "-l", "app=web"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let written: Vec<(String, String, bool)> = patched(&api2)
        .into_iter()
        .map(|p| (p.0, p.1, p.2["results"] == json!([])))
        .collect();
    assert_eq!(
        written,
        [
            ("shop".to_owned(), own.to_owned(), false),
            ("dev".to_owned(), own.to_owned(), true)
        ]
    );
}

/// A CONNECT proxy on loopback, as corporate egress proxies are: records each CONNECT
/// target and tunnels it, resolving every host to 127.0.0.1 (the API server's name is
/// resolved by the proxy, never by the client).
async fn connect_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if conn.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                log.lock().unwrap().push(format!(
                    "{} {target}",
                    head.split_whitespace().next().unwrap_or("")
                ));
                let port = target.rsplit_once(':').map_or("80", |t| t.1).to_owned();
                let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await
                else {
                    return;
                };
                conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
            });
        }
    });
    (addr, seen)
}

/// kubectl's proxy rules (client-go: `http.ProxyFromEnvironment`, Go's
/// `golang.org/x/net/http/httpproxy`): the proxy variable of the server's scheme, unless
/// NO_PROXY names the API server. NO_PROXY listing the proxy's own address (a common
/// `127.0.0.1,localhost` default) must not turn the proxy off, as kube 5 alone would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_from_the_environment_as_kubectl() {
    let api = Api::default();
    let addr = start(api.clone()).await;
    let (proxy, seen) = connect_proxy().await;
    let dir = tempfile::tempdir().unwrap();
    // A name only the proxy resolves.
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://api.volguard.test:{}\"}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            addr.port()
        ),
    )
    .unwrap();
    let proxy_url = format!("http://{proxy}");
    let out = audit_with(
        &kc,
        &[],
        &["-n", "dev"],
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "127.0.0.1,localhost,.svc"),
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("dev/Pod/scratch: denied\n"), "{stdout}");
    let tunnels = seen.lock().unwrap().clone();
    assert!(!tunnels.is_empty(), "nothing went through the proxy");
    assert!(
        tunnels
            .iter()
            .all(|t| t == &format!("CONNECT api.volguard.test:{}", addr.port())),
        "{tunnels:?}"
    );

    // NO_PROXY naming the API server's domain: direct, so the name does not resolve.
    seen.lock().unwrap().clear();
    let out = audit_with(
        &kc,
        &[],
        &["-n", "dev", "--read-timeout", "5"],
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("NO_PROXY", "example.com, .volguard.test"),
        ],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach the Kubernetes API: "),
        "{stderr}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

/// An exec credential plugin (client.authentication.k8s.io/v1, as cloud CLIs install them):
/// its token is what the API server sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_credential_plugin() {
    let api = Api::default();
    let addr = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho '{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", \"status\": {\"token\": \"from-exec-plugin\"}}'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://{addr}\"}}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            plugin.display()
        ),
    )
    .unwrap();
    let out = audit_with(&kc, &[], &["-n", "dev"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let auth = api.inner.lock().unwrap().auth.clone();
    assert!(!auth.is_empty());
    assert!(
        auth.iter().all(|a| a == "Bearer from-exec-plugin"),
        "{auth:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The CRD's OpenAPI v3 schema, applied as the apiserver applies a structural schema.

fn crd_schema() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/policyreport/wgpolicyk8s.io_policyreports.yaml"
    ))
    .unwrap();
    let crd: Value = serde_yaml_ng::from_str(&text).unwrap();
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha2")
        .unwrap();
    version["schema"]["openAPIV3Schema"].clone()
}

/// Type, enum, required, items, properties, additionalProperties and integer formats.
/// A field the schema does not declare is an error: the apiserver would prune it silently.
fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "" => true,
        other => panic!("schema type {other} not handled"),
    };
    if !ok {
        errors.push(format!("{at}: expected {ty}, got {v}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        errors.push(format!("{at}: {v} not in {allowed:?}"));
    }
    match schema["format"].as_str() {
        Some("int32") if v.as_i64().is_none_or(|n| i32::try_from(n).is_err()) => {
            errors.push(format!("{at}: {v} is not an int32"))
        }
        Some("int64") if v.as_i64().is_none() => errors.push(format!("{at}: {v} is not an int64")),
        _ => {}
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {req}"));
            }
        }
        let props = schema["properties"].as_object();
        let additional = schema.get("additionalProperties");
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (k, child) in obj {
            let here = format!("{at}.{k}");
            match (props.and_then(|p| p.get(k)), additional) {
                (Some(s), _) => check(s, child, &here, errors),
                (None, Some(s)) => check(s, child, &here, errors),
                // `type: object` alone (metadata) keeps anything.
                (None, None) if props.is_none() || preserve => {}
                (None, None) => errors.push(format!("{here}: not in the schema (would be pruned)")),
            }
        }
    }
}

#[test]
fn the_schema_check_rejects_what_the_apiserver_would() {
    let schema = crd_schema();
    let good = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "metadata": {"name": "x"},
        "results": [{"policy": "p", "result": "fail", "severity": "high", "timestamp": {"seconds": 1, "nanos": 0},
                     "properties": {"a": "b"}, "resources": [{"kind": "Pod", "name": "n"}]}],
        "summary": {"pass": 0, "fail": 1}});
    assert_eq!(validate(&schema, &good), Vec::<String>::new());
    for (pointer, bad, want) in [
        ("/results/0/result", json!("deny"), "not in"),
        ("/results/0/severity", json!("severe"), "not in"),
        (
            "/results/0/timestamp",
            json!({"seconds": 1}),
            "missing required \"nanos\"",
        ),
        (
            "/results/0/timestamp/nanos",
            json!(5_000_000_000u64),
            "int32",
        ),
        ("/results/0/properties", json!({"n": 1}), "expected string"),
        (
            "/results/0/resources/0/extra",
            json!("x"),
            "would be pruned",
        ),
        ("/summary/fail", json!("1"), "expected integer"),
        ("/results/0/policy", Value::Null, "expected string"),
    ] {
        let mut doc = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), bad);
        let errors = validate(&schema, &doc);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{pointer}: {errors:?}"
        );
    }
    let mut no_policy = good.clone();
    no_policy["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("policy");
    assert!(
        validate(&schema, &no_policy)
            .iter()
            .any(|e| e.contains("missing required \"policy\""))
    );
}

/// The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in docs/audit.md,
/// without its code fence.
fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit.md")).unwrap();
    let begin = format!("<!-- {name}:begin -->\n");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("docs/audit.md has no {begin}"))
        + begin.len();
    let end = start
        + readme[start..]
            .find(&format!("<!-- {name}:end -->"))
            .expect("end marker");
    let block = &readme[start..end];
    let block = block
        .strip_prefix("```\n")
        .or_else(|| block.strip_prefix("```json\n"))
        .expect("a code fence");
    block
        .strip_suffix("```\n")
        .expect("a closing fence")
        .to_owned()
}

/// docs/audit.md: its example output is what the binary prints against this
/// scripted server (statefulsets forbidden, pages of 2), and its PolicyReport is the
/// body applied for namespace dev (timestamp aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_are_the_binary_output() {
    let api = Api {
        forbidden: Some("statefulsets"),
        ..Default::default()
    };
    let addr = start(api).await;
    let dir = tempfile::tempdir().unwrap();
    let out = audit(&kubeconfig(dir.path(), addr), &["--page-size", "2"]).await;
    let (stdout, _) = text(&out);
    let shown = format!(
        "$ volguard audit --page-size 2\n{stdout}$ echo $?\n{}\n",
        out.status.code().unwrap()
    );
    assert_eq!(
        readme_block("audit-output"),
        shown,
        "docs/audit.md audit-output block is stale; the binary prints:\n{shown}"
    );

    let api = Api {
        crd_installed: true,
        ..Default::default()
    };
    let addr = start(api.clone()).await;
    let out = audit(
        &kubeconfig(dir.path(), addr),
        &["-n", "dev", "--report", "policyreport"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let mut body = api.inner.lock().unwrap().patches[0].3.clone();
    let readme: Value = serde_json::from_str(&readme_block("audit-policyreport")).unwrap();
    for r in body["results"].as_array_mut().unwrap() {
        assert!(r["timestamp"]["seconds"].as_i64().unwrap() > 1_700_000_000);
        r["timestamp"] = readme["results"][0]["timestamp"].clone();
    }
    assert_eq!(
        readme, body,
        "docs/audit.md audit-policyreport block is stale; the binary applies:\n{body:#}"
    );
}
