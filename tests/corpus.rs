//! Real-world corpus regression test (issue 13): every manifest under `tests/corpus/`
//! (written by other projects, see `tests/corpus/SOURCES.md`) is checked with the
//! embedded default policy. The objects denied must be exactly those listed in
//! `tests/corpus/expected-denials.txt` (`file kind/name rule,rule`, one line per denied
//! object), each of which is judged in `tests/corpus/VERDICTS.md`. A new denial of a
//! real-world manifest therefore fails here and must be reviewed (and judged in
//! VERDICTS.md) before it is added to the list; a denial that disappears fails too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use volguard::cli::check::check_paths;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `file kind/name rule,rule` for every denied object, `file` relative to tests/corpus/.
fn actual_denials() -> (Vec<String>, usize, BTreeSet<String>) {
    let dir = corpus_dir();
    let result = check_paths(
        &volguard::Policy::default(),
        std::slice::from_ref(&dir),
        "default",
    );
    let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "input errors in the corpus:\n{}",
        errors.join("\n")
    );
    let prefix = format!("{}/", dir.display());
    let mut sources = BTreeSet::new();
    let mut denied = Vec::new();
    for o in &result.objects {
        let file = o.file.strip_prefix(&prefix).unwrap_or_else(|| {
            panic!("{} is not under {prefix}", o.file);
        });
        sources.insert(file.split('/').next().unwrap_or_default().to_owned());
        if o.allowed {
            continue;
        }
        let rules: BTreeSet<&str> = o
            .violations
            .iter()
            .filter(|v| v.action == "deny")
            .map(|v| v.rule.as_str())
            .collect();
        assert!(
            !rules.is_empty(),
            "{file} {}/{}: denied without a deny finding",
            o.kind,
            o.name
        );
        let rules: Vec<&str> = rules.into_iter().collect();
        denied.push(format!("{file} {}/{} {}", o.kind, o.name, rules.join(",")));
    }
    denied.sort();
    (denied, result.objects.len(), sources)
}

fn expected_denials() -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join("expected-denials.txt")).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn corpus_denials_are_exactly_the_reviewed_ones() {
    let (actual, objects, sources) = actual_denials();
    // Every source directory of SOURCES.md contributed objects: the walk really read the corpus.
    let all = [
        "gatekeeper-library",
        "gke-samples",
        "helm",
        "istio",
        "kubernetes-docs",
        "kyverno-policies",
        "linkerd",
        // Issue 18: operators, ML serving, storage systems.
        "kserve",
        "kuberay",
        "longhorn",
        "prometheus-operator",
        "rook",
        "strimzi",
        "vllm-production-stack",
    ];
    for source in all {
        assert!(
            sources.contains(source),
            "no object read from tests/corpus/{source}/ ({objects} objects)"
        );
    }
    let expected = expected_denials();
    let new: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    let gone: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    assert!(
        new.is_empty() && gone.is_empty() && actual.len() == expected.len(),
        "corpus denials changed; review each against Kubernetes, judge it in tests/corpus/VERDICTS.md, \
         then update tests/corpus/expected-denials.txt\nnew denials:\n  {}\nno longer denied:\n  {}",
        new.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}
