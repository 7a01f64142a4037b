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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationReport {
    pub rule: String,
    pub action: String,
    pub path: String,
    /// What is wrong and how to fix it (the rule and path have their own fields).
    pub message: String,
}

impl From<&Finding> for ViolationReport {
    fn from(f: &Finding) -> Self {
        ViolationReport {
            rule: f.rule.name().to_owned(),
            action: f.action.as_str().to_owned(),
            path: f.path.clone(),
            message: format!("{}{}", f.message, f.note()),
        }
    }
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
            writeln!(out, "  {:<5} {v}", v.action)?;
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
        "{} objects checked: {denied} denied, {with_findings} allowed with findings, {} clean{exempt_note}; {} input errors",
        result.objects.len(),
        result.objects.len() - denied - with_findings - exempt,
        result.errors.len()
    )
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
