//! Structure-aware: an arbitrary Pod-shaped object (or a workload carrying its template),
//! rendered as the JSON the apiserver sends (with `managedFields` noise), wrapped in an
//! AdmissionReview, then decoded and judged as `POST /validate` does.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use volguard::admission::ReviewIn;

#[path = "common.rs"]
mod common;

const NAMES: [&str; 6] = ["data", "cache", "tmp", "config", "token", ""];
const PATHS: [&str; 10] = [
    "/data",
    "/data/sub",
    "/cache",
    "/tmp",
    "/etc",
    "/var/run/secrets",
    "relative",
    "/",
    "/proc/x",
    "/data/",
];
const QTY: [&str; 12] = [
    "500Mi",
    "10Gi",
    "11Gi",
    "1E",
    "1Ei",
    "0",
    "-1",
    "1.5e10",
    "100m",
    "junk",
    "",
    "99999999999999999999999999999Ei",
];
const KINDS: [&str; 9] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "PodTemplate",
    "ConfigMap",
];
const NAMESPACES: [&str; 5] = ["default", "kube-system", "team-a", "sys-1", ""];

#[derive(Debug, Arbitrary)]
enum Source {
    EmptyDir { medium: u8, size: Option<u8> },
    HostPath,
    Pvc { read_only: Option<bool> },
    ConfigMap,
    Projected,
    Csi { read_only: bool },
    Nfs,
    Null,
}

#[derive(Debug, Arbitrary)]
struct Vol {
    name: u8,
    source: Source,
}

#[derive(Debug, Arbitrary)]
struct Mount {
    name: u8,
    path: u8,
    read_only: Option<bool>,
}

#[derive(Debug, Arbitrary)]
struct Ctr {
    mounts: Vec<Mount>,
    memory: Option<u8>,
    ephemeral: Option<u8>,
    request_ephemeral: Option<u8>,
}

#[derive(Debug, Arbitrary)]
struct PodShape {
    kind: u8,
    namespace: u8,
    operation: u8,
    exempt: Option<u8>,
    volumes: Vec<Vol>,
    containers: Vec<Ctr>,
    init: Vec<Ctr>,
    ephemeral: Vec<Ctr>,
    pod_memory: Option<u8>,
    old: Option<Box<PodShape>>,
}

fn pick<'a>(xs: &[&'a str], i: u8) -> &'a str {
    xs[i as usize % xs.len()]
}

fn volume(v: &Vol) -> Value {
    let mut o = json!({"name": pick(&NAMES, v.name)});
    let (key, val) = match &v.source {
        Source::EmptyDir { medium, size } => {
            let mut ed = json!({});
            match medium % 4 {
                1 => ed["medium"] = json!("Memory"),
                2 => ed["medium"] = json!("HugePages-2Mi"),
                3 => ed["medium"] = json!(""),
                _ => {}
            }
            if let Some(s) = size {
                ed["sizeLimit"] = json!(pick(&QTY, *s));
            }
            ("emptyDir", ed)
        }
        Source::HostPath => ("hostPath", json!({"path": "/var/log", "type": ""})),
        Source::Pvc { read_only } => (
            "persistentVolumeClaim",
            json!({"claimName": "c", "readOnly": read_only}),
        ),
        Source::ConfigMap => ("configMap", json!({"name": "cm", "defaultMode": 420})),
        Source::Projected => (
            "projected",
            json!({"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}),
        ),
        Source::Csi { read_only } => ("csi", json!({"driver": "d", "readOnly": read_only})),
        Source::Nfs => ("nfs", json!({"server": "s", "path": "/", "readOnly": true})),
        Source::Null => ("emptyDir", Value::Null),
    };
    o[key] = val;
    o
}

fn container(i: usize, c: &Ctr) -> Value {
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| {
            let mut o = json!({"name": pick(&NAMES, m.name), "mountPath": pick(&PATHS, m.path)});
            if let Some(ro) = m.read_only {
                o["readOnly"] = json!(ro);
            }
            o
        })
        .collect();
    let mut limits = json!({"cpu": "100m"});
    if let Some(m) = c.memory {
        limits["memory"] = json!(pick(&QTY, m));
    }
    if let Some(e) = c.ephemeral {
        limits["ephemeral-storage"] = json!(pick(&QTY, e));
    }
    let mut requests = json!({"cpu": "10m"});
    if let Some(e) = c.request_ephemeral {
        requests["ephemeral-storage"] = json!(pick(&QTY, e));
    }
    json!({
        "name": format!("c{i}"), "image": "registry.example/app:1.0",
        "env": [{"name": "A", "value": "b"}],
        "resources": {"limits": limits, "requests": requests},
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"
    })
}

fn object(p: &PodShape, kind: &str) -> Value {
    let cs = |v: &[Ctr]| {
        v.iter()
            .enumerate()
            .map(|(i, c)| container(i, c))
            .collect::<Vec<_>>()
    };
    let mut spec = json!({
        "volumes": p.volumes.iter().map(volume).collect::<Vec<_>>(),
        "containers": cs(&p.containers),
        "initContainers": cs(&p.init),
        "ephemeralContainers": cs(&p.ephemeral),
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
    });
    if let Some(m) = p.pod_memory {
        spec["resources"] = json!({"limits": {"memory": pick(&QTY, m)}});
    }
    let mut meta = json!({
        "name": "x", "namespace": pick(&NAMESPACES, p.namespace),
        "labels": {"app": "x"},
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:volumes": {}}}}],
    });
    if let Some(e) = p.exempt {
        meta["annotations"] = json!({"volguard.io/exempt": pick(&["*", "volume-unused", "emptydir-size-limit-max, volume-unused", ""], e)});
    }
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": spec});
    match kind {
        "Pod" => {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
        }
        "PodTemplate" => {
            json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": template})
        }
        "CronJob" => json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        "StatefulSet" => json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
                                "spec": {"template": template, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
        "ConfigMap" => {
            json!({"apiVersion": "v1", "kind": kind, "metadata": meta, "data": {"a": "b"}})
        }
        _ => {
            json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {"template": template}})
        }
    }
}

fuzz_target!(|p: PodShape| {
    let kind = pick(&KINDS, p.kind);
    let operation = ["CREATE", "UPDATE", "DELETE", "CONNECT"][p.operation as usize % 4];
    let mut request = json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": pick(&NAMESPACES, p.namespace),
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        "object": object(&p, kind),
        "dryRun": false,
    });
    if let Some(old) = &p.old {
        request["oldObject"] = object(old, kind);
    }
    let body = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}))
        .expect("serialises");
    let review: ReviewIn =
        serde_json::from_slice(&body).expect("a well-formed AdmissionReview always decodes");
    let req = volguard::admission::decode(&body).expect("and decode() decodes it");
    assert_eq!(
        req.judge(&common::STRICT),
        review.request.as_ref().unwrap().judge(&common::STRICT)
    );
    common::judge(&review);
});
