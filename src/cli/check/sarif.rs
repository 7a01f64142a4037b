//! `--output sarif`: SARIF 2.1.0, so code-scanning tools (GitHub, GitLab, Azure DevOps) show
//! each finding at the line and column of its field (the object's line when the field
//! cannot be placed). Rule metadata comes from the registry.

use std::io::Write;

use serde_json::{Value, json};

use super::report::{CheckResult, UNKNOWN_FIELD, UNKNOWN_FIELD_MESSAGE, ViolationReport};
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
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "volguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/volguard/volguard",
                "rules": rules(),
            }},
            "columnKind": "unicodeCodePoints",
            "invocations": [{
                "executionSuccessful": result.errors.is_empty(),
                "toolExecutionNotifications": notifications(result),
            }],
            "results": results(result),
        }]
    })
}

/// The driver's rules: the registry, each at the level of its default action.
fn rules() -> Vec<Value> {
    RULES
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
        .collect()
}

/// One result per unknown field and per finding, object by object.
fn results(result: &CheckResult) -> Vec<Value> {
    let mut results = Vec::new();
    for o in &result.objects {
        for u in &o.unknown_fields {
            let path = &u.path;
            let region = match (u.line, u.column) {
                (Some(l), Some(c)) => json!({"startLine": l, "startColumn": c}),
                _ => json!({"startLine": o.line.max(1)}),
            };
            results.push(json!({
                "ruleId": UNKNOWN_FIELD,
                "level": "warning",
                "message": {"text": format!("{}/{}: {path}: {UNKNOWN_FIELD_MESSAGE}", o.kind, o.name)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&o.file)},
                        "region": region
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{}/{}/{}.{path}", o.kind, o.namespace, o.name),
                        "kind": "object"
                    }]
                }],
            }));
        }
        for v in &o.violations {
            let index = RULES.iter().position(|r| r.name() == v.rule);
            let mut r = json!({
                "ruleId": v.rule,
                "level": level(&v.action),
                "message": {"text": format!("{}/{}: {}: {}", o.kind, o.name, v.path, bare_message(v))},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&o.file)},
                        "region": region(o.line, v)
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
    results
}

/// The input errors, as notifications of the invocation.
fn notifications(result: &CheckResult) -> Vec<Value> {
    result
        .errors
        .iter()
        .map(|e| {
            let mut n = json!({
                "level": "error",
                "message": {"text": e.message},
            });
            if let Some(file) = &e.file {
                n["locations"] =
                    json!([{"physicalLocation": {"artifactLocation": {"uri": uri(file)}}}]);
                if let Some(line) = e.line {
                    n["locations"][0]["physicalLocation"]["region"] =
                        json!({"startLine": line.max(1)});
                }
            }
            n
        })
        .collect()
}

/// The finding's field (columns in Unicode code points, as the run declares), else the
/// object's first line.
fn region(object_line: usize, v: &ViolationReport) -> Value {
    match (v.line, v.column) {
        (Some(line), Some(column)) => {
            json!({"startLine": line.max(1), "startColumn": column.max(1)})
        }
        _ => json!({"startLine": object_line.max(1)}),
    }
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
    use crate::cli::check::checked;

    #[test]
    fn findings_become_results_with_file_line_and_rule_index() {
        let text = "kind: ConfigMap\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}, {name: x, mountPath: /x}]}]\n  volumes: [{name: t, emptyDir: {}}]\n";
        let r = checked(&[("dir/my pod.yaml", text)]);
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
            // The field's line (the mount on line 7, the volume on line 8), not the
            // object's (3), and its column.
            let line = loc["region"]["startLine"].as_u64().unwrap();
            assert!(line == 7 || line == 8, "{loc}");
            assert!(loc["region"]["startColumn"].as_u64().unwrap() > 1, "{loc}");
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
        let r = checked(&[("bad.yaml", "kind: [\n")]);
        let doc = document(&r);
        let inv = &doc["runs"][0]["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false);
        assert_eq!(
            inv["toolExecutionNotifications"].as_array().unwrap().len(),
            1
        );
    }
}
