//! UPDATE grandfathering matches a violation by what it is about, never by array index: an
//! UPDATE that only moves volumes, containers, mounts and devices around (or adds an
//! unrelated volume in front) introduces nothing.

mod common;

use common::objects::object;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use volguard::{Action, Object, Operation, Policy, Request, evaluate};

/// Every rule denies (the sum rules' `maxTotal` aside: see below).
const ALL_DENY: &str = "rules:
  mount-path-absolute: {action: deny}
  mount-path-nested: {action: deny}
  volume-unused: {action: deny}
  mount-readonly-source: {action: deny}
  volume-type-allowed: {action: deny}
  emptydir-within-ephemeral-storage: {action: deny}
  emptydir-ephemeral-storage-declared: {action: deny}
";

/// The Pod spec inside an object of any kind.
fn pod_spec(obj: &mut Value) -> &mut Value {
    if obj.get("template").is_some() {
        return &mut obj["template"]["spec"];
    }
    if obj["kind"] == "Pod" {
        return &mut obj["spec"];
    }
    if obj["spec"].get("jobTemplate").is_some() {
        return &mut obj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    }
    &mut obj["spec"]["template"]["spec"]
}

/// Keeps the first of each volume name and each container name: the apiserver rejects
/// duplicates (`ValidateVolumes`, `validateContainers`), and which of two same-named volumes
/// a mount means is then undefined, so moving them may change a verdict.
fn unique_names(spec: &mut Value) {
    let mut seen = Vec::new();
    if let Some(vols) = spec["volumes"].as_array_mut() {
        vols.retain(|v| {
            let n = v["name"].as_str().unwrap_or_default().to_owned();
            let fresh = !seen.contains(&n);
            seen.push(n);
            fresh
        });
    }
    let mut seen = Vec::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = spec[list].as_array_mut() {
            cs.retain(|c| {
                let n = c["name"].as_str().unwrap_or_default().to_owned();
                let fresh = !seen.contains(&n);
                seen.push(n);
                fresh
            });
        }
    }
}

/// Rotates an array by `k`, then reverses it when `flip`.
fn shuffle(v: &mut Value, k: usize, flip: bool) {
    if let Some(a) = v.as_array_mut()
        && !a.is_empty()
    {
        let n = k % a.len();
        a.rotate_left(n);
        if flip {
            a.reverse();
        }
    }
}

fn moved(spec: &Value, k: usize, flip: bool) -> Value {
    let mut s = spec.clone();
    shuffle(&mut s["volumes"], k, flip);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        shuffle(&mut s[list], k + 1, !flip);
        if let Some(cs) = s[list].as_array_mut() {
            for c in cs {
                shuffle(&mut c["volumeMounts"], k + 2, flip);
                shuffle(&mut c["volumeDevices"], k, !flip);
            }
        }
    }
    s
}

fn judge(policy: &Policy, kind: &str, new: &Value, old: &Value) -> volguard::Verdict {
    let new = Object::deserialize(new).unwrap();
    let old = Object::deserialize(old).unwrap();
    evaluate(
        policy,
        &Request {
            kind,
            namespace: "default",
            operation: Operation::Update,
            object: &new,
            old_object: Some(&old),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `emptydir-size-limit-max`'s `maxTotal` finding points at the volume where the running
    /// sum crosses the total, which moves with the order; it is left unset here.
    #[test]
    fn moving_array_elements_introduces_nothing(
        (kind, mut old) in object(),
        k in 0..8usize,
        flip in any::<bool>(),
    ) {
        unique_names(pod_spec(&mut old));
        let mut new = old.clone();
        *pod_spec(&mut new) = moved(pod_spec(&mut old.clone()), k, flip);
        let policy = Policy::parse(ALL_DENY, "p.yaml").unwrap();
        let v = judge(&policy, &kind, &new, &old);
        prop_assert!(v.allowed, "{:#?}\nold: {old}\nnew: {new}", v.findings);
        prop_assert!(v.findings.iter().all(|f| f.preexisting), "{:#?}", v.findings);
        // Under the default policy, a volume added in front moves every other one.
        let mut added = new.clone();
        if let Some(vols) = pod_spec(&mut added)["volumes"].as_array_mut() {
            vols.insert(0, json!({"name": "zz-added", "configMap": {"name": "settings"}}));
        }
        let v = judge(&Policy::default(), &kind, &added, &old);
        prop_assert!(v.allowed, "{:#?}", v.findings);
        prop_assert!(
            v.findings.iter().all(|f| f.preexisting || f.action != Action::Deny),
            "{:#?}",
            v.findings
        );
    }
}
