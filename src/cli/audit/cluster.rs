//! The Kubernetes API side of `audit`: the client (as kubectl finds it), the policy from a
//! ConfigMap, and paginated lists of every kind the engine judges, as raw JSON decoded with
//! the engine's own model ([`Object`]), never with typed client structs.

use std::path::Path;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use kube::api::ListParams;
use kube::core::Request;
use serde::Deserialize;

use crate::cli::check::report::InputError;
use crate::engine::model::Object;
use crate::engine::policy::Policy;

/// Where each kind of `POD_KINDS` is listed: kind, group, version, plural.
pub const KINDS: &[(&str, &str, &str, &str)] = &[
    ("Deployment", "apps", "v1", "deployments"),
    ("StatefulSet", "apps", "v1", "statefulsets"),
    ("DaemonSet", "apps", "v1", "daemonsets"),
    ("ReplicaSet", "apps", "v1", "replicasets"),
    ("ReplicationController", "", "v1", "replicationcontrollers"),
    ("CronJob", "batch", "v1", "cronjobs"),
    ("Job", "batch", "v1", "jobs"),
    ("PodTemplate", "", "v1", "podtemplates"),
    ("Pod", "", "v1", "pods"),
];

/// What to list.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    pub selector: Option<String>,
    pub page_size: u32,
}

/// One listed object: what the engine reads, and what the report needs to name it.
#[derive(Debug)]
pub struct Item {
    pub kind: &'static str,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The `uid` of the first owner reference with `controller: true`, as Kubernetes
    /// finds an object's controller (apimachinery pkg/apis/meta/v1/controller_ref.go,
    /// `GetControllerOfNoCopy`; `IsControlledBy` then compares UIDs).
    pub controller_uid: Option<String>,
    /// Owns its strings (decoded from the listed item by value).
    pub object: Object<'static>,
}

#[derive(Debug, Default)]
pub struct Listed {
    pub items: Vec<Item>,
    /// Kinds that could not be listed (403, 404...) and items that could not be decoded.
    pub errors: Vec<InputError>,
    /// What was not read completely; a PolicyReport is never written for it.
    pub unread: Unread,
    /// Lists restarted in full after a `continue` token expired (410).
    pub relists: usize,
    /// Requests repeated after a server error (500) or a broken connection.
    pub retries: usize,
}

/// Where the listing is incomplete: everywhere (a kind failed in an all-namespaces list) or
/// in these namespaces (an item that could not be decoded, a namespaced list that failed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unread {
    pub all: bool,
    pub namespaces: BTreeSet<String>,
}

impl Unread {
    pub fn is_empty(&self) -> bool {
        !self.all && self.namespaces.is_empty()
    }
    pub fn covers(&self, namespace: &str) -> bool {
        self.all || self.namespaces.contains(namespace)
    }
}

/// How often a request that failed with a server error (500) or a broken connection is
/// repeated, and the first pause (doubled each time). 429, 503 and 504 are retried by kube's
/// own client (its `RetryPolicy::server_retry`, honouring `Retry-After`) before this.
pub const RETRIES: u32 = 3;
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The client, found as kubectl finds it (see [`crate::source::client`]): `--kubeconfig`
/// (with `--context`), else `$KUBECONFIG` or `~/.kube/config`, else the in-cluster service
/// account; proxies from the environment; `read_timeout` between reads of a response.
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    read_timeout: std::time::Duration,
) -> Result<Client, String> {
    crate::source::client::client(kubeconfig, context, read_timeout)
        .await
        .map_err(|e| e.to_string())
}

/// The policy in `namespace/name` key `policy.yaml`, read as `serve --policy-configmap`
/// reads it: a missing ConfigMap or key means the embedded default (said on stderr).
pub async fn policy_from_configmap(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Policy, String> {
    use crate::source::configmap::{ConfigMap, KEY, names};
    let (source, file) = names(namespace, name);
    let req = Request::new(format!("/api/v1/namespaces/{namespace}/configmaps"))
        .get(name, &Default::default())
        .map_err(|e| format!("{source}: {e}"))?;
    match client.request_text(req).await {
        Ok(text) => {
            let cm: ConfigMap =
                serde_json::from_str(&text).map_err(|e| format!("{source}: {e}"))?;
            match cm.policy_text() {
                Some(text) => Policy::parse(text, &file).map_err(|e| e.to_string()),
                None => {
                    eprintln!("note: {source} has no {KEY} key: the embedded default policy");
                    Ok(Policy::default())
                }
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            eprintln!("note: {source} not found: the embedded default policy");
            Ok(Policy::default())
        }
        Err(e) => Err(format!("{source}: {}", describe(&e))),
    }
}

/// A list page: its continue token and its items, still raw.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMeta,
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
}

#[derive(Default, Deserialize)]
struct PageMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// The identity fields of an item; the engine's [`Object`] reads the rest. Owner
/// references are decoded here, locally, from the same JSON.
#[derive(Deserialize)]
struct ItemMeta {
    #[serde(default)]
    metadata: ItemMetadata,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemMetadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    owner_references: Option<Vec<OwnerRef>>,
}

#[derive(Deserialize)]
struct OwnerRef {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    controller: Option<bool>,
}

/// Lists every kind. A kind the API refuses (403 Forbidden, 404 on an old cluster...) is
/// an error entry, marked unread, and the other kinds are still listed. `Err` when the API
/// cannot be reached at all.
pub async fn list_all(client: &Client, scope: &Scope) -> Result<Listed, String> {
    let mut listed = Listed::default();
    for &(kind, group, version, plural) in KINDS {
        let resource = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let api_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = match &scope.namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{plural}"),
            None => format!("{base}/{plural}"),
        };
        if let Err(e) = list_kind(client, scope, kind, &api_version, &path, &mut listed).await {
            match e {
                ListError::Fatal(e) => return Err(e),
                ListError::Kind(message) => {
                    match &scope.namespace {
                        Some(ns) => {
                            listed.unread.namespaces.insert(ns.clone());
                        }
                        None => listed.unread.all = true,
                    }
                    listed.errors.push(InputError {
                        file: Some(resource),
                        line: None,
                        message: format!("cannot list: {message}"),
                    })
                }
            }
        }
    }
    Ok(listed)
}

enum ListError {
    /// The API is unreachable (or the client misconfigured): nothing can be audited.
    Fatal(String),
    /// This kind could not be listed.
    Kind(String),
}

/// One kind, page by page. Pages are all-or-nothing per kind: what a kind's failed listing
/// read is dropped, so its objects are neither judged nor reported.
///
/// A `continue` token that expired (410 Expired: etcd compacted the revision the first page
/// was read at, after about 5 minutes) restarts the kind with one full list, as client-go's
/// pager does (`k8s.io/client-go/tools/pager` `ListPager.list` with `FullListIfExpired`):
/// the 410's own fallback token would continue an inconsistent list. A 500 (`etcdserver:
/// leader changed`) or a broken connection repeats the same page [`RETRIES`] times.
async fn list_kind(
    client: &Client,
    scope: &Scope,
    kind: &'static str,
    api_version: &str,
    path: &str,
    listed: &mut Listed,
) -> Result<(), ListError> {
    let (items_before, errors_before) = (listed.items.len(), listed.errors.len());
    let mut continue_token: Option<String> = None;
    let mut limit = Some(scope.page_size);
    let mut attempt = 0;
    let mut undecodable: BTreeSet<String> = BTreeSet::new();
    loop {
        let params = ListParams {
            label_selector: scope.selector.clone(),
            limit,
            continue_token: continue_token.clone(),
            ..Default::default()
        };
        let req = Request::new(path)
            .list(&params)
            .map_err(|e| ListError::Fatal(e.to_string()))?;
        let text = match client.request_text(req).await {
            Ok(text) => text,
            Err(kube::Error::Api(s))
                if s.code == 410 && continue_token.is_some() && limit.is_some() =>
            {
                listed.relists += 1;
                listed.items.truncate(items_before);
                listed.errors.truncate(errors_before);
                undecodable.clear();
                continue_token = None;
                limit = None;
                attempt = 0;
                continue;
            }
            Err(e) if attempt < RETRIES && retryable(&e) => {
                listed.retries += 1;
                tokio::time::sleep(RETRY_PAUSE * 2u32.pow(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(e @ kube::Error::Api(_)) => {
                drop_partial(listed, items_before, errors_before);
                return Err(ListError::Kind(describe(&e)));
            }
            Err(e) => {
                return Err(ListError::Fatal(format!(
                    "cannot reach the Kubernetes API: {}",
                    describe(&e)
                )));
            }
        };
        attempt = 0;
        let page: Page = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                drop_partial(listed, items_before, errors_before);
                return Err(ListError::Kind(format!("malformed list response: {e}")));
            }
        };
        for raw in page.items.unwrap_or_default() {
            match decode_item(kind, api_version, raw) {
                Ok(item) => listed.items.push(item),
                Err((namespace, e)) => {
                    undecodable.insert(namespace);
                    listed.errors.push(e);
                }
            }
        }
        match page.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(token) if limit.is_some() => continue_token = Some(token),
            _ => {
                listed.unread.namespaces.extend(undecodable);
                return Ok(());
            }
        }
    }
}

fn drop_partial(listed: &mut Listed, items_before: usize, errors_before: usize) {
    listed.items.truncate(items_before);
    listed.errors.truncate(errors_before);
}

/// A server error worth repeating the request for: 500 (`etcdserver: leader changed`, a
/// timeout inside the API server), 429/503/504 left over after kube's own retries, or the
/// connection (reset, read timeout).
fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Decodes one listed item with the engine's model, exactly as an AdmissionReview's
/// `object` is decoded.
/// An item that cannot be decoded is an error naming it, with its namespace (whose report
/// is then not written).
fn decode_item(
    kind: &'static str,
    api_version: &str,
    raw: serde_json::Value,
) -> Result<Item, (String, InputError)> {
    let meta = ItemMeta::deserialize(&raw)
        .map(|m| m.metadata)
        .unwrap_or_default();
    let object = Object::deserialize(raw).map_err(|e| {
        (
            meta.namespace.clone(),
            InputError {
                file: Some(format!("{}/{kind}/{}", meta.namespace, meta.name)),
                line: None,
                message: format!("cannot decode: {e}"),
            },
        )
    })?;
    let controller_uid = meta
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid)
        .filter(|uid| !uid.is_empty());
    Ok(Item {
        kind,
        api_version: api_version.to_owned(),
        namespace: meta.namespace,
        name: meta.name,
        uid: meta.uid,
        controller_uid,
        object,
    })
}

/// An API error as kubectl would say it (see [`crate::source::client::describe`]).
pub fn describe(e: &kube::Error) -> String {
    crate::source::client::describe(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_engine_kinds() {
        let mut ours: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
        let mut engine = crate::engine::workload::POD_KINDS.to_vec();
        ours.sort();
        engine.sort();
        assert_eq!(ours, engine);
    }

    #[test]
    fn decodes_identity_and_controller_owner() {
        let raw = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "other"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs1", "controller": true}]},
            "spec": {"containers": [{"name": "c"}]}});
        let item = decode_item("Pod", "v1", raw).unwrap();
        assert_eq!(
            (
                item.namespace.as_str(),
                item.name.as_str(),
                item.uid.as_str()
            ),
            ("shop", "web-1", "u1")
        );
        assert_eq!(item.controller_uid.as_deref(), Some("rs1"));
        assert_eq!(item.object.spec.unwrap().containers[0].name, "c");
        let raw = serde_json::json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "x"}]}});
        assert_eq!(decode_item("Pod", "v1", raw).unwrap().controller_uid, None);
    }

    #[test]
    fn undecodable_item_names_the_object() {
        let raw = serde_json::json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": 3}});
        let (ns, e) = decode_item("Pod", "v1", raw).unwrap_err();
        assert_eq!(ns, "ns");
        assert_eq!(e.file.as_deref(), Some("ns/Pod/p"));
        assert!(e.message.starts_with("cannot decode"), "{}", e.message);
    }
}
