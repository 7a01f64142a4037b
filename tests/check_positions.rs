//! `volguard check` places each finding at the line and column of its field, in every
//! output format (text, JSON, SARIF, JUnit), for multi-document files, flow-style YAML,
//! JSON, `List` items and AdmissionReviews. The expected positions are found in the input
//! text itself (the line holding a marker, the column of the field's key or item), so each
//! assertion says "this finding points at that key".

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const MULTI: &str = "# a Service, then a block-style Pod, then a flow-style Pod
apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: v1
kind: Pod
metadata:
  name: block
spec:
  containers:
  - name: c
    volumeMounts:
    - name: host
      mountPath: /proc
    - name: scratch
      mountPath: /s
  volumes:
  - name: host
    hostPath: {path: /proc}
  - name: scratch
    emptyDir: {}
---
{apiVersion: v1, kind: Pod, metadata: {name: flow}, spec: {containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}],
  volumes: [{name: t, emptyDir: {}}]}}
";

const JSON_POD: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "json"},
  "spec": {
    "containers": [{"name": "c", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
    "volumes": [{"name": "t", "emptyDir": {}}]
  }
}
"#;

const LIST: &str = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: first}
- apiVersion: v1
  kind: Pod
  metadata: {name: listed}
  spec:
    containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}]
    volumes:
    - name: t
      emptyDir: {}
";

const REVIEW: &str = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
 "request": {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
  "resource": {"group": "", "version": "v1", "resource": "pods"},
  "namespace": "default", "operation": "CREATE",
  "object": {"kind": "Pod", "metadata": {"name": "reviewed"},
   "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
    "volumes": [{"name": "t", "emptyDir": {}}]}}}}
"#;

/// (line, column) of the `nth` occurrence of `needle` in `text`, 1-based.
fn find(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(c) = line[from..].find(needle) {
            if seen == nth {
                return (i + 1, from + c + 1);
            }
            seen += 1;
            from += c + needle.len();
        }
    }
    panic!("{needle:?} #{nth} not in the text");
}

struct Case {
    file: &'static str,
    text: &'static str,
    /// (object name, rule, where its field is: needle and occurrence)
    findings: Vec<(&'static str, &'static str, &'static str, usize)>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            file: "multi.yaml",
            text: MULTI,
            findings: vec![
                // a block sequence item: its first key
                ("block", "mount-path-reserved", "name: host", 0),
                // a block mapping key
                ("block", "emptydir-size-limit-required", "emptyDir:", 0),
                // a flow mapping key on the document's second line
                ("flow", "emptydir-size-limit-required", "emptyDir:", 1),
            ],
        },
        Case {
            file: "pod.json",
            text: JSON_POD,
            findings: vec![("json", "emptydir-size-limit-required", "\"emptyDir\"", 0)],
        },
        Case {
            file: "list.yaml",
            text: LIST,
            findings: vec![("listed", "emptydir-size-limit-required", "emptyDir:", 0)],
        },
        Case {
            file: "review.json",
            text: REVIEW,
            findings: vec![(
                "reviewed",
                "emptydir-size-limit-required",
                "\"emptyDir\"",
                0,
            )],
        },
    ]
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_volguard"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stdout).unwrap())
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        std::fs::write(dir.path().join(c.file), c.text).unwrap();
    }
    dir
}

fn files() -> Vec<&'static str> {
    cases().iter().map(|c| c.file).collect()
}

#[test]
fn text_points_at_the_field() {
    let dir = setup();
    let (code, out) = run(dir.path(), &files());
    assert_eq!(code, Some(1), "{out}");
    for c in cases() {
        for (name, rule, needle, nth) in &c.findings {
            let (l, col) = find(c.text, needle, *nth);
            // The object's header, then its finding lines.
            let header = out
                .lines()
                .position(|x| x.contains(&format!("/{name} ({}:", c.file)))
                .unwrap_or_else(|| panic!("no {name} in\n{out}"));
            let want = format!(" {l}:{col} [{rule}] ");
            assert!(
                out.lines()
                    .skip(header + 1)
                    .take_while(|x| x.starts_with("  "))
                    .any(|x| x.contains(&want)),
                "{}: {name}: no `{want}` in\n{out}",
                c.file
            );
        }
    }
    // The Service and the ConfigMap list item are named, not silently dropped.
    assert!(
        out.contains(
            "skipped 2 documents volguard does not judge: Service/s (multi.yaml:2), ConfigMap/first (list.yaml:1)"
        ),
        "{out}"
    );
    assert!(out.contains("5 objects checked: 5 denied"), "{out}");
}

#[test]
fn json_sarif_and_junit_point_at_the_field() {
    let dir = setup();
    let (_, json) = run(dir.path(), &[&files()[..], &["-o", "json"]].concat());
    let json: Value = serde_json::from_str(&json).unwrap();
    let (_, sarif) = run(dir.path(), &[&files()[..], &["-o", "sarif"]].concat());
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["runs"][0]["columnKind"], "unicodeCodePoints");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let (_, junit) = run(dir.path(), &[&files()[..], &["-o", "junit"]].concat());
    let mut checked = 0;
    for c in cases() {
        for (name, rule, needle, nth) in &c.findings {
            let (l, col) = find(c.text, needle, *nth);
            // JSON: the violation's line and column.
            let object = json
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == *name)
                .unwrap_or_else(|| panic!("{name} not in the JSON"));
            let v = object["violations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["rule"] == *rule)
                .unwrap();
            assert_eq!(
                (v["line"].as_u64(), v["column"].as_u64()),
                (Some(l as u64), Some(col as u64)),
                "{name}: {v}"
            );
            // SARIF: the result's region.
            let r = results
                .iter()
                .find(|r| {
                    r["ruleId"] == *rule
                        && r["message"]["text"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("/{name}: "))
                })
                .unwrap_or_else(|| panic!("no SARIF result for {name} {rule}"));
            let loc = &r["locations"][0]["physicalLocation"];
            assert_eq!(loc["artifactLocation"]["uri"], c.file);
            assert_eq!(loc["region"]["startLine"], l as u64, "{name}: {r}");
            assert_eq!(loc["region"]["startColumn"], col as u64, "{name}: {r}");
            // JUnit: the finding's text starts with file:line:column.
            let at = format!("{}:{l}:{col}: ", c.file);
            assert!(junit.contains(&at), "{name}: no {at} in\n{junit}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // The test case carries the object's file and first line.
    assert!(
        junit.contains("name=\"Pod/default/block (multi.yaml:6)\" file=\"multi.yaml\" line=\"6\""),
        "{junit}"
    );
}

#[test]
fn positional_paths_and_f_together_and_counts_in_the_singular() {
    let dir = setup();
    let (code, out) = run(dir.path(), &["pod.json"]);
    assert_eq!(code, Some(1));
    assert!(
        out.ends_with(
            "1 object checked: 1 denied, 0 allowed with findings, 0 clean; 0 input errors\n"
        ),
        "{out}"
    );
    let (_, both) = run(dir.path(), &["pod.json", "-f", "list.yaml"]);
    assert!(both.contains("2 objects checked"), "{both}");
    let (_, f_only) = run(dir.path(), &["-f", "pod.json", "list.yaml"]);
    assert_eq!(both.lines().count(), f_only.lines().count(), "{f_only}");
    std::fs::write(dir.path().join("bad.yaml"), "kind: [\n").unwrap();
    let (code, out) = run(dir.path(), &["pod.json", "bad.yaml"]);
    assert_eq!(code, Some(2));
    assert!(out.ends_with("; 1 input error\n"), "{out}");
    // No path at all is a usage error.
    let (code, _) = run(dir.path(), &[]);
    assert_eq!(code, Some(2));
}

/// Unknown fields (keys the apiserver does not know) point at their key too, in every format:
/// block YAML, flow YAML and JSON.
#[test]
fn unknown_fields_point_at_their_key_in_every_format() {
    const BLOCK: &str = "apiVersion: v1
kind: Pod
metadata: {name: typo}
spec:
  containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}]
  volumes:
  - name: t
    emptydir:
      sizeLimit: 1Gi
---
{apiVersion: v1, kind: Pod, metadata: {name: flowtypo}, spec: {containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}],
  volumes: [{name: t, emptyDir: {sizelimit: 1Gi}}]}}
";
    const JSON_TYPO: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jsontypo"},
 "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
  "volumes": [{"name": "t", "emptyDir": {"sizeLimit": "1Gi"}, "hostpath": {"path": "/x"}}]}}
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typo.yaml"), BLOCK).unwrap();
    std::fs::write(dir.path().join("typo.json"), JSON_TYPO).unwrap();
    // (object, file, text, unknown field path, needle of its key)
    let want = [
        (
            "typo",
            "typo.yaml",
            BLOCK,
            "spec.volumes[0].emptydir",
            "emptydir:",
        ),
        (
            "flowtypo",
            "typo.yaml",
            BLOCK,
            "spec.volumes[0].emptyDir.sizelimit",
            "sizelimit:",
        ),
        (
            "jsontypo",
            "typo.json",
            JSON_TYPO,
            "spec.volumes[0].hostpath",
            "\"hostpath\"",
        ),
    ];
    let files = ["typo.yaml", "typo.json"];
    let (_, text) = run(dir.path(), &files);
    let (_, json) = run(dir.path(), &[&files[..], &["-o", "json"]].concat());
    let json: Value = serde_json::from_str(&json).unwrap();
    let (_, sarif) = run(dir.path(), &[&files[..], &["-o", "sarif"]].concat());
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    let (_, junit) = run(dir.path(), &[&files[..], &["-o", "junit"]].concat());
    for (name, file, source, path, needle) in want {
        let (l, col) = find(source, needle, 0);
        let line = format!("note  {l}:{col} [unknown-field] {path}: ");
        assert!(text.contains(&line), "{name}: no `{line}` in\n{text}");
        let object = json
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the JSON"));
        assert_eq!(
            object["unknownFields"],
            serde_json::json!([{"path": path, "line": l, "column": col}]),
            "{name}"
        );
        let r = sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["ruleId"] == "unknown-field"
                    && r["message"]["text"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("/{name}: {path}: "))
            })
            .unwrap_or_else(|| panic!("no SARIF result for {name}"));
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], file);
        assert_eq!(loc["region"]["startLine"], l as u64, "{name}: {r}");
        assert_eq!(loc["region"]["startColumn"], col as u64, "{name}: {r}");
        let note = format!("note {l}:{col} [unknown-field] {path}: ");
        assert!(junit.contains(&note), "{name}: no `{note}` in\n{junit}");
    }
}
