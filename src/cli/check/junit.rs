//! `--output junit`: one test case per object checked (grouped in a suite per file), a
//! `<failure>` per denying violation, warnings in `<system-out>`, unreadable input as
//! `<error>` cases. CI systems (GitLab, Jenkins, Azure DevOps) show it as a test report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use super::report::{
    CheckResult, ObjectReport, UNKNOWN_FIELD, UNKNOWN_FIELD_MESSAGE, ViolationReport,
};
use super::sarif::bare_message;

/// XML-escapes text and attribute values (and drops characters XML 1.0 cannot carry).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `file:line:column: ` of a finding placed in its file (a test case's text is often shown
/// on its own), else nothing.
fn at(o: &ObjectReport, v: &ViolationReport) -> String {
    match (v.line, v.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}: ", o.file),
        _ => String::new(),
    }
}

fn case(o: &ObjectReport, out: &mut String) {
    let name = format!(
        "{}/{}/{} ({}:{})",
        o.kind, o.namespace, o.name, o.file, o.line
    );
    // `file` and `line` (the object's) as pytest writes them; each finding's own line and
    // column lead its text.
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\"",
        esc(&o.kind),
        esc(&name),
        esc(&o.file),
        o.line
    );
    let denials: Vec<_> = o.violations.iter().filter(|v| v.action == "deny").collect();
    let others: Vec<_> = o.violations.iter().filter(|v| v.action != "deny").collect();
    if denials.is_empty() && others.is_empty() && o.unknown_fields.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    for v in denials {
        let _ = writeln!(
            out,
            "      <failure type=\"{}\" message=\"{}\">{}{}: {}</failure>",
            esc(&v.rule),
            esc(bare_message(v)),
            esc(&at(o, v)),
            esc(&v.path),
            esc(bare_message(v))
        );
    }
    if !others.is_empty() || !o.unknown_fields.is_empty() {
        out.push_str("      <system-out>");
        for u in &o.unknown_fields {
            let _ = writeln!(
                out,
                "note {}[{UNKNOWN_FIELD}] {}: {}",
                esc(&u.at()),
                esc(&u.path),
                esc(UNKNOWN_FIELD_MESSAGE)
            );
        }
        for v in others {
            let _ = writeln!(
                out,
                "{} {}[{}] {}: {}",
                esc(&v.action),
                esc(&at(o, v)),
                esc(&v.rule),
                esc(&v.path),
                esc(bare_message(v))
            );
        }
        out.push_str("</system-out>\n");
    }
    out.push_str("    </testcase>\n");
}

pub fn document(result: &CheckResult) -> String {
    let mut by_file: BTreeMap<&str, Vec<&ObjectReport>> = BTreeMap::new();
    for o in &result.objects {
        by_file.entry(o.file.as_str()).or_default().push(o);
    }
    let mut errors_by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &result.errors {
        errors_by_file
            .entry(e.file.as_deref().unwrap_or("<input>"))
            .or_default()
            .push(e.to_string());
        by_file
            .entry(e.file.as_deref().unwrap_or("<input>"))
            .or_default();
    }
    let tests = result.objects.len() + result.errors.len();
    let failures = result.objects.iter().filter(|o| !o.allowed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"volguard check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">",
        result.errors.len()
    );
    for (file, objects) in &by_file {
        let errors = errors_by_file.get(file).map_or(&[][..], Vec::as_slice);
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\">",
            esc(file),
            objects.len() + errors.len(),
            objects.iter().filter(|o| !o.allowed).count(),
            errors.len()
        );
        for o in objects {
            case(o, &mut out);
        }
        for e in errors {
            let _ = writeln!(
                out,
                "    <testcase classname=\"input\" name=\"{}\">\n      <error type=\"input\" message=\"{}\"/>\n    </testcase>",
                esc(file),
                esc(e)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

pub fn write(result: &CheckResult, out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(document(result).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::checked;

    #[test]
    fn one_case_per_object_and_a_failure_per_denial() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: \"a<b\"}\nspec:\n  containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}, {name: x, mountPath: /x}]}]\n  volumes: [{name: t, emptyDir: {}}, {name: u, emptyDir: {sizeLimit: 1Gi}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers: [{name: c}]\n";
        let r = checked(&[("p.yaml", text), ("bad.yaml", "kind: [\n")]);
        let xml = document(&r);
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
        assert!(xml.contains("a&lt;b"), "{xml}");
        assert!(
            xml.contains("<system-out>warn p.yaml:6:38: [volume-unused]"),
            "{xml}"
        );
        assert!(
            xml.contains(">p.yaml:5:67: spec.containers[0].volumeMounts[1]: "),
            "{xml}"
        );
        assert!(xml.contains("<error type=\"input\""), "{xml}");
    }
}
