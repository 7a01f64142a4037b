// Shared by the fuzz targets (included with `#[path]`/`mod`).
#![allow(dead_code)]

use std::sync::LazyLock;

use volguard::admission::{self as review, ReviewIn};
use volguard::{Object, Operation, Policy, Request, evaluate};

/// The embedded default policy.
pub static DEFAULT: LazyLock<Policy> = LazyLock::new(Policy::default);

/// Every rule on and denying, totals and exemption annotations enabled, an override: the
/// widest code path through the rules and the verdict.
pub static STRICT: LazyLock<Policy> = LazyLock::new(|| {
    Policy::parse(
        r#"
mode: enforce
exemptNamespaces: [kube-*, "sys-?"]
allowExemptionAnnotation: true
rules:
  mount-path-absolute: {action: deny}
  mount-path-nested: {action: deny}
  volume-unused: {action: deny}
  mount-readonly-source: {action: deny}
  volume-type-allowed: {action: deny}
  emptydir-size-limit-max: {action: deny, maxDisk: 1Gi, maxMemory: 100Mi, maxTotal: 2Gi}
  emptydir-within-ephemeral-storage: {action: deny}
  emptydir-ephemeral-storage-declared: {action: deny}
namespaceOverrides:
  - namespaces: ["team-*"]
    rules:
      emptydir-size-limit-max: {action: warn, maxDisk: 100Gi}
"#,
        "strict.yaml",
    )
    .expect("strict fuzz policy is valid")
});

/// A policy in `warn` mode: nothing may ever be denied under it.
pub static WARN: LazyLock<Policy> = LazyLock::new(|| {
    Policy::parse(
        "mode: warn\nrules: {volume-type-allowed: {action: deny}}\n",
        "warn.yaml",
    )
    .expect("warn fuzz policy is valid")
});

/// What the webhook does with a decoded review, plus invariants of the verdict:
/// - `mode: warn` never denies;
/// - an UPDATE whose old object is the same object never denies (every violation pre-exists);
/// - the response always encodes.
pub fn judge(review: &ReviewIn) {
    let Some(req) = &review.request else { return };
    let Some(obj) = &req.object else {
        let _ = review::encode(review::allow(&req.uid));
        return;
    };
    judge_object(
        &req.kind.kind,
        req.namespace.as_deref().unwrap_or(""),
        req.operation(),
        obj,
        req.old_object.as_ref(),
        &req.uid,
    );
}

pub fn judge_object(
    kind: &str,
    namespace: &str,
    op: Operation,
    obj: &Object,
    old: Option<&Object>,
    uid: &str,
) {
    for policy in [&*DEFAULT, &*STRICT, &*WARN] {
        let r = Request {
            kind,
            namespace,
            operation: op,
            object: obj,
            old_object: old,
        };
        let v = evaluate(policy, &r);
        assert_eq!(
            v.allowed,
            v.with_action(volguard::Action::Deny).next().is_none()
        );
        let _ = review::encode(review::response(uid, &v));
        let _ = v.outcome();
        if std::ptr::eq(policy, &*WARN) {
            assert!(
                v.allowed,
                "mode: warn denied {kind} {namespace}: {:?}",
                v.findings
            );
        }

        // The same object as its own old object on UPDATE: nothing is new, nothing is denied.
        let same = Request {
            kind,
            namespace,
            operation: Operation::Update,
            object: obj,
            old_object: Some(obj),
        };
        let u = evaluate(policy, &same);
        assert!(
            u.allowed,
            "UPDATE with oldObject == object denied: {:?}",
            u.findings
        );
        assert_eq!(
            u.findings.len(),
            evaluate(
                policy,
                &Request {
                    operation: Operation::Create,
                    old_object: None,
                    ..same
                }
            )
            .findings
            .len()
        );
    }
}
