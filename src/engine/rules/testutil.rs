//! Helpers for the rules' table tests: run one rule over a YAML Pod (or workload).

use crate::engine::model::Object;
use crate::engine::policy::Policy;
use crate::engine::rules::{PodCtx, RuleId, Violation, run_one};
use crate::engine::workload;

/// Runs `rule` alone over `object_yaml` (a Pod or any workload) under `policy_yaml`,
/// with the rule switched on whatever its default action.
pub fn run_with(rule: RuleId, object_yaml: &str, policy_yaml: &str) -> Vec<Violation> {
    let obj: Object = serde_yaml_ng::from_str(object_yaml).expect("test object parses");
    let policy = Policy::parse(policy_yaml, "test-policy.yaml").expect("test policy parses");
    let rules = policy.rules_for("default");
    let view = workload::pod_view(&obj.kind, &obj).expect("object carries a Pod spec");
    let ctx = PodCtx::new(view.prefix, view.spec, view.claim_templates);
    let mut out = Vec::new();
    // The rule alone, whatever its action (others keep theirs: a message may mention them).
    run_one(&ctx, rule, &rules, &mut out);
    for v in &out {
        assert_eq!(v.rule, rule);
    }
    out
}

pub fn run(rule: RuleId, object_yaml: &str) -> Vec<Violation> {
    run_with(rule, object_yaml, "{}")
}

/// The paths of the violations, for compact assertions.
pub fn paths(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.path.as_str()).collect()
}

/// A Pod with one volume `v` of `emptyDir: <empty_dir>` (YAML flow text) and one container.
pub fn empty_dir_pod(empty_dir: &str) -> String {
    format!(
        "kind: Pod\nspec:\n  volumes: [{{name: v, emptyDir: {empty_dir}}}]\n  containers: [{{name: c}}]\n"
    )
}

/// The expected violation paths of a table row: `path` when the row is flagged, else none.
pub fn flagged_at(flagged: bool, path: &'static str) -> Vec<&'static str> {
    if flagged { vec![path] } else { Vec::new() }
}
