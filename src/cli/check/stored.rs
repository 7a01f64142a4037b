//! The object the apiserver would store from a manifest: decoded case-sensitively against
//! the Kubernetes schema, with unknown fields dropped.
//!
//! The apiserver decodes a request body with `sigs.k8s.io/json` (case-sensitive, unlike
//! `encoding/json`) into the typed object. A key its schema does not have (`emptydir:`,
//! `sizelimit:`, a misplaced `medium:`) is an unknown field: `kubectl apply` refuses it by
//! default (`--validate=strict`, field validation `Strict`), while Helm, client-go and
//! controllers send `Warn` or nothing, and the field is dropped with a warning. The object
//! is then defaulted (`SetDefaults_Volume` makes a volume left without a source
//! `emptyDir: {}`), which [`crate::engine::model`] applies when it decodes.
//!
//! The schema is `k8s-openapi`'s (generated from the Kubernetes OpenAPI document, here at
//! its newest minor): a field is unknown exactly when that typed decode skips it. A value of
//! the wrong JSON type (a number where a string goes) is a decode error: the apiserver
//! refuses the whole object, whatever the field validation.

use k8s_openapi::api::{apps, batch, core};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// What decoding found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The paths of the fields dropped, e.g. `spec.volumes[0].emptydir`, in document order.
    pub unknown_fields: Vec<String>,
}

/// Why the apiserver would refuse the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Where, as a field path (`spec.containers[0].env[0].value`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Turns `value` (a manifest of a workload kind, as JSON) into what the apiserver stores:
/// unknown fields are removed and returned. `Ok(None)` when there is no schema for its
/// `apiVersion`/`kind` here (an API version the apiserver no longer serves, a kind
/// volguard does not judge): the value is left as written.
pub fn decode(value: &mut Value) -> Result<Option<Decoded>, Refused> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let api_version = api_version.as_deref();
    // (kind, the apiVersion the schema is for).
    let found = match kind.as_str() {
        "Pod" => probe::<core::v1::Pod>(value, "v1", api_version),
        "PodTemplate" => probe::<core::v1::PodTemplate>(value, "v1", api_version),
        "ReplicationController" => {
            probe::<core::v1::ReplicationController>(value, "v1", api_version)
        }
        "Deployment" => probe::<apps::v1::Deployment>(value, "apps/v1", api_version),
        "StatefulSet" => probe::<apps::v1::StatefulSet>(value, "apps/v1", api_version),
        "DaemonSet" => probe::<apps::v1::DaemonSet>(value, "apps/v1", api_version),
        "ReplicaSet" => probe::<apps::v1::ReplicaSet>(value, "apps/v1", api_version),
        "Job" => probe::<batch::v1::Job>(value, "batch/v1", api_version),
        "CronJob" => probe::<batch::v1::CronJob>(value, "batch/v1", api_version),
        _ => return Ok(None),
    };
    let Some(paths) = found? else {
        return Ok(None);
    };
    let mut decoded = Decoded::default();
    for path in &paths {
        remove(value, path);
        decoded.unknown_fields.push(display(path));
    }
    Ok(Some(decoded))
}

/// Decodes `value` as `T`, collecting the skipped fields. `None` if `apiVersion` names
/// another version than `T`'s (the schema would not apply).
fn probe<T: DeserializeOwned>(
    value: &mut Value,
    want: &str,
    api_version: Option<&str>,
) -> Result<Option<Vec<Vec<Segment>>>, Refused> {
    if api_version.is_some_and(|v| v != want) {
        return Ok(None);
    }
    // Go's decoder accepts `null` anywhere (a no-op, or a nil pointer, slice or map), where
    // the typed decode here is stricter (a `null` in a map of strings, say): a `null` it
    // stumbles on is replaced, in the object judged too, by what Go stores there (the zero
    // value), and the decode tried again.
    for _ in 0..64 {
        let v = &*value;
        let mut unknown = Vec::new();
        let mut record = |p: serde_ignored::Path| unknown.push(segments(&p));
        let de = serde_ignored::Deserializer::new(v, &mut record);
        let result: Result<T, _> = serde_path_to_error::deserialize(de);
        let e = match result {
            Ok(_) => return Ok(Some(unknown)),
            Err(e) => e,
        };
        let at: Vec<Segment> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                _ => None,
            })
            .collect();
        let refused = Refused {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        };
        if !replace_null(value, &at, &refused.message) {
            return Err(refused);
        }
    }
    Ok(None)
}

/// Replaces the `null` at `path` by Go's zero value for what `message` expected; false if
/// there is no `null` there.
fn replace_null(v: &mut Value, path: &[Segment], message: &str) -> bool {
    let Some(cur) = walk_mut(v, path) else {
        return false;
    };
    if !cur.is_null() {
        return false;
    }
    *cur = if message.contains("expected Quantity") {
        // `Quantity.UnmarshalJSON("null")`: the zero quantity.
        Value::String("0".to_owned())
    } else if message.contains("expected a string") {
        Value::String(String::new())
    } else if message.contains("expected a boolean") {
        Value::Bool(false)
    } else if message.contains("expected i")
        || message.contains("expected u")
        || message.contains("expected f")
    {
        Value::from(0)
    } else if message.contains("sequence") {
        Value::Array(Vec::new())
    } else {
        Value::Object(Default::default())
    };
    true
}

fn segments(p: &serde_ignored::Path) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut cur = p;
    loop {
        match cur {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                out.push(Segment::Index(*index));
                cur = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                out.push(Segment::Key(key.clone()));
                cur = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

/// `spec.volumes[0].emptydir`, as the apiserver's field paths read.
fn display(path: &[Segment]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Segment::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn remove(v: &mut Value, path: &[Segment]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let (Segment::Key(k), Some(Value::Object(m))) = (last, walk_mut(v, parents)) {
        m.remove(k);
    }
}

/// The value at `path`, if every step of it exists.
fn walk_mut<'a>(v: &'a mut Value, path: &[Segment]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |cur, seg| match (seg, cur) {
        (Segment::Key(k), Value::Object(m)) => m.get_mut(k),
        (Segment::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A misspelled source key is dropped; `SetDefaults_Volume`
    /// (`pkg/apis/core/v1/defaults.go`) then makes the volume `emptyDir: {}` when the model
    /// decodes it.
    #[test]
    fn unknown_fields_are_dropped_with_their_paths() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labelz": {}},
            "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "d", "mountpath": "/d"}]}],
                     "volumes": [{"name": "d", "emptydir": {"sizeLimit": "1Gi"}},
                                 {"name": "e", "emptyDir": {"sizelimit": "1Gi", "medium": "Memory"}}]}});
        let d = decode(&mut pod).unwrap().unwrap();
        assert_eq!(
            d.unknown_fields,
            [
                "metadata.labelz",
                "spec.containers[0].volumeMounts[0].mountpath",
                "spec.volumes[0].emptydir",
                "spec.volumes[1].emptyDir.sizelimit"
            ]
        );
        assert_eq!(pod["spec"]["volumes"][0], json!({"name": "d"}));
        assert_eq!(
            pod["spec"]["volumes"][1],
            json!({"name": "e", "emptyDir": {"medium": "Memory"}})
        );
        assert!(pod["metadata"].get("labelz").is_none());
    }

    #[test]
    fn known_objects_are_left_alone() {
        let text = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "annotations": {"a": ""}},
            "spec": {"serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": 1000}}}}],
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i",
                        "ports": [{"containerPort": 80}], "resources": {"limits": {"memory": "1Gi"}}}]}}}});
        let mut v = text.clone();
        assert_eq!(decode(&mut v).unwrap().unwrap(), Decoded::default());
        assert_eq!(v, text);
    }

    /// A value of the wrong JSON type: `sigs.k8s.io/json` fails the decode, the apiserver
    /// answers 400 whatever the field validation.
    #[test]
    fn wrong_types_are_refused_with_their_path() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c",
            "volumeMounts": [{"name": "d", "mountPath": "/d", "readOnly": "yes"}]}]}});
        let e = decode(&mut pod).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].volumeMounts[0].readOnly");
        assert!(e.message.contains("expected a boolean"), "{e}");
    }

    /// Go's decoder takes `null` anywhere: a map of strings gets "", a resource list the zero
    /// `Quantity` (`resource.Quantity.UnmarshalJSON`), an optional field nothing.
    #[test]
    fn nulls_are_what_go_makes_of_them() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"a": null}, "labels": null},
            "spec": {"containers": [{"name": "c", "args": [null, "x"], "resources": {"limits": {"memory": null}}}],
                     "volumes": [{"name": "v", "emptyDir": {"sizeLimit": null}, "emptydir": null}]}});
        let d = decode(&mut pod).unwrap().unwrap();
        assert_eq!(d.unknown_fields, ["spec.volumes[0].emptydir"]);
        assert_eq!(
            pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
            "0"
        );
        assert_eq!(pod["spec"]["containers"][0]["args"][0], "");
        assert_eq!(pod["metadata"]["annotations"]["a"], "");
        // An optional field keeps its null (Go's nil), which the model reads as absent.
        assert_eq!(
            pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"],
            Value::Null
        );
    }

    #[test]
    fn other_versions_and_kinds_have_no_schema_here() {
        let mut d =
            json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "spec": {"x": 1}});
        assert_eq!(decode(&mut d).unwrap(), None);
        let mut c = json!({"apiVersion": "v1", "kind": "ConfigMap", "datax": 1});
        assert_eq!(decode(&mut c).unwrap(), None);
        // No apiVersion: the kind's schema.
        let mut p = json!({"kind": "Pod", "spec": {"x": 1}});
        assert_eq!(decode(&mut p).unwrap().unwrap().unknown_fields, ["spec.x"]);
    }
}
