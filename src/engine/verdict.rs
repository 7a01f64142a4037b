//! From violations to a decision: actions, mode, exemptions and UPDATE semantics.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use crate::engine::model::{Meta, Object};
use crate::engine::policy::Policy;
use crate::engine::rules::{self, Action, PodCtx, RuleId, Violation};
use crate::engine::workload;

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The admission.k8s.io spelling: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What the engine is asked to judge.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The object's kind (from the AdmissionReview's `kind`, or the manifest's).
    pub kind: &'a str,
    pub namespace: &'a str,
    pub operation: Operation,
    pub object: &'a Object,
    /// The object before an UPDATE.
    pub old_object: Option<&'a Object>,
}

/// A violation with the action the policy gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub action: Action,
    pub path: String,
    pub message: String,
    /// On UPDATE: the same rule and path already failed in `oldObject` (never denies).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preexisting: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)?;
        if self.preexisting {
            f.write_str(rules::PREEXISTING_SUFFIX)?;
        }
        Ok(())
    }
}

/// Why an object was not checked at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Not a kind that carries a Pod spec, or an operation we do not judge.
    NotApplicable,
    /// The namespace matches `exemptNamespaces`.
    ExemptNamespace,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Sorted by path (numbers in natural order), then rule. `off` findings are never present.
    pub findings: Vec<Finding>,
    pub skipped: Option<Skipped>,
}

impl Verdict {
    /// Allowed without looking: a kind, subresource or operation the engine does not judge.
    pub fn not_applicable() -> Self {
        Verdict::skip(Skipped::NotApplicable)
    }

    fn skip(why: Skipped) -> Self {
        Verdict {
            allowed: true,
            findings: Vec::new(),
            skipped: Some(why),
        }
    }

    pub fn with_action(&self, action: Action) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.action == action)
    }

    /// `allow`, `warn`, `audit` or `deny`: the strongest action among the findings.
    pub fn outcome(&self) -> &'static str {
        match self.findings.iter().map(|f| f.action).max() {
            _ if !self.allowed => "deny",
            Some(Action::Warn) => "warn",
            Some(Action::Audit) => "audit",
            _ => "allow",
        }
    }
}

/// Evaluates one object against the policy. Pure: no I/O, no clock.
pub fn evaluate(policy: &Policy, req: &Request<'_>) -> Verdict {
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return Verdict::not_applicable();
    }
    let Some(view) = workload::pod_view(req.kind, req.object) else {
        return Verdict::not_applicable();
    };
    if policy.is_exempt_namespace(req.namespace) {
        return Verdict::skip(Skipped::ExemptNamespace);
    }
    let rules = policy.rules_for(req.namespace);
    let exempt: Vec<&str> = if policy.allow_exemption_annotation {
        exempted_rules(&req.object.metadata, view.template_meta)
    } else {
        Vec::new()
    };
    let skip = |id: RuleId| exempt.iter().any(|e| *e == "*" || *e == id.name());

    let mut violations = Vec::new();
    let ctx = PodCtx::new(view.prefix, view.spec, view.claim_templates);
    rules::run_all(&ctx, &rules, &skip, &mut violations);

    let old: HashSet<(RuleId, String)> = match (req.operation, req.old_object) {
        (Operation::Update, Some(old)) if !violations.is_empty() => {
            let mut old_violations = Vec::new();
            if let Some(old_view) = workload::pod_view(req.kind, old) {
                let old_ctx = PodCtx::new(old_view.prefix, old_view.spec, old_view.claim_templates);
                rules::run_all(&old_ctx, &rules, &skip, &mut old_violations);
            }
            old_violations
                .into_iter()
                .map(|v| (v.rule, v.path))
                .collect()
        }
        _ => HashSet::new(),
    };

    let mut findings: Vec<Finding> = violations
        .into_iter()
        .map(|v: Violation| {
            let preexisting = old.contains(&(v.rule, v.path.clone()));
            let mut action = policy.mode.apply(rules.get(v.rule).action);
            if preexisting && action == Action::Deny {
                action = Action::Warn;
            }
            Finding {
                rule: v.rule,
                action,
                path: v.path,
                message: v.message,
                preexisting,
            }
        })
        .collect();
    findings.sort_by(|a, b| natural_cmp(&a.path, &b.path).then(a.rule.cmp(&b.rule)));
    let allowed = !findings.iter().any(|f| f.action == Action::Deny);
    Verdict {
        allowed,
        findings,
        skipped: None,
    }
}

/// Rule names listed in `volguard.io/exempt` on the object and on its Pod template.
fn exempted_rules<'a>(meta: &'a Meta, template: Option<&'a Meta>) -> Vec<&'a str> {
    [Some(meta), template]
        .into_iter()
        .flatten()
        .filter_map(|m| m.annotations.0.as_deref())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Orders `volumes[10]` after `volumes[9]`: digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(yaml: &str) -> Object {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn eval(policy: &str, ns: &str, op: Operation, new: &Object, old: Option<&Object>) -> Verdict {
        let p = Policy::parse(policy, "p.yaml").unwrap();
        evaluate(
            &p,
            &Request {
                kind: &new.kind,
                namespace: ns,
                operation: op,
                object: new,
                old_object: old,
            },
        )
    }

    const SEED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: seed}
spec:
  containers:
  - name: writer
    image: busybox
    volumeMounts: [{name: temp-volume, mountPath: /temp}]
  - name: reader
    image: busybox
    volumeMounts: [{name: temp-volume, mountPath: /storages/files}]
  volumes:
  - name: temp-volume
    emptyDir: {}
"#;

    #[test]
    fn seed_is_denied_then_allowed_with_a_size_limit() {
        let v = eval("{}", "default", Operation::Create, &obj(SEED), None);
        assert!(!v.allowed);
        assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
        assert_eq!(v.findings[0].rule, RuleId::EmptydirSizeLimitRequired);
        assert!(v.findings[0].path.starts_with("spec.volumes[0]"));
        let fixed = SEED.replace("emptyDir: {}", "emptyDir: {sizeLimit: 500Mi}");
        let v = eval("{}", "default", Operation::Create, &obj(&fixed), None);
        assert!(v.allowed && v.findings.is_empty(), "{:?}", v.findings);
    }

    #[test]
    fn modes_downgrade() {
        let v = eval("mode: warn", "default", Operation::Create, &obj(SEED), None);
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Warn);
        assert_eq!(v.outcome(), "warn");
        let v = eval(
            "mode: audit",
            "default",
            Operation::Create,
            &obj(SEED),
            None,
        );
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Audit);
        assert_eq!(v.outcome(), "audit");
    }

    #[test]
    fn exempt_namespaces_use_globs() {
        let p = "exemptNamespaces: [\"team-?\", \"sandbox-*\"]";
        for ns in ["team-a", "sandbox-42"] {
            let v = eval(p, ns, Operation::Create, &obj(SEED), None);
            assert!(v.allowed && v.findings.is_empty());
            assert_eq!(v.skipped, Some(Skipped::ExemptNamespace));
        }
        assert!(!eval(p, "team-ab", Operation::Create, &obj(SEED), None).allowed);
        assert!(!eval(p, "kube-system", Operation::Create, &obj(SEED), None).allowed);
        assert!(eval("{}", "kube-system", Operation::Create, &obj(SEED), None).allowed);
    }

    #[test]
    fn exemption_annotation_only_when_allowed() {
        let annotated = SEED.replace(
            "metadata: {name: seed}",
            "metadata: {name: seed, annotations: {volguard.io/exempt: \"emptydir-size-limit-required, volume-unused\"}}",
        );
        assert!(!eval("{}", "default", Operation::Create, &obj(&annotated), None).allowed);
        let v = eval(
            "allowExemptionAnnotation: true",
            "default",
            Operation::Create,
            &obj(&annotated),
            None,
        );
        assert!(v.allowed && v.findings.is_empty());
    }

    #[test]
    fn exemption_annotation_on_pod_template() {
        let dep = r#"
kind: Deployment
metadata: {name: d}
spec:
  template:
    metadata: {annotations: {volguard.io/exempt: "*"}}
    spec:
      containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}]
      volumes: [{name: t, emptyDir: {}}]
"#;
        assert!(!eval("{}", "default", Operation::Create, &obj(dep), None).allowed);
        assert!(
            eval(
                "allowExemptionAnnotation: true",
                "default",
                Operation::Create,
                &obj(dep),
                None
            )
            .allowed
        );
    }

    #[test]
    fn update_with_preexisting_violation_is_warned_not_denied() {
        let old = obj(SEED);
        let relabelled = obj(&SEED.replace(
            "metadata: {name: seed}",
            "metadata: {name: seed, labels: {a: b}}",
        ));
        let v = eval("{}", "default", Operation::Update, &relabelled, Some(&old));
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Warn);
        assert!(v.findings[0].preexisting);
        assert!(
            v.findings[0]
                .to_string()
                .ends_with("(present before this update)")
        );
        // A new violation introduced by the update still denies.
        let worse = obj(&SEED.replace("mountPath: /temp", "mountPath: /etc"));
        let v = eval("{}", "default", Operation::Update, &worse, Some(&old));
        assert!(!v.allowed);
        let deny: Vec<_> = v.with_action(Action::Deny).map(|f| f.rule).collect();
        assert_eq!(deny, [RuleId::MountPathReserved]);
    }

    #[test]
    fn update_without_old_object_is_judged_like_create() {
        assert!(!eval("{}", "default", Operation::Update, &obj(SEED), None).allowed);
    }

    #[test]
    fn delete_and_other_kinds_are_not_applicable() {
        let v = eval("{}", "default", Operation::Delete, &obj(SEED), None);
        assert_eq!(v.skipped, Some(Skipped::NotApplicable));
        let svc = obj("kind: Service\nspec: {volumes: [{name: x, emptyDir: {}}]}");
        let v = eval("{}", "default", Operation::Create, &svc, None);
        assert!(v.allowed && v.skipped == Some(Skipped::NotApplicable));
    }

    #[test]
    fn namespace_overrides_apply() {
        let p = "rules:\n  emptydir-size-limit-max: {maxDisk: 1Gi}\nnamespaceOverrides:\n  - namespaces: [\"batch-*\"]\n    rules:\n      emptydir-size-limit-max: {maxDisk: 50Gi}\n";
        let big = obj(&SEED.replace("emptyDir: {}", "emptyDir: {sizeLimit: 20Gi}"));
        assert!(!eval(p, "web", Operation::Create, &big, None).allowed);
        assert!(eval(p, "batch-1", Operation::Create, &big, None).allowed);
    }

    #[test]
    fn findings_sorted_naturally() {
        let mut vols = String::new();
        for i in 0..12 {
            vols.push_str(&format!("  - {{name: v{i}, emptyDir: {{}}}}\n"));
        }
        let pod = obj(&format!(
            "kind: Pod\nspec:\n  containers: [{{name: c}}]\n  volumes:\n{vols}"
        ));
        let v = eval("{}", "default", Operation::Create, &pod, None);
        let required: Vec<_> = v
            .findings
            .iter()
            .filter(|f| f.rule == RuleId::EmptydirSizeLimitRequired)
            .map(|f| f.path.clone())
            .collect();
        let want: Vec<_> = (0..12)
            .map(|i| format!("spec.volumes[{i}].emptyDir"))
            .collect();
        assert_eq!(required, want);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a[2]", "a[10]"), Ordering::Less);
        assert_eq!(natural_cmp("a[10]", "a[10]"), Ordering::Equal);
        assert_eq!(natural_cmp("a[010]", "a[9]"), Ordering::Greater);
        assert_eq!(natural_cmp("b", "a"), Ordering::Greater);
    }
}
