//! `volguard check`: the engine over manifests on disk or stdin. Inputs are expanded by
//! [`inputs`], split by [`documents`], judged here (AdmissionReviews through the same
//! decoder as the webhook), and rendered by [`report`].

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::admission;
use crate::engine::model::Object;
use crate::engine::policy::Policy;
use crate::engine::verdict::{self, Request, Skipped, Verdict};
use crate::engine::workload::POD_KINDS;

pub mod documents;
pub mod inputs;
pub mod junit;
pub mod report;
pub mod sarif;

use report::{CheckResult, InputError, ObjectReport, ViolationReport};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files, directories (recursively: *.yaml, *.yml, *.json) or - for stdin.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Policy file (default: the embedded default policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Namespace assumed for objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[arg(short = 'o', long, value_enum, default_value_t = super::OutputFormat::Text)]
    pub output: super::OutputFormat,
    /// Exit 0 even when the input holds no Kubernetes object at all (by default that is an
    /// error: an empty pipe usually means the command before it failed).
    #[arg(long)]
    pub allow_empty: bool,
}

/// The error when no input held a Kubernetes object.
pub const NO_OBJECTS: &str =
    "no Kubernetes objects found in the input (use --allow-empty if that is expected)";

pub fn run(args: CheckArgs) -> ExitCode {
    let policy = match super::load_policy(args.policy.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut result = check_paths(&policy, &args.files, &args.namespace);
    // Input errors already exit 2 and say why; this is for input that read fine but held
    // nothing (an empty pipe from a failed `helm template`, a values file passed by mistake).
    let nothing = result.kubernetes_objects == 0 && result.objects.is_empty();
    if nothing && result.errors.is_empty() && !args.allow_empty {
        result.errors.push(InputError {
            file: None,
            line: None,
            message: NO_OBJECTS.to_owned(),
        });
    }
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        super::OutputFormat::Text => report::write_text(&result, &mut stdout),
        super::OutputFormat::Json => report::write_json(&result, &mut stdout),
        super::OutputFormat::Sarif => sarif::write(&result, &mut stdout),
        super::OutputFormat::Junit => junit::write(&result, &mut stdout),
    };
    if written.is_err() {
        return ExitCode::from(2);
    }
    ExitCode::from(result.exit_code() as u8)
}

/// Checks every input. `namespace` is used for objects that do not name one.
pub fn check_paths(policy: &Policy, inputs: &[PathBuf], namespace: &str) -> CheckResult {
    let mut result = CheckResult::default();
    for file in inputs::expand_inputs(inputs, &mut result.errors) {
        match inputs::read(&file) {
            Ok((name, text)) => check_text(policy, &name, &text, namespace, &mut result),
            Err(e) => result.errors.push(e),
        }
    }
    result
}

/// Checks one file's text (multi-document YAML, JSON, `List`, AdmissionReview).
pub fn check_text(
    policy: &Policy,
    file: &str,
    text: &str,
    namespace: &str,
    result: &mut CheckResult,
) {
    for (line, doc) in documents::documents(text) {
        let value: Value = match serde_yaml_ng::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                let l = e.location().map(|l| line + l.line() - 1).unwrap_or(line);
                let msg = crate::engine::policy::yaml_error_message(&e);
                result.errors.push(InputError {
                    file: Some(file.to_owned()),
                    line: Some(l),
                    message: format!("malformed YAML: {msg}"),
                });
                continue;
            }
        };
        check_value(policy, file, line, value, namespace, result);
    }
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
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    if !kind.is_empty() && api_version.is_some_and(|v| !v.is_empty()) {
        result.kubernetes_objects += 1;
    }
    let error = |message: String| InputError {
        file: Some(file.to_owned()),
        line: Some(line),
        message,
    };
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        if let Some(Value::Sequence(items)) = value.get("items") {
            for item in items.clone() {
                check_value(policy, file, line, item, namespace, result);
            }
        }
        return;
    }
    if kind == "AdmissionReview" {
        // Through the webhook's own decoder, so a saved review gets the webhook's verdict.
        let json = serde_json::to_vec(&value).map_err(|e| e.to_string());
        let decoded = json
            .as_deref()
            .map_err(String::clone)
            .and_then(|json| admission::decode(json).map_err(|e| e.to_string()));
        match decoded {
            Ok(req) => {
                let verdict = req.judge(policy);
                let object = req.object.as_ref().or(req.old_object.as_ref());
                let ns = req.namespace.as_deref().unwrap_or(namespace);
                let name = req.name.as_deref();
                push(
                    result,
                    file,
                    line,
                    &req.kind.kind,
                    ns,
                    name,
                    object,
                    verdict,
                );
            }
            Err(e) => result.errors.push(error(e)),
        }
        return;
    }
    if !POD_KINDS.contains(&kind.as_str()) {
        return;
    }
    // By reference: the object borrows its strings from `value`.
    match Object::deserialize(&value) {
        Ok(obj) => {
            let ns = obj.metadata.namespace.as_deref().unwrap_or(namespace);
            let verdict = verdict::evaluate(policy, &Request::create(&kind, ns, &obj));
            push(result, file, line, &kind, ns, None, Some(&obj), verdict);
        }
        Err(e) => result.errors.push(error(format!("{kind}: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    result: &mut CheckResult,
    file: &str,
    line: usize,
    kind: &str,
    namespace: &str,
    name: Option<&str>,
    obj: Option<&Object>,
    verdict: Verdict,
) {
    // Only what the engine judges is reported (other kinds, subresources, DELETE...).
    if verdict.skipped == Some(Skipped::NotApplicable) {
        return;
    }
    let meta = obj.map(|o| &o.metadata);
    let name = meta
        .and_then(|m| m.name.as_deref().map(str::to_owned))
        .or_else(|| name.filter(|n| !n.is_empty()).map(str::to_owned))
        .or_else(|| {
            meta.and_then(|m| m.generate_name.as_deref())
                .map(|g| format!("{g}*"))
        })
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
            _ => None,
        },
        violations: verdict.findings.iter().map(ViolationReport::from).collect(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only documents with `apiVersion` and `kind` count as Kubernetes objects; any of them
    /// (a Service, an empty List) is enough for the input not to be "empty".
    #[test]
    fn counts_kubernetes_objects() {
        let policy = Policy::default();
        let count = |text: &str| {
            let mut r = CheckResult::default();
            check_text(&policy, "t.yaml", text, "default", &mut r);
            r.kubernetes_objects
        };
        assert_eq!(count(""), 0);
        assert_eq!(count("---\n# only a comment\n---\n"), 0);
        assert_eq!(count("name: my-app\nreplicas: 3\n"), 0);
        assert_eq!(count("kind: Pod\n"), 0);
        assert_eq!(count("- a\n- b\n"), 0);
        assert_eq!(
            count("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            1
        );
        assert_eq!(count("apiVersion: v1\nkind: List\nitems: []\n"), 1);
        assert_eq!(
            count("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n"),
            2
        );
    }

    #[test]
    fn list_and_admission_review_and_malformed() {
        let policy = Policy::default();
        let mut r = CheckResult::default();
        let list = "kind: List\nitems:\n- {kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}], volumes: [{name: t, emptyDir: {}}]}}\n";
        check_text(&policy, "l.yaml", list, "default", &mut r);
        assert_eq!(r.objects.len(), 1);
        assert!(!r.objects[0].allowed);
        let review = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"kube-system","operation":"CREATE","object":{"kind":"Pod","metadata":{"name":"b"},"spec":{"volumes":[{"name":"t","emptyDir":{}}]}}}}"#;
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
        assert_eq!(r.errors[0].file.as_deref(), Some("bad.yaml"));
        assert!(r.errors[0].line.unwrap() >= 3, "{}", r.errors[0]);
        assert_eq!(r.exit_code(), 2);
    }

    /// Offline and at admission, a review means the same: a status subresource is not
    /// judged, an unknown operation is an input error (a 400 on the wire).
    #[test]
    fn reviews_are_judged_as_the_webhook_judges_them() {
        let policy = Policy::default();
        let review = |op: &str, sub: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"1","kind":{{"group":"","version":"v1","kind":"Pod"}},"resource":{{"group":"","version":"v1","resource":"pods"}},{sub}"namespace":"default","operation":"{op}","object":{{"kind":"Pod","metadata":{{"name":"b"}},"spec":{{"containers":[{{"name":"c","volumeMounts":[{{"name":"t","mountPath":"/t"}}]}}],"volumes":[{{"name":"t","emptyDir":{{}}}}]}}}}}}}}"#
            )
        };
        let mut r = CheckResult::default();
        check_text(&policy, "a.json", &review("CREATE", ""), "default", &mut r);
        assert_eq!(r.objects.len(), 1);
        assert!(!r.objects[0].allowed);
        check_text(
            &policy,
            "b.json",
            &review("UPDATE", r#""subResource":"status","#),
            "default",
            &mut r,
        );
        assert_eq!(r.objects.len(), 1, "status subresource is not judged");
        check_text(&policy, "c.json", &review("PATCH", ""), "default", &mut r);
        assert_eq!(r.errors.len(), 1, "unknown operation");
        assert!(
            r.errors[0].message.contains("AdmissionReview"),
            "{}",
            r.errors[0]
        );
    }
}
