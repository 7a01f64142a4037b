//! Generated objects (shared by the property, differential and UPDATE tests, over every kind that
//! carries a Pod template) and how the apiserver sends them: defaulted and wrapped in an
//! AdmissionReview.

use proptest::prelude::*;
use serde_json::{Value, json};

pub const NAMES: &[&str] = &[
    "a",
    "b",
    "temp-volume",
    "data",
    "x",
    "a-very-long-volume-name-that-is-as-long-as-a-dns-label-allows-x",
];
pub const QUANTITIES: &[&str] = &[
    "1Gi",
    "500Mi",
    "0",
    "-1",
    "abc",
    "1.5e10",
    "10240Mi",
    "1E",
    "99999999999999999999999Ei",
    "",
    "10G",
    "2Gi",
    "1",
];
pub const PATHS: &[&str] = &[
    "/data",
    "data",
    "/data/",
    "/data/cache",
    "/etc",
    "/proc/1",
    "/",
    "//x/./y",
    "/data/../etc",
    "",
    "/dev/shm",
];
pub const MEDIA: &[&str] = &["", "Memory", "HugePages", "HugePages-2Mi", "Weird"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(list)
}

fn quantity() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(pick(QUANTITIES))
}

pub fn volume() -> impl Strategy<Value = Value> {
    let source = prop_oneof![
        (pick(MEDIA), quantity()).prop_map(|(m, q)| {
            let mut e = json!({});
            if !m.is_empty() {
                e["medium"] = json!(m);
            }
            if let Some(q) = q {
                e["sizeLimit"] = json!(q);
            }
            json!({"emptyDir": e})
        }),
        any::<bool>()
            .prop_map(|ro| json!({"persistentVolumeClaim": {"claimName": "c", "readOnly": ro}})),
        Just(json!({"configMap": {"name": "cm"}})),
        Just(json!({"hostPath": {"path": "/var"}})),
        Just(json!({"csi": {"driver": "d", "readOnly": true}})),
        Just(json!({})),
    ];
    (pick(NAMES), source).prop_map(|(n, mut s)| {
        s["name"] = json!(n);
        s
    })
}

pub fn container() -> impl Strategy<Value = Value> {
    let mount =
        (pick(NAMES), pick(PATHS), prop::option::of(any::<bool>())).prop_map(|(n, p, ro)| {
            let mut m = json!({"name": n, "mountPath": p});
            if let Some(ro) = ro {
                m["readOnly"] = json!(ro);
            }
            m
        });
    let device = (pick(NAMES), pick(PATHS)).prop_map(|(n, p)| json!({"name": n, "devicePath": p}));
    (
        pick(&[
            "c1",
            "c2",
            "a-container-name-that-is-as-long-as-a-dns-label-allows-to-be-xx",
        ]),
        prop::collection::vec(mount, 0..5),
        prop::collection::vec(device, 0..2),
        quantity(),
        quantity(),
        quantity(),
    )
        .prop_map(|(name, mounts, devices, mem, eph_lim, eph_req)| {
            let mut c = json!({"name": name, "image": "busybox", "volumeMounts": mounts, "volumeDevices": devices});
            let mut limits = json!({});
            if let Some(m) = mem {
                limits["memory"] = json!(m);
            }
            if let Some(e) = eph_lim {
                limits["ephemeral-storage"] = json!(e);
            }
            c["resources"] = json!({"limits": limits});
            if let Some(r) = eph_req {
                c["resources"]["requests"] = json!({"ephemeral-storage": r});
            }
            c
        })
}

pub fn pod_spec() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(volume(), 0..7),
        prop::collection::vec(container(), 1..4),
        prop::collection::vec(container(), 0..2),
        prop::collection::vec(container(), 0..2),
        quantity(),
    )
        .prop_map(|(volumes, containers, init, eph, pod_mem)| {
            let mut spec = json!({"volumes": volumes, "containers": containers, "initContainers": init, "ephemeralContainers": eph});
            if let Some(m) = pod_mem {
                spec["resources"] = json!({"limits": {"memory": m}});
            }
            spec
        })
}

/// A kind that carries a Pod spec, with the spec in its place.
pub fn object() -> impl Strategy<Value = (String, Value)> {
    (pod_spec(), 0..9usize).prop_map(|(spec, k)| {
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": spec});
        let (kind, body) = match k {
            0 => ("Pod", json!({"spec": spec})),
            1 => ("Deployment", json!({"spec": {"template": template}})),
            2 => (
                "StatefulSet",
                json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}], "template": template}}),
            ),
            3 => (
                "CronJob",
                json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
            ),
            4 => ("DaemonSet", json!({"spec": {"template": template}})),
            5 => ("ReplicaSet", json!({"spec": {"template": template}})),
            6 => ("Job", json!({"spec": {"template": template}})),
            7 => ("ReplicationController", json!({"spec": {"template": template}})),
            _ => ("PodTemplate", json!({"template": template})),
        };
        let mut obj = body;
        obj["kind"] = json!(kind);
        obj["apiVersion"] = json!(api_version(kind));
        obj["metadata"] = json!({"name": "obj"});
        (kind.to_owned(), obj)
    })
}

/// (group, version, resource) of a kind.
pub fn gvr(kind: &str) -> (&'static str, &'static str, String) {
    let group = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
        "Job" | "CronJob" => "batch",
        _ => "",
    };
    (group, "v1", format!("{}s", kind.to_lowercase()))
}

pub fn api_version(kind: &str) -> String {
    match gvr(kind).0 {
        "" => "v1".to_owned(),
        g => format!("{g}/v1"),
    }
}

/// The object as the apiserver stores and sends it: `SetDefaults_Volume`
/// (pkg/apis/core/v1/defaults.go) gives a volume without a source `emptyDir: {}`, fields the
/// engine does not read are defaulted (container `terminationMessagePath`,
/// `imagePullPolicy`, Pod `restartPolicy`, `dnsPolicy`, ...), and metadata carries `uid`,
/// `namespace`, `creationTimestamp` and `managedFields`.
pub fn as_stored(mut obj: Value, namespace: &str) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                let is_pod_spec = m.contains_key("containers");
                if let Some(Value::Array(vols)) = m.get_mut("volumes") {
                    for vol in vols.iter_mut() {
                        let sourceless = vol
                            .as_object()
                            .is_some_and(|o| o.iter().all(|(k, v)| k == "name" || v.is_null()));
                        if sourceless {
                            vol["emptyDir"] = json!({});
                        }
                    }
                }
                if is_pod_spec {
                    for (k, v) in [
                        ("restartPolicy", json!("Always")),
                        ("dnsPolicy", json!("ClusterFirst")),
                        ("schedulerName", json!("default-scheduler")),
                        ("terminationGracePeriodSeconds", json!(30)),
                        ("securityContext", json!({})),
                    ] {
                        m.entry(k).or_insert(v);
                    }
                    for list in ["containers", "initContainers", "ephemeralContainers"] {
                        if let Some(Value::Array(cs)) = m.get_mut(list) {
                            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                                c.entry("terminationMessagePath")
                                    .or_insert(json!("/dev/termination-log"));
                                c.entry("terminationMessagePolicy").or_insert(json!("File"));
                                c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
                            }
                        }
                    }
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut obj);
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    meta.entry("namespace").or_insert(json!(namespace));
    meta.insert("uid".into(), json!("0b4e9f4c-2d7e-4d0a-9d55-3b8f0e6f1a22"));
    meta.insert("resourceVersion".into(), json!("4711"));
    meta.insert("creationTimestamp".into(), json!("2026-11-25T14:00:00Z"));
    meta.insert(
        "managedFields".into(),
        json!([{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-25T14:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}, "f:spec": {"f:volumes": {".": {}}}}}]),
    );
    if obj.get("status").is_none() && obj["kind"] != "PodTemplate" {
        obj["status"] = json!({});
    }
    obj
}

/// A CREATE of `object` by `username`, as the apiserver sends it.
pub fn create_review(kind: &str, namespace: &str, object: Value, username: &str) -> Value {
    let (group, version, resource) = gvr(kind);
    json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "3a6f9c1e-5b1d-4f7e-8a2b-9c0d1e2f3a4b",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"].clone(), "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": username, "uid": "u-1", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}
