//! Fixture tests: every `tests/fixtures/*.yaml` declares its expected verdict on its first
//! line (`# expect: deny rule-a rule-b`); each runs through the engine and through the
//! `volguard check` binary, which must agree.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

struct Expect {
    outcome: String,
    rules: BTreeSet<String>,
}

fn fixtures() -> Vec<(PathBuf, String, Expect)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        let spec = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{}: no expect line", path.display()));
        let mut words = spec.split_whitespace();
        let outcome = words.next().unwrap().to_owned();
        assert!(
            ["allow", "warn", "deny"].contains(&outcome.as_str()),
            "{}",
            path.display()
        );
        let rules = words.map(str::to_owned).collect();
        out.push((path, text, Expect { outcome, rules }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 15, "fixtures missing");
    out
}

fn outcome(allowed: bool, actions: &[String]) -> &'static str {
    if !allowed {
        "deny"
    } else if actions.iter().any(|a| a == "warn") {
        "warn"
    } else {
        "allow"
    }
}

#[test]
fn fixtures_through_the_engine() {
    let policy = volguard::Policy::default();
    for (path, text, want) in fixtures() {
        let mut result = volguard::cli::check::report::CheckResult::default();
        volguard::cli::check::check_text(
            &policy,
            &path.display().to_string(),
            &text,
            "default",
            &mut result,
        );
        assert!(
            result.errors.is_empty(),
            "{}: {:?}",
            path.display(),
            result.errors
        );
        assert_eq!(result.objects.len(), 1, "{}", path.display());
        let o = &result.objects[0];
        let actions: Vec<String> = o.violations.iter().map(|v| v.action.clone()).collect();
        let rules: BTreeSet<String> = o.violations.iter().map(|v| v.rule.clone()).collect();
        assert_eq!(
            outcome(o.allowed, &actions),
            want.outcome,
            "{}",
            path.display()
        );
        assert_eq!(rules, want.rules, "{}", path.display());
        for v in &o.violations {
            // The message does not repeat the rule and path; the webhook's line does.
            assert!(
                !v.message.starts_with('[') && !v.message.contains(&v.path),
                "{}",
                v.message
            );
        }
    }
}

#[test]
fn fixtures_through_the_check_binary() {
    for (path, _, want) in fixtures() {
        let out = Command::new(env!("CARGO_BIN_EXE_volguard"))
            .args(["check", "-o", "json", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let o = &report[0];
        let actions: Vec<String> = o["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["action"].as_str().unwrap().to_owned())
            .collect();
        let rules: BTreeSet<String> = o["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["rule"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            outcome(o["allowed"].as_bool().unwrap(), &actions),
            want.outcome,
            "{}",
            path.display()
        );
        assert_eq!(rules, want.rules, "{}", path.display());
        let code = if want.outcome == "deny" { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{}", path.display());
        assert_eq!(o["file"], path.display().to_string());
    }
}
