//! `--report policyreport`: one `wgpolicyk8s.io/v1alpha2` PolicyReport named `volguard`
//! per namespace, written by server-side apply (field manager `volguard`), so that Policy
//! Reporter and the Kyverno tooling show volguard's findings.
//!
//! The shape follows the CRD's OpenAPI schema as Kyverno ships it (a copy with its source
//! is in `tests/data/policyreport/`; `tests/audit.rs` validates every body against it):
//! one result per object and rule, `fail` for what a CREATE would deny, `warn` for findings
//! that would only warn or audit, `pass` for a clean object, `skip` for an object in a
//! namespace the policy exempts.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Patch, PatchParams};
use kube::core::Request;
use serde::Serialize;

use super::judge::Audit;
use crate::cli::check::report::InputError;
use crate::engine::rules::Action;

pub const GROUP_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
pub const NAME: &str = "volguard";
pub const FIELD_MANAGER: &str = "volguard";

fn crd_missing() -> String {
    format!(
        "PolicyReport CRD ({GROUP_VERSION}) is not installed; install it (e.g. from Kyverno or Policy Reporter) or run without --report"
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub results: Vec<PolicyResult>,
    pub summary: ReportSummary,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub name: &'static str,
    pub namespace: String,
    pub labels: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResult {
    pub policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<&'static str>,
    pub scored: bool,
    pub message: String,
    pub source: &'static str,
    pub resources: Vec<ResourceRef>,
    pub timestamp: Timestamp,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<&'static str, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

#[derive(Debug, Default, Serialize)]
pub struct ReportSummary {
    pub pass: u64,
    pub fail: u64,
    pub warn: u64,
    pub error: u64,
    pub skip: u64,
}

impl PolicyReport {
    /// The report of a namespace where nothing was audited (this time).
    pub fn empty(namespace: &str) -> PolicyReport {
        PolicyReport {
            api_version: GROUP_VERSION,
            kind: "PolicyReport",
            metadata: Metadata {
                name: NAME,
                namespace: namespace.to_owned(),
                labels: BTreeMap::from([(MANAGED_BY.0, MANAGED_BY.1)]),
            },
            results: Vec::new(),
            summary: ReportSummary::default(),
        }
    }
}

/// The label on volguard's reports, by which earlier ones are found again.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "volguard");

/// The reports for every namespace with an audited object; `now` is the time since the
/// Unix epoch stamped on every result.
pub fn build(audit: &Audit, now: Duration) -> Vec<PolicyReport> {
    let timestamp = Timestamp {
        seconds: now.as_secs() as i64,
        nanos: now.subsec_nanos() as i32,
    };
    let mut reports: BTreeMap<&str, PolicyReport> = BTreeMap::new();
    for (o, a) in audit.result.objects.iter().zip(&audit.audited) {
        let report = reports
            .entry(&o.namespace)
            .or_insert_with(|| PolicyReport::empty(&o.namespace));
        let resource = || ResourceRef {
            api_version: a.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace.clone(),
            uid: a.uid.clone(),
        };
        let mut result = |rule: Option<String>,
                          result: &'static str,
                          severity: Option<&'static str>,
                          message: String,
                          properties: BTreeMap<&'static str, String>| {
            match result {
                "pass" => report.summary.pass += 1,
                "fail" => report.summary.fail += 1,
                "warn" => report.summary.warn += 1,
                "skip" => report.summary.skip += 1,
                _ => report.summary.error += 1,
            }
            report.results.push(PolicyResult {
                policy: NAME,
                rule,
                result,
                severity,
                scored: true,
                message,
                source: NAME,
                resources: vec![resource()],
                timestamp,
                properties,
            });
        };
        if a.exempt_namespace {
            result(
                None,
                "skip",
                None,
                "namespace exempted by the policy (exemptNamespaces)".into(),
                BTreeMap::new(),
            );
            continue;
        }
        if a.findings.is_empty() {
            result(
                None,
                "pass",
                None,
                "no violation of the enabled rules".into(),
                BTreeMap::new(),
            );
            continue;
        }
        // One result per rule: its findings (already sorted by path) in one message.
        let mut by_rule: BTreeMap<&str, Vec<&crate::engine::verdict::Finding>> = BTreeMap::new();
        for f in &a.findings {
            by_rule.entry(f.rule.name()).or_default().push(f);
        }
        for (rule, findings) in by_rule {
            let action = findings
                .iter()
                .map(|f| f.action)
                .max()
                .unwrap_or(Action::Audit);
            let (outcome, severity) = match action {
                Action::Deny => ("fail", "high"),
                Action::Warn => ("warn", "medium"),
                _ => ("warn", "low"),
            };
            let message = findings
                .iter()
                .map(|f| format!("{}: {}", f.path, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            let paths = findings
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            result(
                Some(rule.to_owned()),
                outcome,
                Some(severity),
                message,
                BTreeMap::from([("action", action.as_str().to_owned()), ("paths", paths)]),
            );
        }
    }
    reports.into_values().collect()
}

fn base_path(namespace: &str) -> String {
    format!("/apis/{GROUP_VERSION}/namespaces/{namespace}/policyreports")
}

/// Fails with a clear message when the API does not serve PolicyReports (the CRD is not
/// installed), before anything is listed.
pub async fn ensure_crd(client: &Client) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct ResourceList {
        #[serde(default)]
        resources: Vec<Resource>,
    }
    #[derive(serde::Deserialize)]
    struct Resource {
        name: String,
    }
    let (group, version) = GROUP_VERSION.split_once('/').unwrap_or_default();
    let req = Request::new(format!("/apis/{group}"))
        .get(version, &Default::default())
        .map_err(|e| e.to_string())?;
    match client.request_text(req).await {
        Ok(text) => {
            let list: ResourceList = serde_json::from_str(&text)
                .map_err(|e| format!("/apis/{GROUP_VERSION}: malformed discovery document: {e}"))?;
            if list.resources.iter().any(|r| r.name == "policyreports") {
                Ok(())
            } else {
                Err(crd_missing())
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Err(crd_missing()),
        Err(e) => Err(format!(
            "cannot reach the Kubernetes API: {}",
            super::cluster::describe(&e)
        )),
    }
}

/// Namespaces holding a report of an earlier audit (`volguard`, labelled
/// `app.kubernetes.io/managed-by=volguard`), in `namespace` or everywhere. The caller
/// empties those with nothing audited now, so a report never outlives its findings.
pub async fn earlier_reports(
    client: &Client,
    namespace: Option<&str>,
    page_size: u32,
) -> Result<Vec<String>, InputError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        metadata: ListMeta,
        #[serde(default)]
        items: Option<Vec<Item>>,
    }
    #[derive(Default, serde::Deserialize)]
    struct ListMeta {
        #[serde(default, rename = "continue")]
        continue_token: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        metadata: ItemMeta,
    }
    #[derive(serde::Deserialize)]
    struct ItemMeta {
        #[serde(default)]
        name: String,
        #[serde(default)]
        namespace: String,
    }
    let error = |message: String| InputError {
        file: Some("policyreports.wgpolicyk8s.io".into()),
        line: None,
        message,
    };
    let path = match namespace {
        Some(ns) => base_path(ns),
        None => format!("/apis/{GROUP_VERSION}/policyreports"),
    };
    let mut found = Vec::new();
    let mut continue_token = None;
    loop {
        let params = kube::api::ListParams {
            label_selector: Some(format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)),
            limit: Some(page_size),
            continue_token: continue_token.take(),
            ..Default::default()
        };
        let req = Request::new(&path)
            .list(&params)
            .map_err(|e| error(e.to_string()))?;
        let text = client.request_text(req).await.map_err(|e| {
            error(format!(
                "cannot list earlier reports: {}",
                super::cluster::describe(&e)
            ))
        })?;
        let list: List = serde_json::from_str(&text)
            .map_err(|e| error(format!("malformed list response: {e}")))?;
        found.extend(
            list.items
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i.metadata.name == NAME)
                .map(|i| i.metadata.namespace),
        );
        match list.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(t) => continue_token = Some(t),
            None => return Ok(found),
        }
    }
}

/// Server-side applies one report (`?fieldManager=volguard&force=true`).
pub async fn apply(client: &Client, report: &PolicyReport) -> Result<(), InputError> {
    let ns = &report.metadata.namespace;
    let error = |message: String| InputError {
        file: Some(format!("{ns}/PolicyReport/{NAME}")),
        line: None,
        message,
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let req = Request::new(base_path(ns))
        .patch(NAME, &params, &Patch::Apply(report))
        .map_err(|e| error(e.to_string()))?;
    match client.request_text(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 && s.message.contains("namespaces") => {
            Err(error(format!(
                "cannot apply: {}",
                super::cluster::describe(&kube::Error::Api(s))
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Err(error(crd_missing())),
        Err(e) => Err(error(format!(
            "cannot apply: {}",
            super::cluster::describe(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::audit::cluster::Item;
    use crate::engine::model::Object;
    use crate::engine::policy::Policy;
    use serde::Deserialize;

    fn item(ns: &str, name: &str, spec: &str) -> Item {
        Item {
            kind: "Pod",
            api_version: "v1".into(),
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller_uid: None,
            object: Object::deserialize(
                serde_json::from_str::<serde_json::Value>(&format!(r#"{{"spec":{spec}}}"#))
                    .unwrap(),
            )
            .unwrap(),
        }
    }

    #[test]
    fn one_report_per_namespace_with_results_per_object_and_rule() {
        let bad = r#"{"containers":[{"name":"c","volumeMounts":[{"name":"t","mountPath":"/t"},{"name":"u","mountPath":"/u"}]}],"volumes":[{"name":"t","emptyDir":{}},{"name":"u","emptyDir":{}}]}"#;
        let clean = r#"{"containers":[{"name":"c"}]}"#;
        let audit = super::super::judge::judge(
            &Policy::default(),
            vec![
                item("shop", "bad", bad),
                item("shop", "ok", clean),
                item("kube-system", "sys", bad),
            ],
        );
        let reports = build(&audit, Duration::new(1_700_000_000, 5));
        let names: Vec<&str> = reports
            .iter()
            .map(|r| r.metadata.namespace.as_str())
            .collect();
        assert_eq!(names, ["kube-system", "shop"]);
        assert_eq!(reports[0].summary.skip, 1);
        assert_eq!(reports[0].results[0].result, "skip");
        let shop = &reports[1];
        let bad_results: Vec<&PolicyResult> = shop
            .results
            .iter()
            .filter(|r| r.resources[0].name == "bad")
            .collect();
        let rules: Vec<&str> = bad_results
            .iter()
            .filter_map(|r| r.rule.as_deref())
            .collect();
        let mut dedup = rules.clone();
        dedup.dedup();
        assert_eq!(rules, dedup, "one result per object and rule");
        let deny = &audit.audited[1].findings;
        assert!(!deny.is_empty());
        let fail = bad_results.iter().find(|r| r.result == "fail").unwrap();
        assert_eq!(fail.severity, Some("high"));
        assert!(
            fail.properties["paths"].contains("spec.volumes[1]"),
            "{fail:?}"
        );
        assert_eq!(shop.summary.pass, 1);
        assert_eq!(
            shop.summary.fail + shop.summary.warn + shop.summary.pass,
            shop.results.len() as u64
        );
        let v = serde_json::to_value(shop).unwrap();
        assert_eq!(v["results"][0]["timestamp"]["nanos"], 5);
        assert_eq!(v["metadata"]["name"], "volguard");
        assert_eq!(v["results"][0]["resources"][0]["uid"], "uid-bad");
    }
}
