//! The policy from a ConfigMap (key `policy.yaml`), watched through the Kubernetes API with
//! kube's watcher. A missing ConfigMap (or key) means the embedded default.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use super::PolicyStore;

pub const KEY: &str = "policy.yaml";

/// Watches `namespace/name` until the process ends. Connection errors are retried with
/// kube's default backoff; the policy in force stays meanwhile.
pub async fn watch(client: Client, namespace: String, name: String, store: Arc<PolicyStore>) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let source = format!("configmap {namespace}/{name}");
    let file = format!("configmap {namespace}/{name} key {KEY}");
    let mut seen_in_init = false;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => seen_in_init = false,
            Ok(Event::InitApply(cm)) | Ok(Event::Apply(cm)) => {
                seen_in_init = true;
                apply(&store, &cm, &file, &source);
            }
            Ok(Event::InitDone) => {
                if !seen_in_init {
                    store.apply_default(&format!("{source} not found"));
                }
            }
            Ok(Event::Delete(_)) => {
                store.apply_default(&format!("{source} deleted"));
            }
            Err(e) => {
                tracing::warn!(error = %e, source = %source, "ConfigMap watch error; retrying, policy in force kept");
            }
        }
    }
}

fn apply(store: &PolicyStore, cm: &ConfigMap, file: &str, source: &str) {
    match cm.data.as_ref().and_then(|d| d.get(KEY)) {
        Some(text) => {
            let _ = store.apply_text(text, file, source);
        }
        None => {
            store.apply_default(&format!("{source} has no {KEY} key"));
        }
    }
}
