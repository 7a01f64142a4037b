//! `volguard check`: the engine over manifests on disk or stdin. Inputs are expanded by
//! [`inputs`], split by [`documents`], judged here (AdmissionReviews through the same
//! decoder as the webhook), and rendered by [`report`].

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::Value;

use crate::admission;
use crate::engine::model::Object;
use crate::engine::policy::Policy;
use crate::engine::verdict::{self, Request, Skipped, Verdict};
use crate::engine::workload::POD_KINDS;

pub mod documents;
pub mod inputs;
pub mod junit;
pub mod kyaml;
pub mod locate;
pub mod report;
pub mod sarif;
pub mod stored;

use report::{
    CheckResult, InputError, ObjectReport, SkippedDocument, UnknownField, ViolationReport,
};

/// Where an object is: its file, the document it is in (indexed for field positions only
/// when a finding needs them) and its path inside that document (`items[2]` in a List,
/// `request.object` in an AdmissionReview).
struct Site<'a> {
    file: &'a str,
    line: usize,
    doc: &'a str,
    base: String,
    positions: &'a std::cell::OnceCell<locate::Positions>,
}

impl Site<'_> {
    fn inner(&self, path: &str) -> Site<'_> {
        Site {
            file: self.file,
            line: self.line,
            doc: self.doc,
            base: if self.base.is_empty() {
                path.to_owned()
            } else {
                format!("{}.{path}", self.base)
            },
            positions: self.positions,
        }
    }

    /// An input error at this object's document.
    fn error(&self, message: String) -> InputError {
        InputError {
            file: Some(self.file.to_owned()),
            line: Some(self.line),
            message,
        }
    }

    /// Where the field `path` of this object is written (its nearest written ancestor).
    fn locate(&self, path: &str) -> Option<locate::Position> {
        self.positions
            .get_or_init(|| locate::Positions::index(self.doc, self.line))
            .locate(&self.base, path)
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files, directories (recursively: *.yaml, *.yml, *.json) or - for stdin.
    #[arg(value_name = "FILE", required_unless_present = "filename")]
    pub paths: Vec<PathBuf>,
    /// The same as FILE (as kubectl spells it); both may be given.
    #[arg(short = 'f', long = "filename", value_name = "FILE", num_args = 1..)]
    pub filename: Vec<PathBuf>,
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
    let files: Vec<PathBuf> = args.filename.into_iter().chain(args.paths).collect();
    let mut result = with_deep_stack(|| check_paths(&policy, &files, &args.namespace));
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

/// Stack for [`check_paths`]: reading a document and dropping it recurse once per nesting
/// level, and YAML may nest [`kyaml::MAX_DEPTH`] levels (go-yaml's limit), more than the main
/// thread's 8 MiB holds (the release build overflowed it between 5,000 and 8,000 levels).
/// Only the pages a deep document touches are ever committed.
const CHECK_STACK_BYTES: usize = 256 << 20;

fn with_deep_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("check".to_owned())
            .stack_size(CHECK_STACK_BYTES)
            .spawn_scoped(s, work)
            .expect("spawning the check thread");
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
///
/// Each document is read as kubectl and Helm send it ([`kyaml`]: YAML 1.1 scalars, JSON
/// as JSON), and each workload as the apiserver would store it ([`stored`]: unknown fields
/// dropped and reported, a wrong type refused).
pub fn check_text(
    policy: &Policy,
    file: &str,
    text: &str,
    namespace: &str,
    result: &mut CheckResult,
) {
    for (line, doc) in documents::documents(text) {
        // `yaml.NewYAMLOrJSONDecoder`: a document that starts like JSON is decoded as JSON.
        let json = doc
            .trim_start()
            .starts_with('{')
            .then(|| serde_json::from_str::<Value>(&doc).ok())
            .flatten();
        let value = match json.map_or_else(|| kyaml::read(&doc), Ok) {
            Ok(v) => v,
            Err(e) => {
                result.errors.push(InputError {
                    file: Some(file.to_owned()),
                    line: Some(line + e.line.max(1) - 1),
                    message: format!("malformed YAML: {}", e.message),
                });
                continue;
            }
        };
        let positions = std::cell::OnceCell::new();
        let site = Site {
            file,
            line,
            doc: &doc,
            base: String::new(),
            positions: &positions,
        };
        check_value(policy, &site, value, namespace, result);
    }
}

fn check_value(
    policy: &Policy,
    site: &Site,
    mut value: Value,
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
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        if let Some(Value::Array(items)) = value.get_mut("items").map(Value::take) {
            for (i, item) in items.into_iter().enumerate() {
                check_value(
                    policy,
                    &site.inner(&format!("items[{i}]")),
                    item,
                    namespace,
                    result,
                );
            }
        }
        return;
    }
    if kind == "AdmissionReview" {
        check_review(policy, site, &value, namespace, result);
        return;
    }
    if !POD_KINDS.contains(&kind.as_str()) {
        // Named in the summary: a file of Services and ConfigMaps says so.
        if !kind.is_empty() && api_version.is_some_and(|v| !v.is_empty()) {
            let name = value
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("<unnamed>");
            result.skipped.push(SkippedDocument {
                kind: kind.clone(),
                name: name.to_owned(),
                file: site.file.to_owned(),
                line: site.line,
            });
        }
        return;
    }
    check_workload(policy, site, &kind, value, namespace, result);
}

/// A saved AdmissionReview, through the webhook's own decoder so that it gets the webhook's
/// verdict.
fn check_review(
    policy: &Policy,
    site: &Site,
    value: &Value,
    namespace: &str,
    result: &mut CheckResult,
) {
    let json = serde_json::to_vec(value).map_err(|e| e.to_string());
    let decoded = json
        .as_deref()
        .map_err(String::clone)
        .and_then(|json| admission::decode(json).map_err(|e| e.to_string()));
    match decoded {
        Ok(req) => {
            let verdict = req.judge(policy);
            let (object, at) = match (&req.object, &req.old_object) {
                (Some(o), _) => (Some(o), "request.object"),
                (None, o) => (o.as_ref(), "request.oldObject"),
            };
            let ns = req.namespace.as_deref().unwrap_or(namespace);
            let name = req.name.as_deref();
            push(
                result,
                &site.inner(at),
                &req.kind.kind,
                ns,
                name,
                object,
                verdict,
                Vec::new(),
            );
        }
        Err(e) => result.errors.push(site.error(e)),
    }
}

/// A workload of one of [`POD_KINDS`], judged as the apiserver would store it.
fn check_workload(
    policy: &Policy,
    site: &Site,
    kind: &str,
    mut value: Value,
    namespace: &str,
    result: &mut CheckResult,
) {
    // What the apiserver would store: unknown fields dropped (and reported), or the whole
    // object refused.
    let unknown_fields = match stored::decode(&mut value) {
        Ok(d) => d.map(|d| d.unknown_fields).unwrap_or_default(),
        Err(refused) => {
            result.errors.push(site.error(format!(
                "{kind}: the apiserver refuses this object (it cannot decode it): {refused}"
            )));
            return;
        }
    };
    // By reference: the object borrows its strings from `value`.
    match Object::deserialize(&value) {
        Ok(obj) => {
            let ns = obj.metadata.namespace.as_deref().unwrap_or(namespace);
            let verdict = verdict::evaluate(policy, &Request::create(kind, ns, &obj));
            push(
                result,
                site,
                kind,
                ns,
                None,
                Some(&obj),
                verdict,
                unknown_fields,
            );
        }
        Err(e) => result.errors.push(site.error(format!("{kind}: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    result: &mut CheckResult,
    site: &Site,
    kind: &str,
    namespace: &str,
    name: Option<&str>,
    obj: Option<&Object>,
    verdict: Verdict,
    unknown_fields: Vec<String>,
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
    let violations = verdict
        .findings
        .iter()
        .map(|f| {
            let mut v = ViolationReport::from(f);
            if let Some(p) = site.locate(&f.path) {
                v.line = Some(p.line);
                v.column = Some(p.column);
            }
            v
        })
        .collect();
    result.objects.push(ObjectReport {
        file: site.file.to_owned(),
        line: site.line,
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name,
        allowed: verdict.allowed,
        skipped: match verdict.skipped {
            Some(Skipped::ExemptNamespace) => Some("exempt namespace"),
            _ => None,
        },
        violations,
        unknown_fields: unknown_fields
            .into_iter()
            .map(|path| {
                let p = site.locate(&path);
                UnknownField {
                    line: p.map(|p| p.line),
                    column: p.map(|p| p.column),
                    path,
                }
            })
            .collect(),
    });
}

/// `check` of these (file name, text) inputs under the default policy, for the renderers'
/// tests.
#[cfg(test)]
pub(crate) fn checked(inputs: &[(&str, &str)]) -> CheckResult {
    let mut r = CheckResult::default();
    for (file, text) in inputs {
        check_text(&Policy::default(), file, text, "default", &mut r);
    }
    r
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
