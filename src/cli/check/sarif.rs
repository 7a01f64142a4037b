//! `--output sarif`: SARIF 2.1.0, so code-scanning tools (GitHub, GitLab, Azure DevOps) show
//! each finding at the file and line of the object. Rule metadata comes from the registry.

use std::io::Write;

use serde_json::{Value, json};

use super::report::{CheckResult, ViolationReport};
use crate::engine::rules::{Action, RULES};

/// SARIF's level for an action: deny is an error, warn a warning, audit a note.
fn level(action: &str) -> &'static str {
    match action {
        "deny" => "error",
        "warn" => "warning",
        _ => "note",
    }
}

/// The violation's text without the `[rule] path: ` its own fields carry.
pub(super) fn bare_message(v: &ViolationReport) -> &str {
    let prefix = format!("[{}] {}: ", v.rule, v.path);
    v.message.strip_prefix(&prefix).unwrap_or(&v.message)
}

pub fn document(result: &CheckResult) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            let default = match r.meta.default_action {
                Action::Off => "none",
                Action::Audit => "note",
                Action::Warn => "warning",
                Action::Deny => "error",
            };
            json!({
                "id": r.name(),
                "name": r.name(),
                "shortDescription": {"text": r.meta.summary},
                "fullDescription": {"text": r.meta.explanation},
                "help": {"text": format!("{} (`volguard rules` explains every rule)", r.meta.explanation)},
                "defaultConfiguration": {"level": default},
            })
        })
        .collect();
    let mut results = Vec::new();
    for o in &result.objects {
        for v in &o.violations {
            let index = RULES.iter().position(|r| r.name() == v.rule);
            let mut r = json!({
                "ruleId": v.rule,
                "level": level(&v.action),
                "message": {"text": format!("{}/{}: {}: {}", o.kind, o.name, v.path, bare_message(v))},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&o.file)},
                        "region": {"startLine": o.line.max(1)}
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{}/{}/{}.{}", o.kind, o.namespace, o.name, v.path),
                        "kind": "object"
                    }]
                }],
            });
            if let Some(i) = index {
                r["ruleIndex"] = json!(i);
            }
            results.push(r);
        }
    }
    let notifications: Vec<Value> = result
        .errors
        .iter()
        .map(|e| {
            let mut n = json!({
                "level": "error",
                "message": {"text": e.message},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(&e.file)}}}],
            });
            if let Some(line) = e.line {
                n["locations"][0]["physicalLocation"]["region"] = json!({"startLine": line.max(1)});
            }
            n
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "volguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/volguard/volguard",
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": result.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }]
    })
}

/// A file name as a relative URI reference (`<stdin>` stays as it is, percent-encoded).
fn uri(file: &str) -> String {
    let mut out = String::with_capacity(file.len());
    for b in file.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn write(result: &CheckResult, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &document(result)).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::check_text;
    use crate::engine::Policy;

    #[test]
    fn findings_become_results_with_file_line_and_rule_index() {
        let mut r = CheckResult::default();
        let text = "kind: ConfigMap\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}, {name: x, mountPath: /x}]}]\n  volumes: [{name: t, emptyDir: {}}]\n";
        check_text(
            &Policy::default(),
            "dir/my pod.yaml",
            text,
            "default",
            &mut r,
        );
        let doc = document(&r);
        assert_eq!(doc["version"], "2.1.0");
        let run = &doc["runs"][0];
        assert_eq!(
            run["tool"]["driver"]["rules"].as_array().unwrap().len(),
            RULES.len()
        );
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "{results:#?}");
        for res in results {
            let loc = &res["locations"][0]["physicalLocation"];
            assert_eq!(loc["artifactLocation"]["uri"], "dir/my%20pod.yaml");
            assert_eq!(loc["region"]["startLine"], 3);
            let i = res["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(run["tool"]["driver"]["rules"][i]["id"], res["ruleId"]);
            assert_eq!(res["level"], "error");
            let text = res["message"]["text"].as_str().unwrap();
            assert!(text.starts_with("Pod/p: spec."), "{text}");
            assert!(!text.contains("] spec."), "no [rule] prefix: {text}");
        }
    }

    #[test]
    fn input_errors_are_notifications() {
        let mut r = CheckResult::default();
        check_text(
            &Policy::default(),
            "bad.yaml",
            "kind: [\n",
            "default",
            &mut r,
        );
        let doc = document(&r);
        let inv = &doc["runs"][0]["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false);
        assert_eq!(
            inv["toolExecutionNotifications"].as_array().unwrap().len(),
            1
        );
    }
}
