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

use super::judge::{Audit, Audited};
use crate::cli::check::report::{InputError, ObjectReport};
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
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
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
    /// A report named `name` without results: a namespace where nothing was audited (this
    /// time), or a part no longer needed.
    pub fn empty(namespace: &str, name: &str, set: &ReportSet) -> PolicyReport {
        PolicyReport {
            api_version: GROUP_VERSION,
            kind: "PolicyReport",
            metadata: Metadata {
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                labels: BTreeMap::from([(MANAGED_BY.0, MANAGED_BY.1)]),
                annotations: set
                    .selector
                    .iter()
                    .map(|s| (SELECTOR_ANNOTATION, s.clone()))
                    .collect(),
            },
            results: Vec::new(),
            summary: ReportSummary::default(),
        }
    }

    fn count(&mut self, result: &str) {
        match result {
            "pass" => self.summary.pass += 1,
            "fail" => self.summary.fail += 1,
            "warn" => self.summary.warn += 1,
            "skip" => self.summary.skip += 1,
            _ => self.summary.error += 1,
        }
    }
}

/// The reports one kind of audit owns. A full audit (no `--selector`) owns `volguard` and
/// its parts `volguard-2`, `volguard-3`...; an audit with `--selector` owns
/// `volguard-l-<hash of the selector>` and its parts, so it neither replaces the full
/// audit's findings with a subset nor empties the reports of other namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSet {
    pub base: String,
    pub selector: Option<String>,
}

/// The annotation holding the selector of a `--selector` audit's reports.
pub const SELECTOR_ANNOTATION: &str = "volguard.io/selector";

impl ReportSet {
    pub fn new(selector: Option<&str>) -> ReportSet {
        match selector {
            None => ReportSet {
                base: NAME.to_owned(),
                selector: None,
            },
            Some(sel) => {
                use sha2::Digest;
                let hash = sha2::Sha256::digest(sel.as_bytes());
                let hex: String = hash[..5].iter().map(|b| format!("{b:02x}")).collect();
                ReportSet {
                    base: format!("{NAME}-l-{hex}"),
                    selector: Some(sel.to_owned()),
                }
            }
        }
    }

    /// The name of part `n` (1-based): the base, then `base-2`...
    pub fn part_name(&self, n: usize) -> String {
        if n <= 1 {
            self.base.clone()
        } else {
            format!("{}-{n}", self.base)
        }
    }

    /// True for the names this set writes.
    pub fn owns(&self, name: &str) -> bool {
        name == self.base
            || name
                .strip_prefix(&self.base)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|n| {
                    !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && n.parse::<usize>().is_ok_and(|n| n >= 2)
                })
    }
}

/// The most a report's JSON body may take. etcd refuses a request over 1.5 MiB (its
/// `--max-request-bytes` default, 1,572,864) and the stored object adds metadata and
/// `managedFields` to the body applied; 1 MiB leaves that room. A namespace with more
/// results is written as several parts (`volguard`, `volguard-2`...), every result kept.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// The label on volguard's reports, by which earlier ones are found again.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "volguard");

/// The reports for every namespace with an audited object, each split into parts of at most
/// `max_bytes` of JSON; `now` is the time since the Unix epoch stamped on every result.
pub fn build(audit: &Audit, now: Duration, set: &ReportSet, max_bytes: usize) -> Vec<PolicyReport> {
    let timestamp = Timestamp {
        seconds: now.as_secs() as i64,
        nanos: now.subsec_nanos() as i32,
    };
    let mut reports: BTreeMap<&str, PolicyReport> = BTreeMap::new();
    for (o, a) in audit.result.objects.iter().zip(&audit.audited) {
        let report = reports
            .entry(&o.namespace)
            .or_insert_with(|| PolicyReport::empty(&o.namespace, &set.base, set));
        for result in object_results(o, a, timestamp) {
            report.count(result.result);
            report.results.push(result);
        }
    }
    reports
        .into_values()
        .flat_map(|r| split(r, set, max_bytes))
        .collect()
}

/// One object's results: `skip` in an exempt namespace, `pass` without findings, else one
/// per rule with its findings (already sorted by path) in one message.
fn object_results(o: &ObjectReport, a: &Audited, timestamp: Timestamp) -> Vec<PolicyResult> {
    let result = |rule: Option<String>,
                  result: &'static str,
                  severity: Option<&'static str>,
                  message: String,
                  properties: BTreeMap<&'static str, String>| PolicyResult {
        policy: NAME,
        rule,
        result,
        severity,
        scored: true,
        message,
        source: NAME,
        resources: vec![ResourceRef {
            api_version: a.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            namespace: o.namespace.clone(),
            uid: a.uid.clone(),
        }],
        timestamp,
        properties,
    };
    if a.exempt_namespace || a.findings.is_empty() {
        let (outcome, message) = if a.exempt_namespace {
            (
                "skip",
                "namespace exempted by the policy (exemptNamespaces)",
            )
        } else {
            ("pass", "no violation of the enabled rules")
        };
        return vec![result(None, outcome, None, message.into(), BTreeMap::new())];
    }
    let mut by_rule: BTreeMap<&str, Vec<&crate::engine::verdict::Finding>> = BTreeMap::new();
    for f in &a.findings {
        by_rule.entry(f.rule.name()).or_default().push(f);
    }
    by_rule
        .into_iter()
        .map(|(rule, findings)| {
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
            )
        })
        .collect()
}

/// `report` as parts whose JSON stays within `max_bytes` (a single result larger than that
/// still gets a part of its own), each part summarising its own results.
fn split(report: PolicyReport, set: &ReportSet, max_bytes: usize) -> Vec<PolicyReport> {
    let namespace = report.metadata.namespace.clone();
    let overhead = serde_json::to_vec(&PolicyReport::empty(&namespace, &set.part_name(99), set))
        .map_or(512, |v| v.len())
        // The summary's counts grow to a few digits each.
        + 64;
    let mut parts: Vec<PolicyReport> = Vec::new();
    let mut current = PolicyReport::empty(&namespace, &set.part_name(1), set);
    let mut size = overhead;
    for result in report.results {
        let len = serde_json::to_vec(&result).map_or(0, |v| v.len()) + 1;
        if !current.results.is_empty() && size + len > max_bytes {
            let next = PolicyReport::empty(&namespace, &set.part_name(parts.len() + 2), set);
            parts.push(std::mem::replace(&mut current, next));
            size = overhead;
        }
        size += len;
        current.count(result.result);
        current.results.push(result);
    }
    parts.push(current);
    parts
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

/// The reports (namespace, name) of an earlier audit of the same [`ReportSet`], labelled
/// `app.kubernetes.io/managed-by=volguard`, in `namespace` or everywhere. The caller
/// empties those not written now, so a report never outlives its findings.
pub async fn earlier_reports(
    client: &Client,
    namespace: Option<&str>,
    page_size: u32,
    set: &ReportSet,
) -> Result<Vec<(String, String)>, InputError> {
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
                .filter(|i| set.owns(&i.metadata.name))
                .map(|i| (i.metadata.namespace, i.metadata.name)),
        );
        match list.metadata.continue_token.filter(|t| !t.is_empty()) {
            Some(t) => continue_token = Some(t),
            None => return Ok(found),
        }
    }
}

/// Why a report was not written.
#[derive(Debug)]
pub enum ApplyError {
    /// The namespace was deleted (404 `namespaces "x" not found`) or is terminating (403
    /// from the NamespaceLifecycle admission plugin, cause `NamespaceTerminating`) since it
    /// was listed: nothing to report there any more.
    NamespaceGone {
        namespace: String,
        why: String,
    },
    Failed(InputError),
}

/// Server-side applies one report (`?fieldManager=volguard&force=true`).
pub async fn apply(client: &Client, report: &PolicyReport) -> Result<(), ApplyError> {
    let ns = &report.metadata.namespace;
    let name = &report.metadata.name;
    let error = |message: String| {
        ApplyError::Failed(InputError {
            file: Some(format!("{ns}/PolicyReport/{name}")),
            line: None,
            message,
        })
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let req = Request::new(base_path(ns))
        .patch(name, &params, &Patch::Apply(report))
        .map_err(|e| error(e.to_string()))?;
    match client.request_text(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if namespace_gone(&s) => Err(ApplyError::NamespaceGone {
            namespace: ns.clone(),
            why: super::cluster::describe(&kube::Error::Api(s)),
        }),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(error(crd_missing())),
        Err(e) => Err(error(format!(
            "cannot apply: {}",
            super::cluster::describe(&e)
        ))),
    }
}

/// The namespace of a write is gone or going, as the API server says it: 404 NotFound with
/// `details.kind: namespaces` (`errors.NewNotFound(v1.Resource("namespaces"), ns)`), or 403
/// Forbidden with the cause `NamespaceTerminating` (plugin/pkg/admission/namespace/lifecycle
/// `Lifecycle.Admit`: "unable to create new content in namespace x because it is being
/// terminated").
pub fn namespace_gone(s: &kube::core::Status) -> bool {
    let details = s.details.as_ref();
    match s.code {
        404 => details.is_some_and(|d| d.kind == "namespaces"),
        403 => details.is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")),
        _ => false,
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
    fn report_sets_own_their_names_only() {
        let full = ReportSet::new(None);
        let sel = ReportSet::new(Some("app=web"));
        assert_eq!(full.part_name(1), "volguard");
        assert_eq!(full.part_name(3), "volguard-3");
        assert!(sel.base.starts_with("volguard-l-") && sel.base.len() == "volguard-l-".len() + 10);
        assert_eq!(sel, ReportSet::new(Some("app=web")));
        assert_ne!(sel.base, ReportSet::new(Some("app=db")).base);
        for (name, full_owns, sel_owns) in [
            ("volguard", true, false),
            ("volguard-2", true, false),
            ("volguard-1", false, false),
            ("volguard-x", false, false),
            ("other", false, false),
        ] {
            assert_eq!(full.owns(name), full_owns, "{name}");
            assert_eq!(sel.owns(name), sel_owns, "{name}");
        }
        assert!(sel.owns(&sel.base) && sel.owns(&sel.part_name(2)));
        assert!(!full.owns(&sel.base) && !full.owns(&sel.part_name(2)));
    }

    #[test]
    fn a_large_namespace_is_split_into_parts_under_the_limit() {
        let bad = r#"{"containers":[{"name":"c","volumeMounts":[{"name":"t","mountPath":"/t"}]}],"volumes":[{"name":"t","emptyDir":{}}]}"#;
        let items = (0..300)
            .map(|i| item("big", &format!("pod-{i:04}"), bad))
            .collect();
        let audit = super::super::judge::judge(&Policy::default(), items);
        let set = ReportSet::new(None);
        let reports = build(&audit, Duration::new(1_700_000_000, 0), &set, 20_000);
        assert!(reports.len() > 3, "{}", reports.len());
        let names: Vec<&str> = reports.iter().map(|r| r.metadata.name.as_str()).collect();
        assert_eq!(names[..3], ["volguard", "volguard-2", "volguard-3"]);
        let mut total = 0;
        for r in &reports {
            let len = serde_json::to_vec(r).unwrap().len();
            assert!(len <= 20_000, "{}: {len} bytes", r.metadata.name);
            assert_eq!(r.summary.fail as usize, r.results.len());
            total += r.results.len();
        }
        assert_eq!(total, audit.result.objects.len(), "every result kept");
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
        let reports = build(
            &audit,
            Duration::new(1_700_000_000, 5),
            &ReportSet::new(None),
            MAX_REPORT_BYTES,
        );
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
