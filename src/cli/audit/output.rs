//! `audit` output: the objects as `check` reports them, plus a summary by rule and by
//! namespace.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::judge::Audit;
use crate::cli::check::report::ObjectReport;

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub objects: usize,
    pub denied: usize,
    pub allowed_with_findings: usize,
    pub clean: usize,
    /// Objects in a namespace the policy exempts (counted as clean, as `check` does).
    pub exempt: usize,
    /// Pods, ReplicaSets and Jobs reported at the workload that controls them.
    pub reported_at_owner: usize,
    pub errors: usize,
    pub by_rule: BTreeMap<String, RuleSummary>,
    pub by_namespace: BTreeMap<String, NamespaceSummary>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSummary {
    /// Objects with at least one finding of the rule.
    pub objects: usize,
    pub deny: usize,
    pub warn: usize,
    pub audit: usize,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSummary {
    pub objects: usize,
    pub denied: usize,
    pub allowed_with_findings: usize,
    pub clean: usize,
    pub exempt: usize,
}

pub fn summary(audit: &Audit) -> Summary {
    let mut s = Summary {
        objects: audit.result.objects.len(),
        reported_at_owner: audit.at_owner,
        errors: audit.result.errors.len(),
        ..Default::default()
    };
    for o in &audit.result.objects {
        let ns = s.by_namespace.entry(o.namespace.clone()).or_default();
        ns.objects += 1;
        if o.skipped.is_some() {
            ns.exempt += 1;
            s.exempt += 1;
        }
        if !o.allowed {
            ns.denied += 1;
            s.denied += 1;
        } else if !o.violations.is_empty() {
            ns.allowed_with_findings += 1;
            s.allowed_with_findings += 1;
        } else {
            ns.clean += 1;
            s.clean += 1;
        }
        let mut seen: Vec<&str> = Vec::new();
        for v in &o.violations {
            let r = s.by_rule.entry(v.rule.clone()).or_default();
            match v.action.as_str() {
                "deny" => r.deny += 1,
                "warn" => r.warn += 1,
                _ => r.audit += 1,
            }
            if !seen.contains(&v.rule.as_str()) {
                seen.push(&v.rule);
                r.objects += 1;
            }
        }
    }
    s
}

fn object_line(o: &ObjectReport) -> String {
    let verdict = if o.allowed {
        "allowed with findings"
    } else {
        "denied"
    };
    format!("{}/{}/{}: {verdict}", o.namespace, o.kind, o.name)
}

/// The human report: objects with findings (as `check` prints them, named
/// `namespace/Kind/name`), the errors, the two summaries and the totals line.
pub fn write_text(audit: &Audit, out: &mut impl Write) -> std::io::Result<()> {
    let result = &audit.result;
    for o in &result.objects {
        if o.violations.is_empty() {
            continue;
        }
        writeln!(out, "{}", object_line(o))?;
        for v in &result_violations(o) {
            writeln!(out, "  {:<5} {}", v.0, v.1)?;
        }
    }
    for e in &result.errors {
        writeln!(out, "error: {e}")?;
    }
    for n in &audit.notes {
        writeln!(out, "note: {n}")?;
    }
    let s = summary(audit);
    if !s.by_rule.is_empty() {
        writeln!(out)?;
        let w = s.by_rule.keys().map(String::len).max().unwrap_or(0).max(4);
        writeln!(
            out,
            "{:<w$}  {:>7}  {:>4}  {:>4}  {:>5}",
            "RULE", "OBJECTS", "DENY", "WARN", "AUDIT"
        )?;
        for (rule, r) in &s.by_rule {
            writeln!(
                out,
                "{rule:<w$}  {:>7}  {:>4}  {:>4}  {:>5}",
                r.objects, r.deny, r.warn, r.audit
            )?;
        }
    }
    if !s.by_namespace.is_empty() {
        writeln!(out)?;
        let w = s
            .by_namespace
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(9);
        writeln!(
            out,
            "{:<w$}  {:>7}  {:>6}  {:>8}  {:>5}  {:>6}",
            "NAMESPACE", "OBJECTS", "DENIED", "FINDINGS", "CLEAN", "EXEMPT"
        )?;
        for (ns, n) in &s.by_namespace {
            writeln!(
                out,
                "{ns:<w$}  {:>7}  {:>6}  {:>8}  {:>5}  {:>6}",
                n.objects, n.denied, n.allowed_with_findings, n.clean, n.exempt
            )?;
        }
        writeln!(out)?;
    }
    write!(
        out,
        "{} objects checked: {} denied, {} allowed with findings, {} clean; {} reported at their owner; {} errors",
        s.objects, s.denied, s.allowed_with_findings, s.clean, s.reported_at_owner, s.errors
    )?;
    if audit.reports_written > 0 {
        write!(out, "; {} PolicyReports applied", audit.reports_written)?;
    }
    if !audit.namespaces_gone.is_empty() {
        write!(out, "; {} namespaces gone", audit.namespaces_gone.len())?;
    }
    writeln!(out)
}

/// Each finding as `check` prints it: its action and `[rule] path: message`.
fn result_violations(o: &ObjectReport) -> Vec<(&str, String)> {
    o.violations
        .iter()
        .map(|v| (v.action.as_str(), v.to_string()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    /// Exactly `check --output json`'s array (file `cluster`, line 0).
    objects: &'a [ObjectReport],
    summary: Summary,
    errors: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    /// With `--report`: reports applied and namespaces skipped because they went away.
    #[serde(skip_serializing_if = "Option::is_none")]
    reports: Option<ReportsJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportsJson<'a> {
    written: usize,
    namespaces_gone: &'a std::collections::BTreeSet<String>,
}

/// `--output json`: `{objects, summary, errors}`; the errors also go to stderr, as with
/// `check`.
pub fn write_json(audit: &Audit, out: &mut impl Write) -> std::io::Result<()> {
    for e in &audit.result.errors {
        eprintln!("error: {e}");
    }
    for n in &audit.notes {
        eprintln!("note: {n}");
    }
    let report = JsonReport {
        objects: &audit.result.objects,
        summary: summary(audit),
        errors: audit.result.errors.iter().map(|e| e.to_string()).collect(),
        notes: &audit.notes,
        reports: (audit.reports_written > 0 || !audit.namespaces_gone.is_empty()).then_some(
            ReportsJson {
                written: audit.reports_written,
                namespaces_gone: &audit.namespaces_gone,
            },
        ),
    };
    serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::report::{InputError, ViolationReport};

    fn object(ns: &str, name: &str, allowed: bool, rules: &[(&str, &str)]) -> ObjectReport {
        ObjectReport {
            file: "cluster".into(),
            line: 0,
            kind: "Pod".into(),
            namespace: ns.into(),
            name: name.into(),
            allowed,
            skipped: None,
            violations: rules
                .iter()
                .map(|(rule, action)| ViolationReport {
                    rule: (*rule).into(),
                    action: (*action).into(),
                    path: "spec.volumes[0]".into(),
                    line: None,
                    column: None,
                    message: format!("[{rule}] spec.volumes[0]: m"),
                })
                .collect(),
            unknown_fields: Vec::new(),
        }
    }

    #[test]
    fn summary_by_rule_and_namespace() {
        let mut a = Audit::default();
        a.result.objects = vec![
            object(
                "a",
                "p1",
                false,
                &[("r1", "deny"), ("r1", "deny"), ("r2", "warn")],
            ),
            object("a", "p2", true, &[("r2", "warn")]),
            object("b", "p3", true, &[]),
            object("b", "p4", true, &[("r3", "audit")]),
        ];
        a.at_owner = 5;
        a.result.errors.push(InputError {
            file: Some("statefulsets.apps".into()),
            line: None,
            message: "cannot list: Forbidden (403): no".into(),
        });
        let s = summary(&a);
        assert_eq!(
            (
                s.objects,
                s.denied,
                s.allowed_with_findings,
                s.clean,
                s.errors
            ),
            (4, 1, 2, 1, 1)
        );
        let r1 = &s.by_rule["r1"];
        assert_eq!((r1.objects, r1.deny, r1.warn), (1, 2, 0));
        let r2 = &s.by_rule["r2"];
        assert_eq!((r2.objects, r2.deny, r2.warn), (2, 0, 2));
        assert_eq!(s.by_rule["r3"].audit, 1);
        assert_eq!(s.by_namespace["a"].denied, 1);
        assert_eq!(s.by_namespace["b"].clean, 1);
        let mut text = Vec::new();
        write_text(&a, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with("a/Pod/p1: denied\n  deny  [r1]"), "{text}");
        assert!(text.contains("error: statefulsets.apps: cannot list: Forbidden (403): no"));
        assert!(
            text.contains("\nRULE  OBJECTS  DENY  WARN  AUDIT\nr1          1     2     0      0\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "4 objects checked: 1 denied, 2 allowed with findings, 1 clean; 5 reported at their owner; 1 errors\n"
        ));
        let mut json = Vec::new();
        write_json(&a, &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["objects"][0]["violations"][0]["rule"], "r1");
        assert_eq!(v["summary"]["byNamespace"]["b"]["clean"], 1);
        assert_eq!(v["summary"]["reportedAtOwner"], 5);
        assert_eq!(
            v["errors"][0],
            "statefulsets.apps: cannot list: Forbidden (403): no"
        );
    }
}
