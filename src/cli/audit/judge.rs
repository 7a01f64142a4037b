//! Judging the listed objects: each as its CREATE would be judged, and each reported once.

use std::collections::HashSet;

use super::cluster::{Item, KINDS};
use crate::cli::check::report::{CheckResult, ObjectReport, ViolationReport};
use crate::engine::policy::Policy;
use crate::engine::verdict::{self, Finding, Request, Skipped, Verdict};

/// What the audit found. `result` is what `check` would print; `audited` runs parallel to
/// `result.objects` with what a PolicyReport needs besides.
#[derive(Debug, Default)]
pub struct Audit {
    pub result: CheckResult,
    pub audited: Vec<Audited>,
    /// Objects left out because the workload controlling them was judged and reported.
    pub at_owner: usize,
    /// PolicyReports applied (with `--report`); a failed write is an error, not counted.
    pub reports_written: usize,
    /// Namespaces deleted or terminating since they were listed: their reports skipped.
    pub namespaces_gone: std::collections::BTreeSet<String>,
    /// What the audit wants the reader to know besides errors (lists restarted, reports
    /// withheld for what could not be read).
    pub notes: Vec<String>,
}

/// One reported object.
#[derive(Debug)]
pub struct Audited {
    pub api_version: String,
    pub uid: String,
    pub findings: Vec<Finding>,
    pub exempt_namespace: bool,
}

/// Judges every item with operation CREATE in its own namespace. An item whose controller
/// (its first `ownerReferences` entry with `controller: true`, matched by UID as
/// apimachinery's `metav1.IsControlledBy` does) was listed and judged is not
/// reported: its Pod template is reported at that owner (a Pod at its ReplicaSet, which is
/// itself reported at its Deployment; a Job's Pod at the Job, the Job at its CronJob).
pub fn judge(policy: &Policy, mut items: Vec<Item>) -> Audit {
    let order = |kind: &str| KINDS.iter().position(|k| k.0 == kind).unwrap_or(usize::MAX);
    items.sort_by(|a, b| {
        (a.namespace.as_str(), order(a.kind), a.name.as_str()).cmp(&(
            b.namespace.as_str(),
            order(b.kind),
            b.name.as_str(),
        ))
    });
    let verdicts: Vec<Verdict> = items
        .iter()
        .map(|item| {
            verdict::evaluate(
                policy,
                &Request::create(item.kind, &item.namespace, &item.object),
            )
        })
        .collect();
    let judged: HashSet<&str> = items
        .iter()
        .zip(&verdicts)
        .filter(|(i, v)| v.skipped != Some(Skipped::NotApplicable) && !i.uid.is_empty())
        .map(|(i, _)| i.uid.as_str())
        .collect();
    let mut audit = Audit::default();
    for (item, verdict) in items.iter().zip(verdicts) {
        if verdict.skipped == Some(Skipped::NotApplicable) {
            continue;
        }
        if item
            .controller_uid
            .as_deref()
            .is_some_and(|owner| judged.contains(owner))
        {
            audit.at_owner += 1;
            continue;
        }
        let exempt_namespace = verdict.skipped == Some(Skipped::ExemptNamespace);
        audit.result.objects.push(ObjectReport {
            file: "cluster".to_owned(),
            line: 0,
            kind: item.kind.to_owned(),
            namespace: item.namespace.clone(),
            name: item.name.clone(),
            allowed: verdict.allowed,
            skipped: exempt_namespace.then_some("exempt namespace"),
            violations: verdict.findings.iter().map(ViolationReport::from).collect(),
            unknown_fields: Vec::new(),
        });
        audit.audited.push(Audited {
            api_version: item.api_version.clone(),
            uid: item.uid.clone(),
            findings: verdict.findings,
            exempt_namespace,
        });
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Object;
    use serde::Deserialize;

    const BAD_SPEC: &str = r#"{"containers":[{"name":"c","volumeMounts":[{"name":"t","mountPath":"/t"}]}],"volumes":[{"name":"t","emptyDir":{}}]}"#;

    fn item(kind: &'static str, ns: &str, name: &str, uid: &str, owner: Option<&str>) -> Item {
        let json = match kind {
            "Pod" => format!(r#"{{"spec":{BAD_SPEC}}}"#),
            "CronJob" => {
                format!(
                    r#"{{"spec":{{"jobTemplate":{{"spec":{{"template":{{"spec":{BAD_SPEC}}}}}}}}}}}"#
                )
            }
            _ => format!(r#"{{"spec":{{"template":{{"spec":{BAD_SPEC}}}}}}}"#),
        };
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let object = Object::deserialize(value).unwrap();
        Item {
            kind,
            api_version: "v1".into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
            controller_uid: owner.map(str::to_owned),
            object,
        }
    }

    fn reported(a: &Audit) -> Vec<String> {
        a.result
            .objects
            .iter()
            .map(|o| format!("{}/{}/{}", o.namespace, o.kind, o.name))
            .collect()
    }

    #[test]
    fn owned_objects_are_reported_at_their_judged_controller() {
        let items = vec![
            item("Pod", "shop", "web-abc-1", "p1", Some("rs1")),
            item("ReplicaSet", "shop", "web-abc", "rs1", Some("d1")),
            item("Deployment", "shop", "web", "d1", None),
            item("Pod", "shop", "nightly-1-x", "p2", Some("j1")),
            item("Job", "shop", "nightly-1", "j1", Some("cj1")),
            item("CronJob", "shop", "nightly", "cj1", None),
            // Its controller was not listed (a selector, a forbidden kind): reported.
            item("Pod", "shop", "db-0", "p3", Some("sts-not-listed")),
            item("Pod", "dev", "bare", "p4", None),
        ];
        let a = judge(&Policy::default(), items);
        assert_eq!(
            reported(&a),
            [
                "dev/Pod/bare",
                "shop/Deployment/web",
                "shop/CronJob/nightly",
                "shop/Pod/db-0"
            ]
        );
        assert_eq!(a.at_owner, 4);
        assert!(a.result.objects.iter().all(|o| !o.allowed));
        assert_eq!(a.result.exit_code(), 1);
        assert_eq!(a.audited.len(), 4);
    }

    #[test]
    fn exempt_namespaces_are_reported_as_skipped() {
        let a = judge(
            &Policy::default(),
            vec![item("Pod", "kube-system", "p", "u", None)],
        );
        assert_eq!(a.result.objects[0].skipped, Some("exempt namespace"));
        assert!(a.audited[0].exempt_namespace);
        assert_eq!(a.result.exit_code(), 0);
    }
}
