//! What `check` found, and its text and JSON renderers.

use std::io::Write;

use serde::Serialize;

use crate::engine::verdict::Finding;

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
    /// Fields of the manifest the apiserver does not know (`spec.volumes[0].emptydir`):
    /// `kubectl apply` refuses the object, other clients have them dropped; the verdict is
    /// on the object without them (`stored::decode`).
    #[serde(rename = "unknownFields", skip_serializing_if = "Vec::is_empty")]
    pub unknown_fields: Vec<UnknownField>,
}

/// A field of the manifest the apiserver does not know, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownField {
    pub path: String,
    /// 1-based line and column of the field's key in the file, as for findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl UnknownField {
    /// `LINE:COL ` when the position is known, for the text renderers.
    pub fn at(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{l}:{c} "),
            _ => String::new(),
        }
    }
}

/// The rule-like ID under which unknown fields are reported (not a policy rule: nothing
/// turns it off, and it never changes the verdict).
pub const UNKNOWN_FIELD: &str = "unknown-field";

/// What an unknown field means, after its path.
pub const UNKNOWN_FIELD_MESSAGE: &str = "not a field of the Kubernetes schema (keys are case-sensitive): \
     kubectl apply refuses the object (field validation Strict); with Helm, client-go or \
     --validate=warn the apiserver drops the field, and the verdict here is on the object without it; \
     fix the spelling or remove it";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationReport {
    pub rule: String,
    pub action: String,
    pub path: String,
    /// Where the field at `path` is written in the file (1-based line and column, in
    /// characters): the field, or its nearest written ancestor. None for objects read from
    /// a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong and how to fix it (the rule and path have their own fields).
    pub message: String,
}

impl From<&Finding> for ViolationReport {
    fn from(f: &Finding) -> Self {
        ViolationReport {
            rule: f.rule.name().to_owned(),
            action: f.action.as_str().to_owned(),
            path: f.path.clone(),
            line: None,
            column: None,
            message: format!("{}{}", f.message, f.note()),
        }
    }
}

/// A Kubernetes object `check` does not judge (a Service, a ConfigMap...), named in the
/// summary so that "0 objects checked" never hides what the input held.
#[derive(Debug)]
pub struct SkippedDocument {
    pub kind: String,
    pub name: String,
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for ViolationReport {
    /// The line the webhook sends: `[rule] path: message`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)
    }
}

/// An input that could not be read or parsed (reported, and the rest still checked), or an
/// input that held nothing to check (no `file`). In `--output json` it is an entry
/// `{"file", "line", "error"}` of the array.
#[derive(Debug, Serialize)]
pub struct InputError {
    pub file: Option<String>,
    pub line: Option<usize>,
    #[serde(rename = "error")]
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(l)) => write!(f, "{file}:{l}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            (None, _) => write!(f, "{}", self.message),
        }
    }
}

#[derive(Debug, Default)]
pub struct CheckResult {
    pub objects: Vec<ObjectReport>,
    pub errors: Vec<InputError>,
    /// Documents (and List items) with `apiVersion` and `kind`, judged or not.
    pub kubernetes_objects: usize,
    /// Kubernetes objects of kinds volguard does not judge.
    pub skipped: Vec<SkippedDocument>,
}

/// `1 object`, `2 objects`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The summary's line about skipped documents: each named (`Kind/name (file:line)`), the
/// first ten of them, then how many more.
fn skipped_line(skipped: &[SkippedDocument]) -> String {
    const NAMED: usize = 10;
    let named: Vec<String> = skipped
        .iter()
        .take(NAMED)
        .map(|s| format!("{}/{} ({}:{})", s.kind, s.name, s.file, s.line))
        .collect();
    let more = match skipped.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "skipped {} volguard does not judge: {}{more}",
        count(skipped.len(), "document", "documents"),
        named.join(", ")
    )
}

impl CheckResult {
    /// 0: nothing denied; 1: something denied; 2: some input could not be read, or held no
    /// Kubernetes object.
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

/// Prints the human report: objects with findings, grouped, then a summary line.
pub fn write_text(result: &CheckResult, out: &mut impl Write) -> std::io::Result<()> {
    for o in &result.objects {
        if o.violations.is_empty() && o.unknown_fields.is_empty() {
            continue;
        }
        let verdict = if !o.allowed {
            "denied"
        } else if o.violations.is_empty() {
            "allowed, with unknown fields"
        } else {
            "allowed with findings"
        };
        writeln!(
            out,
            "{}/{} ({}:{}): {verdict}",
            o.kind, o.name, o.file, o.line
        )?;
        for u in &o.unknown_fields {
            writeln!(
                out,
                "  {:<5} {}[{UNKNOWN_FIELD}] {}: {UNKNOWN_FIELD_MESSAGE}",
                "note",
                u.at(),
                u.path
            )?;
        }
        for v in &o.violations {
            match (v.line, v.column) {
                (Some(l), Some(c)) => writeln!(out, "  {:<5} {l}:{c} {v}", v.action)?,
                _ => writeln!(out, "  {:<5} {v}", v.action)?,
            }
        }
    }
    for e in &result.errors {
        match e.file {
            Some(_) => writeln!(out, "error: {e}")?,
            // Not about one input (nothing to check at all): where a pipeline shows it.
            None => eprintln!("error: {e}"),
        }
    }
    let denied = result.objects.iter().filter(|o| !o.allowed).count();
    let with_findings = result
        .objects
        .iter()
        .filter(|o| o.allowed && !o.violations.is_empty())
        .count();
    // Objects in an exempt namespace were not judged: counted apart, not as clean.
    let exempt = result
        .objects
        .iter()
        .filter(|o| o.skipped.is_some())
        .count();
    let exempt_note = if exempt > 0 {
        format!(", {exempt} in exempt namespaces")
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} checked: {denied} denied, {with_findings} allowed with findings, {} clean{exempt_note}; {}",
        count(result.objects.len(), "object", "objects"),
        result.objects.len() - denied - with_findings - exempt,
        count(result.errors.len(), "input error", "input errors")
    )?;
    if !result.skipped.is_empty() {
        writeln!(out, "{}", skipped_line(&result.skipped))?;
    }
    Ok(())
}

/// One entry of the `--output json` array: an object's result or an input error.
#[derive(Serialize)]
#[serde(untagged)]
enum JsonEntry<'a> {
    Object(&'a ObjectReport),
    Error(&'a InputError),
}

/// Prints `--output json`: one array, the objects then the input errors (`{file, line,
/// error}`; also printed on stderr for a human reading the CI log).
pub fn write_json(result: &CheckResult, out: &mut impl Write) -> std::io::Result<()> {
    for e in &result.errors {
        eprintln!("error: {e}");
    }
    let entries: Vec<JsonEntry> = result
        .objects
        .iter()
        .map(JsonEntry::Object)
        .chain(result.errors.iter().map(JsonEntry::Error))
        .collect();
    serde_json::to_writer_pretty(&mut *out, &entries).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}
