//! Property test over generated Pod specs (and workloads carrying them): the engine never
//! panics, its output is deterministic, and every violation path exists in the object.

use proptest::prelude::*;
use serde_json::{Value, json};
use volguard::{Object, Operation, Policy, Request, evaluate};

const NAMES: &[&str] = &[
    "a",
    "b",
    "temp-volume",
    "data",
    "x",
    "a-very-long-volume-name-that-is-as-long-as-a-dns-label-allows-x",
];
const QUANTITIES: &[&str] = &[
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
const PATHS: &[&str] = &[
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
const MEDIA: &[&str] = &["", "Memory", "HugePages", "HugePages-2Mi", "Weird"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(list)
}

fn quantity() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(pick(QUANTITIES))
}

fn volume() -> impl Strategy<Value = Value> {
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

fn container() -> impl Strategy<Value = Value> {
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
        pick(&["c1", "c2", "a-container-name-that-is-as-long-as-a-dns-label-allows-to-be-xx"]),
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

fn pod_spec() -> impl Strategy<Value = Value> {
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

fn object() -> impl Strategy<Value = (String, Value)> {
    (pod_spec(), 0..5usize).prop_map(|(spec, k)| match k {
        0 => ("Pod".into(), json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec})),
        1 => ("Deployment".into(), json!({"kind": "Deployment", "spec": {"template": {"spec": spec}}})),
        2 => (
            "StatefulSet".into(),
            json!({"kind": "StatefulSet", "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}], "template": {"spec": spec}}}),
        ),
        3 => ("CronJob".into(), json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}})),
        _ => ("PodTemplate".into(), json!({"kind": "PodTemplate", "template": {"spec": spec}})),
    })
}

/// What the apiserver stores: `SetDefaults_Volume` (pkg/apis/core/v1/defaults.go) gives a
/// volume without a source `emptyDir: {}` (the engine reads it so, offline too).
fn defaulted(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(vols)) = m.get_mut("volumes") {
                    for vol in vols
                        .iter_mut()
                        .filter(|v| v.as_object().is_some_and(|o| o.len() == 1))
                    {
                        vol["emptyDir"] = json!({});
                    }
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// Follows `spec.volumes[0].emptyDir` through a JSON value.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for seg in path.split('.') {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (seg, None),
        };
        cur = cur.get(key)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn engine_is_total_deterministic_and_paths_exist(
        (kind, value) in object(),
        (old_kind_value, update) in (object(), any::<bool>()),
    ) {
        let policy = Policy::parse("rules:\n  volume-type-allowed: {action: warn}\n  emptydir-ephemeral-storage-declared: {action: audit}\n  emptydir-size-limit-max: {maxTotal: 3Gi}\n", "p").unwrap();
        let obj: Object = serde_json::from_value(value.clone()).unwrap();
        let old: Object = serde_json::from_value(old_kind_value.1.clone()).unwrap();
        let req = Request {
            kind: &kind,
            namespace: "default",
            operation: if update { Operation::Update } else { Operation::Create },
            object: &obj,
            old_object: if update { Some(&old) } else { None },
        };
        let first = evaluate(&policy, &req);
        let second = evaluate(&policy, &req);
        prop_assert_eq!(&first, &second);
        // Decoding again gives the same verdict too.
        let again: Object = serde_json::from_value(value.clone()).unwrap();
        prop_assert_eq!(&first, &evaluate(&policy, &Request { object: &again, ..req }));
        prop_assert_eq!(first.allowed, !first.findings.iter().any(|f| f.action == volguard::Action::Deny));
        let stored = defaulted(value.clone());
        for f in &first.findings {
            prop_assert!(lookup(&stored, &f.path).is_some(), "path {} missing in {}", f.path, stored);
            // The apiserver truncates warnings above 256 characters.
            prop_assert!(f.to_string().len() < 256, "{}", f);
        }
    }
}
