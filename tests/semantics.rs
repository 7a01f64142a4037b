//! Semantics table: Pods and workloads whose verdict follows from what Kubernetes does with
//! them. Each row of `tests/data/semantics/cases.yaml` cites the Kubernetes function it
//! follows (see `tests/data/resources/NOTES.md` and `tests/data/kubelet/NOTES.md`), and is
//! judged twice: by `volguard::evaluate` on the decoded object (the webhook's path) and by
//! `volguard check`'s `check_text` on the manifest text. Both must give the expected verdict:
//! `allowed`, the exact set of rules with findings, and (when given) their field paths.

use std::collections::BTreeSet;

use serde::Deserialize;
use volguard::cli::check::check_text;
use volguard::cli::check::report::CheckResult;
use volguard::{Object, Policy, Request, evaluate};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// The Kubernetes function(s) the expected verdict follows, `repo/path:Function`.
    cites: String,
    #[serde(default)]
    policy: Option<String>,
    object: String,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    rules: BTreeSet<String>,
    #[serde(default)]
    paths: Option<BTreeSet<String>>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/semantics/cases.yaml");
    serde_yaml_ng::from_str(text).expect("cases.yaml parses")
}

#[test]
fn the_table_is_big_enough_and_every_row_cites_kubernetes() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} rows", cases.len());
    let mut names = BTreeSet::new();
    for c in &cases {
        assert!(
            names.insert(c.name.as_str()),
            "duplicate row name {}",
            c.name
        );
        assert!(
            c.cites.contains("k8s.io/") || c.cites.contains("kubernetes/"),
            "{}: cites no Kubernetes source",
            c.name
        );
        for r in &c.expect.rules {
            assert!(
                volguard::RuleId::from_name(r).is_some(),
                "{}: unknown rule {r}",
                c.name
            );
        }
    }
}

#[test]
fn every_row_through_the_engine_and_check() {
    let mut failures = Vec::new();
    for c in cases() {
        let policy = match &c.policy {
            Some(p) => Policy::parse(p, "row-policy.yaml").expect("row policy parses"),
            None => Policy::default(),
        };

        // The webhook's path: the decoded object through evaluate.
        let obj: Object = serde_yaml_ng::from_str(&c.object).expect("row object parses");
        let verdict = evaluate(&policy, &Request::create(&obj.kind, "default", &obj));
        assert!(verdict.skipped.is_none(), "{}: not judged", c.name);
        let engine_rules: BTreeSet<String> = verdict
            .findings
            .iter()
            .map(|f| f.rule.name().to_owned())
            .collect();
        let engine_paths: BTreeSet<String> =
            verdict.findings.iter().map(|f| f.path.clone()).collect();

        // check's path: the manifest text.
        let mut result = CheckResult::default();
        check_text(&policy, "row.yaml", &c.object, "default", &mut result);
        assert!(result.errors.is_empty(), "{}: {:?}", c.name, result.errors);
        assert_eq!(result.objects.len(), 1, "{}", c.name);
        let o = &result.objects[0];
        let check_rules: BTreeSet<String> = o.violations.iter().map(|v| v.rule.clone()).collect();
        let check_paths: BTreeSet<String> = o.violations.iter().map(|v| v.path.clone()).collect();

        assert_eq!(
            o.allowed, verdict.allowed,
            "{}: check and engine disagree",
            c.name
        );
        assert_eq!(
            check_rules, engine_rules,
            "{}: check and engine disagree",
            c.name
        );
        assert_eq!(
            check_paths, engine_paths,
            "{}: check and engine disagree",
            c.name
        );

        let findings: Vec<String> = verdict.findings.iter().map(|f| f.to_string()).collect();
        let paths_ok = c.expect.paths.as_ref().is_none_or(|p| *p == engine_paths);
        if verdict.allowed != c.expect.allowed || engine_rules != c.expect.rules || !paths_ok {
            failures.push(format!(
                "{} (follows {}):\n  want allowed={} rules={:?} paths={:?}\n  got  allowed={} findings={findings:#?}",
                c.name,
                c.cites,
                c.expect.allowed,
                c.expect.rules,
                c.expect.paths,
                verdict.allowed,
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
