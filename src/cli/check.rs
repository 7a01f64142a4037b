//! `volguard check`: the engine over manifests on disk or stdin.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::model::Object;
use crate::policy::Policy;
use crate::verdict::{self, Finding, Operation, Request, Skipped};
use crate::workload::POD_KINDS;

/// One object's result, as printed by `--output json`.
#[derive(Debug, Serialize)]
pub struct ObjectReport {
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<&'static str>,
    pub violations: Vec<ViolationReport>,
}

#[derive(Debug, Serialize)]
pub struct ViolationReport {
    pub rule: String,
    pub action: String,
    pub path: String,
    pub message: String,
}

impl From<&Finding> for ViolationReport {
    fn from(f: &Finding) -> Self {
        ViolationReport {
            rule: f.rule.name().to_owned(),
            action: f.action.as_str().to_owned(),
            path: f.path.clone(),
            message: f.to_string(),
        }
    }
}

/// An input that could not be read or parsed (reported, and the rest still checked).
#[derive(Debug)]
pub struct InputError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, Default)]
pub struct CheckResult {
    pub objects: Vec<ObjectReport>,
    pub errors: Vec<InputError>,
}

impl CheckResult {
    /// 0: nothing denied; 1: something denied; 2: some input could not be read.
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if self.objects.iter().any(|o| !o.allowed) {
            1
        } else {
            0
        }
    }
}

/// Expands files, directories (recursively, `*.yaml|*.yml|*.json`) and `-`.
pub fn expand_inputs(inputs: &[PathBuf], errors: &mut Vec<InputError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, errors);
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                file: dir.display().to_string(),
                line: None,
                message: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out, errors);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}

/// Checks every input. `namespace` is used for objects that do not name one.
pub fn check_paths(policy: &Policy, inputs: &[PathBuf], namespace: &str) -> CheckResult {
    let mut result = CheckResult::default();
    let files = expand_inputs(inputs, &mut result.errors);
    for file in files {
        let (name, text) = if file.as_os_str() == "-" {
            let mut s = String::new();
            match std::io::stdin().read_to_string(&mut s) {
                Ok(_) => ("<stdin>".to_owned(), s),
                Err(e) => {
                    result.errors.push(InputError {
                        file: "<stdin>".into(),
                        line: None,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            }
        } else {
            match std::fs::read_to_string(&file) {
                Ok(s) => (file.display().to_string(), s),
                Err(e) => {
                    result.errors.push(InputError {
                        file: file.display().to_string(),
                        line: None,
                        message: format!("cannot read: {e}"),
                    });
                    continue;
                }
            }
        };
        check_text(policy, &name, &text, namespace, &mut result);
    }
    result
}

/// Splits a YAML stream into documents with the 1-based line each starts on.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // `--- {inline: doc}` carries content after the marker.
            let rest = line[3..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                start = i + 1;
            }
        } else {
            if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                start = i + 2;
                continue;
            }
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs.into_iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .collect()
}

/// Checks one file's text (multi-document YAML, JSON, `List`, AdmissionReview).
pub fn check_text(
    policy: &Policy,
    file: &str,
    text: &str,
    namespace: &str,
    result: &mut CheckResult,
) {
    for (line, doc) in documents(text) {
        let value: Value = match serde_yaml_ng::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                let l = e.location().map(|l| line + l.line() - 1).unwrap_or(line);
                let msg = crate::policy::yaml_error_message(&e);
                result.errors.push(InputError {
                    file: file.to_owned(),
                    line: Some(l),
                    message: format!("malformed YAML: {msg}"),
                });
                continue;
            }
        };
        check_value(policy, file, line, value, namespace, result);
    }
}

fn str_at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in keys {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

fn check_value(
    policy: &Policy,
    file: &str,
    line: usize,
    value: Value,
    namespace: &str,
    result: &mut CheckResult,
) {
    if value.is_null() {
        return;
    }
    let kind = str_at(&value, &["kind"]).unwrap_or_default().to_owned();
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        if let Some(Value::Sequence(items)) = value.get("items") {
            for item in items.clone() {
                check_value(policy, file, line, item, namespace, result);
            }
        }
        return;
    }
    if kind == "AdmissionReview" {
        let Some(req) = value.get("request") else {
            result.errors.push(InputError {
                file: file.to_owned(),
                line: Some(line),
                message: "AdmissionReview without a request".into(),
            });
            return;
        };
        let op = match str_at(req, &["operation"]) {
            Some("UPDATE") => Operation::Update,
            Some("DELETE") => Operation::Delete,
            Some("CONNECT") => Operation::Connect,
            _ => Operation::Create,
        };
        let review_kind = str_at(req, &["kind", "kind"])
            .unwrap_or_default()
            .to_owned();
        let ns = str_at(req, &["namespace"]).unwrap_or(namespace).to_owned();
        let decode = |v: Option<&Value>| -> Result<Option<Object>, String> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(v) => serde_yaml_ng::from_value(v.clone())
                    .map(Some)
                    .map_err(|e| e.to_string()),
            }
        };
        match (decode(req.get("object")), decode(req.get("oldObject"))) {
            (Ok(obj), Ok(old)) => {
                let obj = obj.unwrap_or_default();
                report(
                    policy,
                    file,
                    line,
                    &review_kind,
                    &ns,
                    op,
                    &obj,
                    old.as_ref(),
                    result,
                );
            }
            (Err(e), _) | (_, Err(e)) => result.errors.push(InputError {
                file: file.to_owned(),
                line: Some(line),
                message: format!("AdmissionReview object: {e}"),
            }),
        }
        return;
    }
    if !POD_KINDS.contains(&kind.as_str()) {
        return;
    }
    match serde_yaml_ng::from_value::<Object>(value) {
        Ok(obj) => {
            let ns = obj
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_owned());
            report(
                policy,
                file,
                line,
                &kind,
                &ns,
                Operation::Create,
                &obj,
                None,
                result,
            );
        }
        Err(e) => result.errors.push(InputError {
            file: file.to_owned(),
            line: Some(line),
            message: format!("{kind}: {e}"),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    policy: &Policy,
    file: &str,
    line: usize,
    kind: &str,
    namespace: &str,
    operation: Operation,
    obj: &Object,
    old: Option<&Object>,
    result: &mut CheckResult,
) {
    if !POD_KINDS.contains(&kind) {
        return;
    }
    let verdict = verdict::evaluate(
        policy,
        &Request {
            kind,
            namespace,
            operation,
            object: obj,
            old_object: old,
        },
    );
    let name = obj
        .metadata
        .name
        .clone()
        .or_else(|| obj.metadata.generate_name.clone().map(|g| format!("{g}*")))
        .unwrap_or_else(|| "<unnamed>".into());
    result.objects.push(ObjectReport {
        file: file.to_owned(),
        line,
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name,
        allowed: verdict.allowed,
        skipped: match verdict.skipped {
            Some(Skipped::ExemptNamespace) => Some("exempt namespace"),
            Some(Skipped::NotApplicable) => Some("not applicable"),
            None => None,
        },
        violations: verdict.findings.iter().map(ViolationReport::from).collect(),
    });
}

/// Prints the human report: objects with findings, grouped, then a summary line.
pub fn write_text(result: &CheckResult, out: &mut impl Write) -> std::io::Result<()> {
    for o in &result.objects {
        if o.violations.is_empty() {
            continue;
        }
        let verdict = if o.allowed {
            "allowed with findings"
        } else {
            "denied"
        };
        writeln!(
            out,
            "{}/{} ({}:{}): {verdict}",
            o.kind, o.name, o.file, o.line
        )?;
        for v in &o.violations {
            writeln!(out, "  {:<5} {}", v.action, v.message)?;
        }
    }
    for e in &result.errors {
        writeln!(out, "error: {e}")?;
    }
    let denied = result.objects.iter().filter(|o| !o.allowed).count();
    let with_findings = result
        .objects
        .iter()
        .filter(|o| o.allowed && !o.violations.is_empty())
        .count();
    writeln!(
        out,
        "{} objects checked: {denied} denied, {with_findings} allowed with findings, {} clean; {} input errors",
        result.objects.len(),
        result.objects.len() - denied - with_findings,
        result.errors.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let text =
            "# comment\napiVersion: v1\nkind: Pod\n---\n\n---\nkind: Deployment\n--- {kind: Pod}\n";
        let docs = documents(text);
        let lines: Vec<usize> = docs.iter().map(|d| d.0).collect();
        assert_eq!(lines, [2, 7, 8]);
    }

    #[test]
    fn list_and_admission_review_and_malformed() {
        let policy = Policy::default();
        let mut r = CheckResult::default();
        let list = "kind: List\nitems:\n- {kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}], volumes: [{name: t, emptyDir: {}}]}}\n";
        check_text(&policy, "l.yaml", list, "default", &mut r);
        assert_eq!(r.objects.len(), 1);
        assert!(!r.objects[0].allowed);
        let review = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"kube-system","operation":"CREATE","object":{"kind":"Pod","metadata":{"name":"b"},"spec":{"volumes":[{"name":"t","emptyDir":{}}]}}}}"#;
        check_text(&policy, "r.json", review, "default", &mut r);
        assert_eq!(r.objects.len(), 2);
        assert!(r.objects[1].allowed);
        assert_eq!(r.objects[1].skipped, Some("exempt namespace"));
        check_text(
            &policy,
            "bad.yaml",
            "kind: Pod\n---\nkind: [\n",
            "default",
            &mut r,
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].file, "bad.yaml");
        assert!(r.errors[0].line.unwrap() >= 3, "{}", r.errors[0]);
        assert_eq!(r.exit_code(), 2);
    }
}
