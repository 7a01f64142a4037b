//! One meaning for an object, offline and at admission: every fixture, every corpus file
//! and every generated object is judged through `volguard check` (the manifest as written)
//! and through the webhook's decoder (the object the apiserver would store, in an
//! AdmissionReview as the apiserver sends it), with identical findings.
//!
//! "What the apiserver would store" is built here independently of `check`'s reader:
//! * YAML 1.1 scalars: generated manifests carry unquoted scalars from [`YAML11`], a table
//!   written from `sigs.k8s.io/yaml/goyaml.v2/resolve.go:resolve`, and the stored object holds
//!   the value that table gives (`1_000` -> 1000, `017` -> 15, `yes` -> true, `~` -> null);
//! * unknown fields: keys are misspelled ([`MISSPELLINGS`]) and the stored object is the
//!   manifest decoded into the `k8s-openapi` type of its kind and encoded again, which drops
//!   every field the Kubernetes schema does not have (the apiserver's `Warn` field
//!   validation);
//! * defaulting: `common::objects::as_stored` (`SetDefaults_Volume`, ...).

mod common;

use std::path::PathBuf;

use common::objects::{as_stored, create_review, object};
use k8s_openapi::api::{apps, batch, core};
use proptest::prelude::*;
use serde_json::{Value, json};
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
    (o.allowed, unplaced(o.violations))
}

/// The findings without where `check` found their field in the file (the webhook has no
/// file): the meaning, which both must agree on.
fn unplaced(mut v: Vec<ViolationReport>) -> Vec<ViolationReport> {
    for f in &mut v {
        f.line = None;
        f.column = None;
    }
    v
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

/// The apiserver's decoding of `object` with field validation `Warn`: the typed object of
/// its kind (k8s-openapi, generated from the Kubernetes OpenAPI schema; case-sensitive,
/// unknown fields skipped), encoded again.
fn decoded_by_the_apiserver(kind: &str, object: Value) -> Value {
    fn through<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Value {
        let typed: T = serde_json::from_value(v).expect("the object decodes");
        serde_json::to_value(typed).unwrap()
    }
    match kind {
        "Pod" => through::<core::v1::Pod>(object),
        "PodTemplate" => through::<core::v1::PodTemplate>(object),
        "ReplicationController" => through::<core::v1::ReplicationController>(object),
        "Deployment" => through::<apps::v1::Deployment>(object),
        "StatefulSet" => through::<apps::v1::StatefulSet>(object),
        "DaemonSet" => through::<apps::v1::DaemonSet>(object),
        "ReplicaSet" => through::<apps::v1::ReplicaSet>(object),
        "Job" => through::<batch::v1::Job>(object),
        "CronJob" => through::<batch::v1::CronJob>(object),
        other => panic!("no schema for {other}"),
    }
}

/// Judges `object` (a manifest of `kind`) both ways and compares.
fn same_meaning(policy: &Policy, kind: &str, yaml: &str, object: Value) -> Result<(), String> {
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let stored = as_stored(decoded_by_the_apiserver(kind, object), &namespace);
    let review = create_review(kind, &namespace, stored, "alice");
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
    let c = (
        r.objects[0].allowed,
        unplaced(r.objects[0].violations.clone()),
    );
    if c != b {
        return Err(format!("saved review: {c:#?}\nwebhook: {b:#?}"));
    }
    Ok(())
}

/// The workload documents of a manifest file, read as kubectl reads them (the reader under
/// test: YAML 1.1 scalars are checked against the independent table in the generated cases).
fn workload_documents(text: &str) -> Vec<(String, String, Value)> {
    volguard::cli::check::documents::documents(text)
        .into_iter()
        .filter_map(|(_, doc)| {
            let v = volguard::cli::check::kyaml::read(&doc).ok()?;
            let kind = v.get("kind")?.as_str()?.to_owned();
            let api_version = v.get("apiVersion")?.as_str()?;
            let known = matches!(
                (kind.as_str(), api_version),
                ("Pod" | "PodTemplate" | "ReplicationController", "v1")
                    | (
                        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet",
                        "apps/v1"
                    )
                    | ("Job" | "CronJob", "batch/v1")
            );
            known.then_some((kind, doc, v))
        })
        .collect()
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
        for (kind, doc, object) in workload_documents(&text) {
            for (name, policy) in policies() {
                same_meaning(&policy, &kind, &doc, object.clone())
                    .unwrap_or_else(|e| panic!("{} ({name} policy): {e}", path.display()));
            }
            checked += 1;
        }
    }
    assert!(checked >= 19, "fixtures missing: {checked}");
}

/// Every workload of the corpus (real projects' manifests), too.
#[test]
fn every_corpus_object_means_the_same_offline_and_at_admission() {
    fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
            {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    files(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus"),
        &mut paths,
    );
    paths.sort();
    let policy = Policy::default();
    let mut checked = 0;
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for (kind, doc, object) in workload_documents(&text) {
            // A document the apiserver refuses (a wrong type) is an input error offline and
            // never reaches the webhook: nothing to compare.
            let mut r = CheckResult::default();
            check_text(&policy, "m.yaml", &doc, "default", &mut r);
            if !r.errors.is_empty() {
                continue;
            }
            same_meaning(&policy, &kind, &doc, object)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 300, "corpus objects missing: {checked}");
}

/// Unquoted YAML 1.1 scalars and what go-yaml v2 makes of them
/// (`sigs.k8s.io/yaml/goyaml.v2/resolve.go:resolve`, then `encoding/json`): (where it may go,
/// the text, the JSON the apiserver receives).
fn yaml11() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        // Quantities: `resolve` removes `_`, then strconv.ParseInt(plain, 0, 64).
        ("quantity", "1_073_741_824", json!(1073741824)),
        ("quantity", "2_147_483_648", json!(2147483648u64)),
        ("quantity", "0x40000000", json!(1073741824)),
        ("quantity", "0o17", json!(15)),
        ("quantity", "017", json!(15)),
        // Not octal: yamlStyleFloat + ParseFloat, written by encoding/json as `8`.
        ("quantity", "08", json!(8)),
        ("quantity", "1e3", json!(1000)),
        ("quantity", "1.5e9", json!(1500000000)),
        ("quantity", "0b1010", json!(10)),
        // An optional field: null is absent.
        ("optional-quantity", "~", Value::Null),
        ("optional-quantity", "null", Value::Null),
        ("optional-quantity", "0x10", json!(16)),
        // Still text: no rule turns these into numbers.
        ("quantity", "1_000Mi", json!("1_000Mi")),
        ("quantity", "1Gi", json!("1Gi")),
        // resolveMap's YAML 1.1 booleans.
        ("bool", "yes", json!(true)),
        ("bool", "Yes", json!(true)),
        ("bool", "on", json!(true)),
        ("bool", "y", json!(true)),
        ("bool", "TRUE", json!(true)),
        ("bool", "no", json!(false)),
        ("bool", "Off", json!(false)),
        ("bool", "N", json!(false)),
        ("bool", "~", Value::Null),
        // Strings where the model reads them (a medium, a path): null is Go's "".
        ("string", "~", Value::Null),
        ("string", "Memory", json!("Memory")),
    ]
}

/// Keys misspelled as people do (case): each is an unknown field for the apiserver.
const MISSPELLINGS: &[(&str, &str)] = &[
    ("emptyDir", "emptydir"),
    ("sizeLimit", "sizelimit"),
    ("medium", "Medium"),
    ("readOnly", "readonly"),
    ("hostPath", "hostpath"),
    ("persistentVolumeClaim", "persistentvolumeclaim"),
    ("limits", "Limits"),
    ("ephemeral-storage", "ephemeralStorage"),
    ("volumeMounts", "volumemounts"),
    ("restartPolicy", "restartpolicy"),
];

/// The members of `v` (paths) whose key is `key`, in document order.
fn members(v: &Value, key: &str, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                if k == key {
                    out.push(at.clone());
                }
                members(child, key, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                members(child, key, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn member_mut<'v>(v: &'v mut Value, path: &[String]) -> &'v mut Value {
    path.iter().fold(v, |v, seg| match v {
        Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
        v => &mut v[seg.as_str()],
    })
}

/// Puts a YAML 1.1 scalar at the `pick`-th place it fits: the manifest gets its text, the
/// stored object the value go-yaml v2 gives it. Returns (manifest YAML, object).
fn with_yaml11_scalar(object: &Value, pick: usize, scalar: usize) -> (String, Value) {
    let table = yaml11();
    let (class, text, value) = &table[scalar % table.len()];
    let keys: &[&str] = match *class {
        "quantity" => &["sizeLimit", "memory", "ephemeral-storage"],
        "optional-quantity" => &["sizeLimit"],
        "bool" => &["readOnly"],
        _ => &["medium"],
    };
    let mut places = Vec::new();
    for k in keys {
        members(object, k, &mut Vec::new(), &mut places);
    }
    let mut manifest = object.clone();
    let mut stored = object.clone();
    if places.is_empty() {
        return (serde_yaml_ng::to_string(&manifest).unwrap(), stored);
    }
    let place = &places[pick % places.len()];
    // A marker the YAML writer leaves unquoted, replaced by the scalar's text.
    *member_mut(&mut manifest, place) = json!("vg-yaml11-scalar");
    *member_mut(&mut stored, place) = value.clone();
    let yaml = serde_yaml_ng::to_string(&manifest).unwrap();
    assert_eq!(yaml.matches("vg-yaml11-scalar").count(), 1, "{yaml}");
    (yaml.replace("vg-yaml11-scalar", text), stored)
}

/// Renames the `pick`-th occurrence of a key misspelled in [`MISSPELLINGS`].
fn with_misspelling(object: &mut Value, pick: usize, which: usize) {
    let (key, typo) = MISSPELLINGS[which % MISSPELLINGS.len()];
    let mut places = Vec::new();
    members(object, key, &mut Vec::new(), &mut places);
    if places.is_empty() {
        return;
    }
    let place = &places[pick % places.len()];
    let (last, parent) = place.split_last().unwrap();
    let map = member_mut(object, parent).as_object_mut().unwrap();
    let value = map.remove(last).unwrap();
    map.insert(typo.to_owned(), value);
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

    /// A misspelled key is dropped by the apiserver; `check` judges what is left.
    #[test]
    fn unknown_fields_mean_the_same_offline_and_at_admission(
        (kind, mut object) in object(),
        typos in prop::collection::vec((any::<usize>(), any::<usize>()), 1..3),
    ) {
        for (pick, which) in typos {
            with_misspelling(&mut object, pick, which);
        }
        let yaml = serde_yaml_ng::to_string(&object).unwrap();
        for (name, policy) in policies() {
            if let Err(e) = same_meaning(&policy, &kind, &yaml, object.clone()) {
                prop_assert!(false, "{name} policy: {e}");
            }
        }
    }

    /// An unquoted YAML 1.1 scalar means what go-yaml v2 makes of it.
    #[test]
    fn yaml11_scalars_mean_the_same_offline_and_at_admission(
        (kind, object) in object(),
        pick in any::<usize>(),
        scalar in any::<usize>(),
    ) {
        let (yaml, stored) = with_yaml11_scalar(&object, pick, scalar);
        for (name, policy) in policies() {
            if let Err(e) = same_meaning(&policy, &kind, &yaml, stored.clone()) {
                prop_assert!(false, "{name} policy: {e}");
            }
        }
    }
}
