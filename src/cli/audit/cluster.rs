//! The Kubernetes API side of `audit`: the client (as kubectl finds it), the policy from a
//! ConfigMap, and paginated lists of every kind the engine judges, as raw JSON decoded with
//! the engine's own model ([`Object`]), never with typed client structs.

use std::path::Path;

use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Request;
use kube::{Client, Config};
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
}

/// The client, found as kubectl finds it: `--kubeconfig` (with `--context`), else
/// `$KUBECONFIG` or `~/.kube/config`, else the in-cluster service account.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, String> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match (kubeconfig, context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| format!("{}: cannot read kubeconfig: {e}", path.display()))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("kubeconfig: {e}"))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes API configuration: {e}"))?,
    };
    let url = config.cluster_url.clone();
    Client::try_from(config).map_err(|e| format!("Kubernetes API client for {url}: {e}"))
}

/// The policy in `namespace/name` key `policy.yaml`, read as `serve --policy-configmap`
/// reads it: a missing ConfigMap or key means the embedded default (said on stderr).
pub async fn policy_from_configmap(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Policy, String> {
    #[derive(Deserialize)]
    struct ConfigMap {
        #[serde(default)]
        data: std::collections::BTreeMap<String, String>,
    }
    let key = crate::source::configmap::KEY;
    let source = format!("configmap {namespace}/{name}");
    let req = Request::new(format!("/api/v1/namespaces/{namespace}/configmaps"))
        .get(name, &Default::default())
        .map_err(|e| format!("{source}: {e}"))?;
    match client.request_text(req).await {
        Ok(text) => {
            let cm: ConfigMap =
                serde_json::from_str(&text).map_err(|e| format!("{source}: {e}"))?;
            match cm.data.get(key) {
                Some(text) => {
                    Policy::parse(text, &format!("{source} key {key}")).map_err(|e| e.to_string())
                }
                None => {
                    eprintln!("note: {source} has no {key} key: the embedded default policy");
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
/// an error entry and the other kinds are still listed. `Err` when the API cannot be
/// reached at all.
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
                ListError::Kind(message) => listed.errors.push(InputError {
                    file: Some(resource),
                    line: None,
                    message: format!("cannot list: {message}"),
                }),
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

async fn list_kind(
    client: &Client,
    scope: &Scope,
    kind: &'static str,
    api_version: &str,
    path: &str,
    listed: &mut Listed,
) -> Result<(), ListError> {
    let mut continue_token: Option<String> = None;
    loop {
        let params = ListParams {
            label_selector: scope.selector.clone(),
            limit: Some(scope.page_size),
            continue_token: continue_token.take(),
            ..Default::default()
        };
        let req = Request::new(path)
            .list(&params)
            .map_err(|e| ListError::Fatal(e.to_string()))?;
        let text = client.request_text(req).await.map_err(|e| match e {
            kube::Error::Api(_) => ListError::Kind(describe(&e)),
            e => ListError::Fatal(format!("cannot reach the Kubernetes API: {}", describe(&e))),
        })?;
        let page: Page = serde_json::from_str(&text)
            .map_err(|e| ListError::Kind(format!("malformed list response: {e}")))?;
        for raw in page.items.unwrap_or_default() {
            match decode_item(kind, api_version, raw) {
                Ok(item) => listed.items.push(item),
                Err(e) => listed.errors.push(e),
            }
        }
        match page.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(token) => continue_token = Some(token),
            None => return Ok(()),
        }
    }
}

/// Decodes one listed item with the engine's model, exactly as an AdmissionReview's
/// `object` is decoded.
fn decode_item(
    kind: &'static str,
    api_version: &str,
    raw: serde_json::Value,
) -> Result<Item, InputError> {
    let meta = ItemMeta::deserialize(&raw)
        .map(|m| m.metadata)
        .unwrap_or_default();
    let object = Object::deserialize(raw).map_err(|e| InputError {
        file: Some(format!("{}/{kind}/{}", meta.namespace, meta.name)),
        line: None,
        message: format!("cannot decode: {e}"),
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

/// An API error as kubectl would say it: the Status message, its reason and code.
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
        e => {
            // The innermost cause says what happened (connection refused, TLS...).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
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
    }
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
        let e = decode_item("Pod", "v1", raw).unwrap_err();
        assert_eq!(e.file.as_deref(), Some("ns/Pod/p"));
        assert!(e.message.starts_with("cannot decode"), "{}", e.message);
    }
}
