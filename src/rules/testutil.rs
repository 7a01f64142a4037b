//! Helpers for the rules' table tests: run one rule over a YAML Pod (or workload).

use crate::model::Object;
use crate::policy::Policy;
use crate::rules::{PodCtx, RULES, RuleId, Violation};
use crate::workload;

/// Runs `rule` alone over `object_yaml` (a Pod or any workload) under `policy_yaml`,
/// with the rule switched on whatever its default action.
pub fn run_with(rule: RuleId, object_yaml: &str, policy_yaml: &str) -> Vec<Violation> {
    let obj: Object = serde_yaml_ng::from_str(object_yaml).expect("test object parses");
    let policy = Policy::parse(policy_yaml, "test-policy.yaml").expect("test policy parses");
    let rules = policy.rules_for("default");
    let view = workload::pod_view(&obj.kind, &obj).expect("object carries a Pod spec");
    let ctx = PodCtx::new(view.prefix, view.spec, view.claim_templates);
    let mut out = Vec::new();
    let mut cfg = rules.get(rule).clone();
    if cfg.action == crate::policy::Action::Off {
        cfg.action = crate::policy::Action::Deny;
    }
    (RULES[rule as usize].check)(&ctx, &cfg, &rules, &mut out);
    for v in &out {
        assert_eq!(v.rule, rule);
        assert!(v.to_string().len() < 256, "message too long: {v}");
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
