//! One meaning for an object, offline and at admission: every fixture and every generated
//! object is judged through `volguard check` (the manifest as written) and through the
//! webhook's decoder (the same object in an AdmissionReview, as the apiserver sends it after
//! defaulting), with identical findings.

mod common;

use std::path::PathBuf;

use common::objects::{as_stored, create_review, object};
use proptest::prelude::*;
use serde_json::Value;
use volguard::Policy;
use volguard::admission;
use volguard::cli::check::check_text;
use volguard::cli::check::report::{CheckResult, ViolationReport};

/// Every rule on, with every option exercised.
const EVERYTHING: &str = "rules:\n  volume-type-allowed: {action: warn}\n  emptydir-ephemeral-storage-declared: {action: audit}\n  emptydir-size-limit-max: {maxTotal: 3Gi}\n";

fn policies() -> Vec<(&'static str, Policy)> {
    vec![
        ("default", Policy::default()),
        ("everything", Policy::parse(EVERYTHING, "p.yaml").unwrap()),
    ]
}

/// What `check` says of one manifest: (allowed, findings).
fn offline(policy: &Policy, yaml: &str) -> (bool, Vec<ViolationReport>) {
    let mut r = CheckResult::default();
    check_text(policy, "m.yaml", yaml, "default", &mut r);
    assert!(r.errors.is_empty(), "{:?}\n{yaml}", r.errors);
    assert_eq!(r.objects.len(), 1, "{yaml}");
    let o = r.objects.remove(0);
    (o.allowed, o.violations)
}

/// What the webhook says of the same object: decoded and judged as in the handler.
fn at_admission(policy: &Policy, review: &Value) -> (bool, Vec<ViolationReport>) {
    let bytes = serde_json::to_vec(review).unwrap();
    let req = admission::decode(&bytes).unwrap();
    let verdict = req.judge(policy);
    (
        verdict.allowed,
        verdict.findings.iter().map(ViolationReport::from).collect(),
    )
}

/// Judges `object` (a manifest of `kind`) both ways and compares.
fn same_meaning(policy: &Policy, kind: &str, yaml: &str, object: Value) -> Result<(), String> {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let review = create_review(kind, &namespace, as_stored(object, &namespace), "alice");
    let a = offline(policy, yaml);
    let b = at_admission(policy, &review);
    if a != b {
        return Err(format!(
            "check: {a:#?}\nwebhook: {b:#?}\nmanifest:\n{yaml}\nreview: {review}"
        ));
    }
    // A saved review checked offline goes through the same decoder.
    let mut r = CheckResult::default();
    check_text(policy, "r.json", &review.to_string(), "default", &mut r);
    let c = (r.objects[0].allowed, r.objects[0].violations.clone());
    if c != b {
        return Err(format!("saved review: {c:#?}\nwebhook: {b:#?}"));
    }
    Ok(())
}

#[test]
fn every_fixture_means_the_same_offline_and_at_admission() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut checked = 0;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let object: Value =
            serde_json::to_value(serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text).unwrap())
                .unwrap();
        let kind = object["kind"].as_str().unwrap().to_owned();
        for (name, policy) in policies() {
            same_meaning(&policy, &kind, &text, object.clone())
                .unwrap_or_else(|e| panic!("{} ({name} policy): {e}", path.display()));
        }
        checked += 1;
    }
    assert!(checked >= 15, "fixtures missing");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_objects_mean_the_same_offline_and_at_admission((kind, object) in object()) {
        let yaml = serde_yaml_ng::to_string(&object).unwrap();
        for (name, policy) in policies() {
            if let Err(e) = same_meaning(&policy, &kind, &yaml, object.clone()) {
                prop_assert!(false, "{name} policy: {e}");
            }
        }
    }
}
