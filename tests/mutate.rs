//! `/mutate` over the wire: the real binary over TLS, AdmissionReviews as the apiserver sends
//! them. Each patch is decoded (base64), applied to the object sent (RFC 6902 `add`, applied
//! here independently of volguard) and compared with the object expected; the patched object
//! is then sent again (no patch: idempotent) and to `/validate` (allowed), as the apiserver
//! does (mutating webhooks run before validating ones).

mod common;

use base64::Engine as _;
use common::objects::{as_stored, create_review, object};
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use volguard::admission;
use volguard::engine::policy::Policy;

const POLICY: &str = "defaults:\n  emptyDir: {diskSizeLimit: 1Gi, memorySizeLimit: 256Mi}\nallowExemptionAnnotation: true\n";

fn start(policy: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    (
        Server::start(&["--policy-file", path.to_str().unwrap()]),
        dir,
    )
}

/// RFC 6902 §4.1 `add`: the parent must exist; into an object the member is added or
/// replaced, into an array the value is inserted at the index (or appended for `-`).
fn apply(doc: &mut Value, patch: &Value) {
    for op in patch.as_array().expect("a JSON patch is an array") {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        assert!(path.starts_with('/'), "{path}");
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        match doc.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.insert(last, value);
            }
            Some(Value::Array(a)) if last == "-" => a.push(value),
            Some(Value::Array(a)) => {
                let i: usize = last.parse().expect("array index");
                assert!(i <= a.len(), "{path}: index out of range");
                a.insert(i, value);
            }
            other => panic!("{path}: parent is {other:?}"),
        }
    }
}

/// The patch of a `/mutate` response (`None` when it has none), checking the envelope.
fn patch_of(reply: &Reply, uid: &str) -> Option<Value> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    let r = &v["response"];
    assert_eq!(r["uid"], uid);
    assert_eq!(r["allowed"], true, "/mutate never denies: {v}");
    let Some(b64) = r.get("patch") else {
        assert!(
            r.get("patchType").is_none() && r.get("warnings").is_none(),
            "{v}"
        );
        return None;
    };
    assert_eq!(r["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().expect("patch is a base64 string"))
        .unwrap();
    let patch: Value = serde_json::from_slice(&bytes).unwrap();
    let warnings = r["warnings"]
        .as_array()
        .expect("warnings name what was added");
    assert_eq!(warnings.len(), patch.as_array().unwrap().len());
    Some(patch)
}

async fn post(server: &Server, path: &str, review: &Value) -> Reply {
    server
        .client(Version::Http2)
        .send("POST", path, serde_json::to_vec(review).unwrap())
        .await
}

fn with_object(mut review: Value, object: Value) -> Value {
    review["request"]["object"] = object;
    review
}

fn pod_spec(volumes: Value) -> Value {
    let mounts: Vec<Value> = volumes
        .as_array()
        .unwrap()
        .iter()
        .map(|v| json!({"name": v["name"], "mountPath": format!("/mnt/{}", v["name"].as_str().unwrap())}))
        .collect();
    json!({"containers": [{"name": "app", "image": "busybox:1.36", "volumeMounts": mounts,
                           "resources": {"limits": {"memory": "1Gi"}}}],
           "volumes": volumes})
}

fn workload(kind: &str, spec: Value) -> Value {
    let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": spec});
    let spec = match kind {
        "Pod" => spec,
        "Deployment" => {
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "a"}}, "template": template})
        }
        "CronJob" => {
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        "StatefulSet" => {
            json!({"serviceName": "s", "selector": {"matchLabels": {"app": "a"}}, "template": template,
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]})
        }
        _ => unreachable!(),
    };
    let api = common::objects::api_version(kind);
    as_stored(
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": "w"}, "spec": spec}),
        "team-a",
    )
}

fn volumes_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec/volumes",
        "CronJob" => "/spec/jobTemplate/spec/template/spec/volumes",
        _ => "/spec/template/spec/volumes",
    }
}

/// Per kind: the volumes sent (`null` source: the apiserver's `emptyDir: {}`, see
/// `as_stored`) and the volumes expected after the patch. The StatefulSet's `data` volume is
/// the volumeClaimTemplate's PVC in every Pod
/// (`pkg/controller/statefulset/stateful_set_utils.go:updateStorage`): left alone.
#[tokio::test]
async fn patches_pods_and_templates_idempotently_and_the_result_is_admitted() {
    let (server, _dir) = start(POLICY);
    let cases = [
        (
            "Pod",
            json!([{"name": "scratch", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}},
                   {"name": "sized", "emptyDir": {"sizeLimit": "2Gi"}}]),
            json!([{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                   {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                   {"name": "sized", "emptyDir": {"sizeLimit": "2Gi"}}]),
        ),
        (
            "Deployment",
            json!([{"name": "cfg", "configMap": {"name": "c"}}, {"name": "cache"}]),
            json!([{"name": "cfg", "configMap": {"name": "c"}}, {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}]),
        ),
        (
            "CronJob",
            // The tmpfs alone would be admitted (the Pod's 1Gi memory limit bounds it); the
            // unsized disk emptyDir is what the default rules deny.
            json!([{"name": "shm", "emptyDir": {"medium": "Memory"}}, {"name": "huge", "emptyDir": {"medium": "HugePages"}},
                   {"name": "scratch", "emptyDir": {}}]),
            json!([{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                   {"name": "huge", "emptyDir": {"medium": "HugePages"}},
                   {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]),
        ),
        (
            "StatefulSet",
            json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]),
            json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]),
        ),
    ];
    for (kind, volumes, want) in cases {
        let object = workload(kind, pod_spec(volumes));
        let review = create_review(kind, "team-a", object.clone(), "alice");
        let uid = review["request"]["uid"].as_str().unwrap().to_owned();
        // Unpatched, the default rules deny it.
        let denied = post(&server, "/validate", &review).await.json();
        assert_eq!(denied["response"]["allowed"], false, "{kind}: {denied}");

        let patch = patch_of(&post(&server, "/mutate", &review).await, &uid)
            .unwrap_or_else(|| panic!("{kind}: no patch"));
        let mut patched = object.clone();
        apply(&mut patched, &patch);
        let mut expected = object.clone();
        *expected.pointer_mut(volumes_pointer(kind)).unwrap() = want;
        assert_eq!(patched, expected, "{kind}: patch {patch}");

        let again = with_object(review.clone(), patched.clone());
        assert_eq!(
            patch_of(&post(&server, "/mutate", &again).await, &uid),
            None,
            "{kind}: second run"
        );
        let judged = post(&server, "/validate", &again).await.json();
        assert_eq!(judged["response"]["allowed"], true, "{kind}: {judged}");
        assert!(
            judged["response"].get("warnings").is_none(),
            "{kind}: {judged}"
        );
    }
    let m = server.metrics();
    for kind in ["Pod", "Deployment", "CronJob", "StatefulSet"] {
        for (result, n) in [("patched", 1), ("unchanged", 1)] {
            let line =
                format!(r#"volguard_mutations_total{{kind="{kind}",result="{result}"}} {n}"#);
            assert!(m.contains(&line), "{line}\n{m}");
        }
    }
}

/// The exact bytes for the seed Pod, and the warning kubectl prints.
#[tokio::test]
async fn seed_pod_patch_bytes_and_warning() {
    let (server, _dir) = start(POLICY);
    let review = seed_create("s1");
    let reply = post(&server, "/mutate", &review).await;
    let v = reply.json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["response"]["patch"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        r#"[{"op":"add","path":"/spec/volumes/0/emptyDir/sizeLimit","value":"1Gi"}]"#
    );
    assert_eq!(
        v["response"]["warnings"],
        json!([
            "[mutate] spec.volumes[0].emptyDir.sizeLimit: set to 1Gi for emptyDir \"temp-volume\" (policy defaults.emptyDir.diskSizeLimit)"
        ])
    );
}

/// Nothing is patched where the validating side would not judge either (exempt namespace,
/// exemption annotation), on a Pod UPDATE (the spec is immutable), for what a controller
/// creates from a template, or without `defaults` (the default policy).
#[tokio::test]
async fn exemptions_updates_controllers_and_the_default_policy_are_not_patched() {
    let (server, _dir) = start(POLICY);
    let bare = || seed_pod("default", json!({}));

    let exempt_ns = pod_review(
        "e1",
        "CREATE",
        "kube-system",
        seed_pod("kube-system", json!({})),
        Value::Null,
    );
    let mut annotated = bare();
    annotated["metadata"]["annotations"] =
        json!({"volguard.io/exempt": "emptydir-size-limit-required"});
    let annotated = pod_review("e2", "CREATE", "default", annotated, Value::Null);
    let update = pod_review("e3", "UPDATE", "default", bare(), bare());
    let from_rs = sent_by(
        pod_review(
            "e4",
            "CREATE",
            "default",
            owned_by(bare(), "apps/v1", "ReplicaSet", "web-5d"),
            Value::Null,
        ),
        &controller_user("replicaset-controller"),
        CONTROLLER_GROUPS,
    );
    let mut ephemeral = pod_review("e5", "UPDATE", "default", bare(), bare());
    ephemeral["request"]["subResource"] = json!("ephemeralcontainers");
    for (review, result) in [
        (&exempt_ns, "exempt_namespace"),
        (&annotated, "exempt_annotation"),
        (&update, "pod_update"),
        (&from_rs, "controller"),
        (&ephemeral, "skipped"),
    ] {
        let uid = review["request"]["uid"].as_str().unwrap();
        assert_eq!(
            patch_of(&post(&server, "/mutate", review).await, uid),
            None,
            "{result}"
        );
        let line = format!(r#"volguard_mutations_total{{kind="Pod",result="{result}"}} 1"#);
        assert!(server.metrics().contains(&line), "{line}");
    }

    // The embedded default policy sets no defaults: /mutate answers, never patches.
    let plain = Server::start(&[]);
    let reply = post(&plain, "/mutate", &seed_create("d1")).await;
    assert_eq!(patch_of(&reply, "d1"), None);
    assert!(
        plain
            .metrics()
            .contains(r#"volguard_mutations_total{kind="Pod",result="no_defaults"} 1"#)
    );
    // A body that is not an AdmissionReview is refused as on /validate.
    let bad = plain
        .client(Version::Http1)
        .send("POST", "/mutate", "{")
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
}

/// Generated objects of every kind, as the apiserver sends them: the patch applies (every
/// parent exists), adds nothing but `emptyDir.sizeLimit` members that were missing, a
/// second run adds nothing, and the patched object has no emptyDir left without a limit
/// (the only `emptydir-size-limit-required` findings left are written zeros).
fn patch_is_minimal_and_idempotent(
    policy: &Policy,
    kind: &str,
    object: Value,
) -> Result<(), String> {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let stored = as_stored(object, &ns);
    let review = create_review(kind, &ns, stored.clone(), "alice");
    let body = serde_json::to_vec(&review).unwrap();
    let req = admission::decode(&body).map_err(|e| e.to_string())?;
    let m = req.mutate(policy);
    let mut patched = stored.clone();
    if let Some(bytes) = m.patch_json() {
        let patch: Value = serde_json::from_slice(&bytes).unwrap();
        for op in patch.as_array().unwrap() {
            let path = op["path"].as_str().unwrap();
            let parent = path
                .strip_suffix("/sizeLimit")
                .filter(|p| p.ends_with("/emptyDir"))
                .ok_or_else(|| format!("{path}: not an emptyDir sizeLimit"))?;
            let target = patched
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("{path}: no emptyDir object to add to"))?;
            if target.get("sizeLimit").is_some_and(|v| !v.is_null()) {
                return Err(format!("{path}: sizeLimit was already set"));
            }
            target.insert("sizeLimit".into(), op["value"].clone());
        }
        // Removing what was added gives back the object sent.
        let mut undone = patched.clone();
        for op in patch.as_array().unwrap() {
            let parent = op["path"]
                .as_str()
                .unwrap()
                .strip_suffix("/sizeLimit")
                .unwrap();
            let had_null = stored.pointer(&format!("{parent}/sizeLimit")).is_some();
            let o = undone.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            if had_null {
                o.insert("sizeLimit".into(), Value::Null);
            } else {
                o.remove("sizeLimit");
            }
        }
        if undone != stored {
            return Err("the patch changed more than sizeLimit".into());
        }
    }
    let again = create_review(kind, &ns, patched, "alice");
    let body2 = serde_json::to_vec(&again).unwrap();
    let req2 = admission::decode(&body2).unwrap();
    let m2 = req2.mutate(policy);
    if !m2.additions.is_empty() {
        return Err(format!("second run added {:?}", m2.additions));
    }
    if m.skipped.is_none() {
        let v = req2.judge(policy);
        if let Some(f) = v.findings.iter().find(|f| {
            f.rule.name() == "emptydir-size-limit-required" && !f.path.ends_with(".sizeLimit")
        }) {
            return Err(format!("still unsized after the patch: {f}"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn generated_objects_patch_minimally_and_idempotently((kind, object) in object()) {
        let policy = Policy::parse(POLICY, "p.yaml").unwrap();
        if let Err(e) = patch_is_minimal_and_idempotent(&policy, &kind, object.clone()) {
            prop_assert!(false, "{kind}: {e}\n{object}");
        }
    }
}
