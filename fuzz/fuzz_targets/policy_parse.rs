//! Arbitrary text through the policy parser; a policy that parses is then used on fixed Pods.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use volguard::{Object, Operation, Policy, Request, evaluate};

static PODS: LazyLock<Vec<Object<'static>>> = LazyLock::new(|| {
    [
        include_str!("../../examples/admission-review.json"),
        r#"{"request":{"object":{"kind":"Pod","metadata":{"name":"p","annotations":{"volguard.io/exempt":"*"}},
          "spec":{"volumes":[{"name":"a","emptyDir":{"medium":"Memory","sizeLimit":"3Gi"}},{"name":"b","hostPath":{"path":"/"}},
          {"name":"c","persistentVolumeClaim":{"claimName":"x","readOnly":true}}],
          "containers":[{"name":"c","volumeMounts":[{"name":"a","mountPath":"/etc"},{"name":"c","mountPath":"/etc/x"},{"name":"zz","mountPath":"rel"}],
          "resources":{"limits":{"memory":"1Gi","ephemeral-storage":"1Ei"}}}]}}}}"#,
    ]
    .iter()
    .map(|s| {
        let v: serde_json::Value = serde_json::from_str(s).expect("fixture JSON");
        // The object borrows its strings: its text lives as long as the process.
        let text: &'static str = v["request"]["object"].to_string().leak();
        serde_json::from_str(text).expect("fixture object")
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::parse(text, "fuzz.yaml") else {
        return;
    };
    for ns in ["default", "kube-system", "team-a", ""] {
        let _ = policy.rules_for(ns);
        for obj in PODS.iter() {
            for operation in [Operation::Create, Operation::Update] {
                let v = evaluate(
                    &policy,
                    &Request {
                        kind: "Pod",
                        namespace: ns,
                        operation,
                        object: obj,
                        old_object: Some(obj),
                    },
                );
                if operation == Operation::Update {
                    assert!(
                        v.allowed,
                        "UPDATE with identical oldObject denied under policy {text:?}"
                    );
                }
            }
        }
    }
});
