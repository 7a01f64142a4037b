//! Whole messages where nothing limits them, and the apiserver's limits where something
//! does: a Pod with very long names and paths through `check` (text, JSON, SARIF, JUnit),
//! `audit` (text, JSON) and the webhook's AdmissionReview answer.
//!
//! Offline, every path and every message is printed whole. At admission each warning and
//! denial line stays within `admission::MAX_LINE` bytes, because the apiserver cuts a
//! webhook warning to 256 runes once one response's warnings pass 4096 runes
//! (`k8s.io/apiserver/pkg/endpoints/filters/warning.go`: `truncateItemRunes`,
//! `truncateAtTotalRunes`); what gives is the explanation, never the rule ID, the field
//! path or the fix.

use serde::Deserialize;
use serde_json::{Value, json};
use volguard::Policy;
use volguard::admission;
use volguard::cli::audit::{cluster::Item, judge::judge, output};
use volguard::cli::check::report::{self, CheckResult};
use volguard::cli::check::{check_text, junit, sarif};

const NAME: &str = "a-container-name-that-is-as-long-as-a-dns-label-allows-to-be-xx";
const VOLUME: &str = "a-very-long-volume-name-that-is-as-long-as-a-dns-label-allows-x";

fn outer() -> String {
    format!(
        "/etc/grafana/provisioning{}",
        "/datasources-and-dashboards".repeat(6)
    )
}

fn inner() -> String {
    format!("{}{}", outer(), "/nested/configuration/directory".repeat(4))
}

/// A Pod whose findings carry long names and paths: a nested mount (warn, fix "fine if
/// intended") and memory emptyDirs over the Pod's memory limit (deny, fix "lower sizeLimit
/// or raise the limit").
fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{NAME}-pod"), "namespace": "default"},
        "spec": {
            "containers": [{"name": NAME, "image": "grafana/grafana:11.0.0",
                "resources": {"limits": {"memory": "256Mi"}},
                "volumeMounts": [
                    {"name": VOLUME, "mountPath": outer()},
                    {"name": "config", "mountPath": inner()}]}],
            "volumes": [
                {"name": VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                {"name": "config", "configMap": {"name": "grafana"}}]}})
}

const FIXES: &[&str] = &["lower sizeLimit or raise the limit", "fine if intended"];

fn checked() -> CheckResult {
    let mut r = CheckResult::default();
    let policy = Policy::default();
    check_text(&policy, "long.yaml", &pod().to_string(), "default", &mut r);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.objects.len(), 1);
    r
}

/// What offline output must hold whole: both paths quoted whole, both fixes, no ellipsis.
fn assert_whole(out: &str, what: &str) {
    for path in [outer(), inner()] {
        assert!(out.contains(&path), "{what}: {path} missing in\n{out}");
    }
    for fix in FIXES {
        assert!(out.contains(fix), "{what}: fix {fix:?} missing in\n{out}");
    }
    assert!(out.contains(VOLUME) && out.contains(NAME), "{what}");
    assert!(
        !out.contains('…') && !out.contains("..."),
        "{what}: shortened\n{out}"
    );
}

#[test]
fn check_prints_whole_paths_and_messages_in_every_format() {
    let r = checked();
    let rules: Vec<&str> = r.objects[0]
        .violations
        .iter()
        .map(|v| v.rule.as_str())
        .collect();
    assert!(
        rules.contains(&"mount-path-nested") && rules.contains(&"emptydir-memory-within-limits"),
        "{rules:?}"
    );
    let mut text = Vec::new();
    report::write_text(&r, &mut text).unwrap();
    assert_whole(&String::from_utf8(text).unwrap(), "text");
    let mut json = Vec::new();
    report::write_json(&r, &mut json).unwrap();
    // JSON escapes nothing in these paths; the messages are whole.
    assert_whole(&String::from_utf8(json).unwrap(), "json");
    // The results (the rule catalogue beside them has its own `...` in prose).
    let doc = sarif::document(&r);
    let results: Vec<String> = doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|res| res["message"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_whole(&results.join("\n"), "sarif");
    assert_whole(&junit::document(&r), "junit");
}

#[test]
fn audit_prints_whole_paths_and_messages() {
    let value = pod();
    let item = Item {
        kind: "Pod",
        api_version: "v1".into(),
        namespace: "default".into(),
        name: format!("{NAME}-pod"),
        uid: "u1".into(),
        controller_uid: None,
        object: volguard::Object::deserialize(value).unwrap(),
    };
    let audit = judge(&Policy::default(), vec![item]);
    let mut text = Vec::new();
    output::write_text(&audit, &mut text).unwrap();
    assert_whole(&String::from_utf8(text).unwrap(), "audit text");
    let mut json = Vec::new();
    output::write_json(&audit, &mut json).unwrap();
    assert_whole(&String::from_utf8(json).unwrap(), "audit json");
}

/// At admission: every line within the budget, starting with the rule ID and the field
/// path, ending with the fix; the explanation is what is shortened.
#[test]
fn admission_lines_fit_the_apiserver_and_keep_rule_path_and_fix() {
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "default", "operation": "CREATE",
        "userInfo": {"username": "alice"}, "object": pod()}});
    let bytes = serde_json::to_vec(&review).unwrap();
    let req = admission::decode(&bytes).unwrap();
    let verdict = req.judge(&Policy::default());
    assert!(!verdict.allowed);
    let r = admission::response(&req.uid, &verdict);
    let warnings = r.warnings.clone().unwrap_or_default();
    let denials: Vec<String> = r.result.message.lines().map(str::to_owned).collect();
    assert_eq!(warnings.len() + denials.len(), verdict.findings.len());
    for (line, f) in warnings.iter().chain(&denials).zip(
        verdict
            .with_action(volguard::Action::Warn)
            .chain(verdict.with_action(volguard::Action::Deny)),
    ) {
        assert!(
            line.len() <= admission::MAX_LINE,
            "{} bytes: {line}",
            line.len()
        );
        assert!(line.chars().count() <= 256, "{line}");
        assert!(
            line.starts_with(&format!("[{}] {}: ", f.rule, f.path)),
            "{line}"
        );
        let fix = f.message.rsplit_once("; ").unwrap().1;
        assert!(FIXES.contains(&fix), "{fix}");
        assert!(line.ends_with(&format!("; {fix}")), "{line}");
        // The whole finding did not fit: the explanation was shortened, visibly.
        assert!(f.to_string().len() > admission::MAX_LINE, "{f}");
        assert!(line.contains("…; "), "{line}");
    }
}
