//! The AdmissionReview wire format, in one place for every front-end: the webhook, `check`
//! (reviews saved to files) and the fuzz targets decode with [`decode`] and judge with
//! [`RequestIn::judge`], so subresources, operations and kinds are handled identically.
//! Responses are encoded as the apiserver expects them (kube's admission types).

use std::borrow::Cow;

use kube::core::Status;
use kube::core::admission::{AdmissionResponse, Operation as KubeOperation};
use kube::core::response::StatusSummary;
use serde::{Deserialize, Deserializer};

use crate::engine::model::{Object, Str, opt_str};
use crate::engine::mutate::{self, Mutation};
use crate::engine::policy::Policy;
use crate::engine::rules::{self, Action};
use crate::engine::verdict::{self, Operation, Request, Requester, Verdict};

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// `AdmissionReview` as sent by the apiserver, reduced to the fields we read. Everything else
/// (options, managedFields, status, ...) is skipped while parsing. Strings are borrowed from
/// the body (see [`crate::engine::model`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewIn<'a> {
    #[serde(default, borrow)]
    pub api_version: Cow<'a, str>,
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub request: Option<RequestIn<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestIn<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: GroupVersionKind<'a>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub namespace: Option<Cow<'a, str>>,
    pub operation: KubeOperation,
    #[serde(default, borrow)]
    pub object: Option<Object<'a>>,
    #[serde(default, borrow)]
    pub old_object: Option<Object<'a>>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Who sent it (a user, a controller, a node).
    #[serde(default, borrow)]
    pub user_info: UserInfo<'a>,
}

/// `request.kind` (every field required, as in `kube::core::GroupVersionKind`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// `request.userInfo`, reduced to what decides how a verdict applies.
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo<'a> {
    #[serde(default, borrow)]
    pub username: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "str_list")]
    pub groups: Vec<Cow<'a, str>>,
}

/// A list of strings, each borrowed when possible (a bare `Vec<Cow<str>>` would copy each).
fn str_list<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Cow<'a, str>>, D::Error> {
    Ok(Vec::<Str<'de>>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
}

impl RequestIn<'_> {
    pub fn operation(&self) -> Operation {
        match self.operation {
            KubeOperation::Create => Operation::Create,
            KubeOperation::Update => Operation::Update,
            KubeOperation::Delete => Operation::Delete,
            KubeOperation::Connect => Operation::Connect,
        }
    }

    /// Whether the engine judges this request: the object itself, or a Pod's
    /// `ephemeralcontainers` or `resize` subresource (whose object is the whole Pod, and
    /// whose oldObject is the Pod before: only what the change introduces counts).
    pub fn judged_subresource(&self) -> bool {
        match self.sub_resource.as_deref() {
            None | Some("") => true,
            Some("ephemeralcontainers" | "resize") => self.kind.kind == "Pod",
            Some(_) => false,
        }
    }

    /// The sender, as the engine sees it.
    pub fn requester(&self) -> Requester<'_> {
        Requester {
            username: &self.user_info.username,
            groups: &self.user_info.groups,
        }
    }
}

/// Why a body is not a usable AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(serde_json::Error),
    #[error("request body is not a valid AdmissionReview: {0}")]
    Invalid(serde_json::Error),
    #[error(
        "request body is not an {API_VERSION} AdmissionReview (got apiVersion {api_version:?}, kind {kind:?})"
    )]
    WrongType { api_version: String, kind: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
}

impl DecodeError {
    /// The `reason` label of `volguard_bad_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::MalformedJson(_) => "malformed_json",
            DecodeError::Invalid(_) | DecodeError::WrongType { .. } => "not_admission_review",
            DecodeError::NoRequest => "no_request",
        }
    }
}

/// Decodes an `admission.k8s.io/v1` AdmissionReview that carries a request. The request
/// borrows its strings from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<RequestIn<'_>, DecodeError> {
    // UTF-8 is checked once for the whole body (`from_str` then trusts it), instead of once
    // per string `from_slice` reads. A body that is not UTF-8 goes through `from_slice`
    // exactly as before: same errors, and the same acceptance of bad bytes inside strings it
    // skips.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<ReviewIn>(text),
        Err(_) => serde_json::from_slice::<ReviewIn>(bytes),
    };
    let review = parsed.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DecodeError::Invalid(e),
        _ => DecodeError::MalformedJson(e),
    })?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(DecodeError::WrongType {
            api_version: review.api_version.into_owned(),
            kind: review.kind.into_owned(),
        });
    }
    review.request.ok_or(DecodeError::NoRequest)
}

impl RequestIn<'_> {
    /// The engine's verdict on this request. Kinds the engine does not judge, DELETE and
    /// CONNECT are the engine's call; subresources other than a Pod's `ephemeralcontainers`
    /// and `resize` are allowed here without looking.
    pub fn judge(&self, policy: &Policy) -> Verdict {
        match (&self.object, self.judged_subresource()) {
            (Some(object), true) => {
                verdict::evaluate_as(policy, &self.request(object), Some(&self.requester()))
            }
            _ => Verdict::not_applicable(),
        }
    }

    /// The engine's view of this request, about `object`.
    fn request<'a>(&'a self, object: &'a Object) -> Request<'a> {
        Request {
            kind: &self.kind.kind,
            namespace: self.namespace.as_deref().unwrap_or(""),
            operation: self.operation(),
            object,
            old_object: self.old_object.as_ref(),
        }
    }
}

impl RequestIn<'_> {
    /// What `/mutate` adds to this request's object (the policy's `defaults`). Subresources
    /// are never patched: a Pod's `ephemeralcontainers` and `resize` cannot change volumes,
    /// and a workload's `status` or `scale` carries no template to change.
    pub fn mutate(&self, policy: &Policy) -> Mutation {
        match (&self.object, self.sub_resource.as_deref()) {
            (Some(object), None | Some("")) => {
                mutate::mutate(policy, &self.request(object), Some(&self.requester()))
            }
            _ => Mutation::not_applicable(),
        }
    }
}

/// The `/mutate` answer as a complete AdmissionReview: always allowed (denying is
/// `/validate`'s business), with the JSON patch base64-encoded in `response.patch`,
/// `patchType: JSONPatch` and one warning per addition when there is something to add.
///
/// kube's `AdmissionResponse::with_patch` needs the `json-patch` types and serialises the
/// patch bytes as a JSON array of numbers; the admission.k8s.io/v1 wire format is a base64
/// string (Go `[]byte`), written here directly.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationReview {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: MutationResponse,
}

/// `response` of a [`MutationReview`].
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Base64 of the RFC 6902 patch document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

pub fn response_with_patch(uid: &str, mutation: &Mutation) -> MutationReview {
    use base64::Engine as _;
    let patch = mutation
        .patch_json()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    MutationReview {
        api_version: API_VERSION,
        kind: "AdmissionReview",
        response: MutationResponse {
            uid: uid.to_owned(),
            allowed: true,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings: mutation.warnings().map(|w| clamp(w, 255)).collect(),
        },
    }
}

/// [`response_with_patch`], serialised.
pub fn encode_mutation(uid: &str, mutation: &Mutation) -> Vec<u8> {
    serde_json::to_vec(&response_with_patch(uid, mutation)).expect("AdmissionReview serialises")
}

/// The longest line volguard puts in a warning or a denial, in bytes. The apiserver keeps a
/// webhook's warnings (`k8s.io/apiserver/pkg/admission/plugin/webhook/validating`
/// `dispatcher.go`: `warning.AddWarning(ctx, "", w)` for each) and its recorder,
/// `k8s.io/apiserver/pkg/endpoints/filters/warning.go`, cuts each warning to
/// `truncateItemRunes` (256) runes once the warnings of one response pass
/// `truncateAtTotalRunes` (4 * 1024): with up to [`MAX_RESPONSE_FINDINGS`] lines, each must
/// fit 256 runes to arrive whole. A warning that is not a valid header value (a newline) is
/// dropped there: names and paths are quoted with escapes. Denial lines (`status.message`)
/// have no such limit, but keep the same budget so a denial reads like the warning it
/// becomes in `warn` mode.
pub const MAX_LINE: usize = 255;

/// One finding as an admission line within `max` bytes: `[rule] path: message`, with the
/// note (UPDATE, downgraded) after it. When it does not fit, the explanation (the message
/// before its last `"; "`) is shortened, never the rule ID, the field path or the fix (the
/// part after that `"; "`); only a fix too long for the line on its own is cut at the end.
pub fn line(f: &verdict::Finding, max: usize) -> String {
    let whole = f.to_string();
    if whole.len() <= max {
        return whole;
    }
    let head = format!("[{}] {}: ", f.rule, f.path);
    let note = f.note();
    if let Some((explanation, fix)) = f.message.rsplit_once("; ") {
        let tail = format!("…; {fix}{note}");
        let room = max.saturating_sub(head.len() + tail.len());
        if room >= 16 {
            let mut cut = room.min(explanation.len());
            while !explanation.is_char_boundary(cut) {
                cut -= 1;
            }
            return format!("{head}{}{tail}", explanation[..cut].trim_end());
        }
    }
    clamp(whole, max)
}

/// Cuts a warning to the apiserver's 256-character limit (on a char boundary).
pub fn clamp(mut s: String, max: usize) -> String {
    rules::truncate(&mut s, max);
    s
}

/// An allowing response for `uid`.
pub fn allow(uid: &str) -> AdmissionResponse {
    let mut r = AdmissionResponse::invalid("");
    r.uid = uid.to_owned();
    r.allowed = true;
    r.result = Status::default();
    r
}

/// At most this many warnings, denial lines and audit entries go into one response; the rest
/// is summed up in one line (`… and N more violations`), so a Pod with 80k findings gets a
/// small answer. The verdict keeps every finding (metrics, logs and `check` see them all).
pub const MAX_RESPONSE_FINDINGS: usize = 100;

/// The line that stands for the findings left out of a response.
fn more_line(n: usize) -> String {
    format!("… and {n} more violations")
}

/// Encodes a verdict: denials in `status.message` (403 Forbidden), warnings one per finding,
/// audit findings as audit annotations; each list capped at [`MAX_RESPONSE_FINDINGS`] plus
/// one summary line.
pub fn response(uid: &str, verdict: &Verdict) -> AdmissionResponse {
    // The first `MAX_RESPONSE_FINDINGS` lines of `action`, then the summary line if any were
    // left out.
    let capped = |action: Action, line: &dyn Fn(&verdict::Finding) -> String| -> Vec<String> {
        let mut total = 0usize;
        let mut lines = Vec::new();
        for f in verdict.with_action(action) {
            if total < MAX_RESPONSE_FINDINGS {
                lines.push(line(f));
            }
            total += 1;
        }
        if total > MAX_RESPONSE_FINDINGS {
            lines.push(more_line(total - MAX_RESPONSE_FINDINGS));
        }
        lines
    };
    let mut r = allow(uid);
    let warnings = capped(Action::Warn, &|f| line(f, MAX_LINE));
    if !warnings.is_empty() {
        r.warnings = Some(warnings);
    }
    let audit = capped(Action::Audit, &|f| format!("[{}] {}", f.rule, f.path));
    if !audit.is_empty() {
        r.audit_annotations
            .insert("violations".to_owned(), audit.join(", "));
    }
    // Denials waived because a controller (or a node, for a mirror Pod) created the object:
    // the audit log keeps them, with the requester the apiserver records beside them.
    let mut downgraded: Vec<String> = verdict
        .downgraded()
        .take(MAX_RESPONSE_FINDINGS)
        .map(|f| format!("[{}] {}", f.rule, f.path))
        .collect();
    let waived = verdict.downgraded().count();
    if waived > MAX_RESPONSE_FINDINGS {
        downgraded.push(more_line(waived - MAX_RESPONSE_FINDINGS));
    }
    if !downgraded.is_empty() {
        r.audit_annotations.insert(
            format!("{}-denials-waived", verdict.origin.as_str()),
            downgraded.join(", "),
        );
    }
    if !verdict.allowed {
        let lines = capped(Action::Deny, &|f| line(f, MAX_LINE));
        r.allowed = false;
        r.result = Status {
            status: Some(StatusSummary::Failure),
            code: 403,
            reason: "Forbidden".to_owned(),
            message: lines.join("\n"),
            ..Status::default()
        };
    }
    r
}

/// Serialises a response as a complete `AdmissionReview` (apiVersion admission.k8s.io/v1).
pub fn encode(r: AdmissionResponse) -> Vec<u8> {
    serde_json::to_vec(&r.into_review()).expect("AdmissionReview serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_respects_char_boundaries() {
        let s = "é".repeat(200);
        let c = clamp(s, 255);
        assert!(c.len() <= 255 && c.ends_with("..."));
        assert_eq!(clamp("short".into(), 255), "short");
    }

    /// A Pod with a 1Gi memory emptyDir and a container memory limit of `limit`.
    fn pod(limit: &str) -> serde_json::Value {
        serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": limit}},
                                     "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}],
                     "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]}})
    }

    fn resize(old: &str, new: &str, sub: &str) -> RequestIn<'static> {
        let review = serde_json::json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "r", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"}, "subResource": sub,
            "namespace": "default", "operation": "UPDATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": pod(new), "oldObject": pod(old)}});
        // Leaked: the request borrows from its body (a few hundred bytes per test).
        decode(serde_json::to_vec(&review).unwrap().leak()).unwrap()
    }

    /// `pods/resize` (kubernetes/kubernetes#128266): the whole Pod before and after, judged
    /// like an UPDATE, so only a violation the resize introduces denies.
    #[test]
    fn resize_is_judged_like_an_update() {
        let policy = Policy::default();
        let r = resize("2Gi", "512Mi", "resize");
        assert_eq!(r.user_info.username, "alice");
        let v = r.judge(&policy);
        assert!(!v.allowed, "{:?}", v.findings);
        assert_eq!(
            v.with_action(Action::Deny)
                .map(|f| f.rule.name())
                .collect::<Vec<_>>(),
            ["emptydir-memory-within-limits"]
        );
        // Already over before: the resize introduces nothing.
        let v = resize("768Mi", "512Mi", "resize").judge(&policy);
        assert!(
            v.allowed && v.findings.iter().all(|f| f.preexisting),
            "{:?}",
            v.findings
        );
        // Growing the limit is fine; the status subresource is not judged at all.
        assert!(
            resize("512Mi", "2Gi", "resize")
                .judge(&policy)
                .findings
                .is_empty()
        );
        let v = resize("2Gi", "512Mi", "status").judge(&policy);
        assert_eq!(
            v.skipped,
            Some(crate::engine::verdict::Skipped::NotApplicable)
        );
    }

    #[test]
    fn waived_denials_are_audit_annotations() {
        let policy = Policy::default();
        let review = serde_json::json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "c", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:job-controller",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": {"kind": "Pod", "metadata": {"name": "j-x", "ownerReferences": [
                           {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u", "controller": true}]},
                       "spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "t", "mountPath": "/t"}]}],
                                "volumes": [{"name": "t", "emptyDir": {}}]}}}});
        let body = serde_json::to_vec(&review).unwrap();
        let req = decode(&body).unwrap();
        let v = req.judge(&policy);
        let r = response(&req.uid, &v);
        assert!(r.allowed);
        assert_eq!(
            r.audit_annotations
                .get("controller-denials-waived")
                .map(String::as_str),
            Some("[emptydir-size-limit-required] spec.volumes[0].emptyDir")
        );
        let w = r.warnings.unwrap();
        assert!(w[0].ends_with("(created by its controller)"), "{w:?}");
    }

    fn review(op: &str, sub: &str, object: serde_json::Value) -> RequestIn<'static> {
        let review = serde_json::json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": {
            "uid": "m", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"}, "subResource": sub,
            "namespace": "default", "operation": op,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object}});
        // Leaked: the request borrows from its body (a few hundred bytes per test).
        decode(serde_json::to_vec(&review).unwrap().leak()).unwrap()
    }

    #[test]
    fn mutation_responses_carry_a_base64_json_patch() {
        use base64::Engine as _;
        let policy = Policy::parse("defaults: {emptyDir: {diskSizeLimit: 1Gi}}\n", "p").unwrap();
        let deployment = serde_json::json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "c"}], "volumes": [{"name": "t", "emptyDir": {}}]}}}});
        let m = review("UPDATE", "", deployment.clone()).mutate(&policy);
        assert_eq!(m.result(), "patched");
        let v: serde_json::Value = serde_json::from_slice(&encode_mutation("m", &m)).unwrap();
        let r = &v["response"];
        assert_eq!(
            (r["uid"].as_str(), r["allowed"].as_bool()),
            (Some("m"), Some(true))
        );
        assert_eq!(r["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(r["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(patch).unwrap(),
            r#"[{"op":"add","path":"/spec/template/spec/volumes/0/emptyDir/sizeLimit","value":"1Gi"}]"#
        );
        assert_eq!(
            r["warnings"][0],
            "[mutate] spec.template.spec.volumes[0].emptyDir.sizeLimit: set to 1Gi for emptyDir \"t\" (policy defaults.emptyDir.diskSizeLimit)"
        );
        // Subresources are never patched; nothing to add means no patch and no warning.
        let scale = review("UPDATE", "scale", deployment).mutate(&policy);
        assert_eq!(scale.result(), "skipped");
        let v: serde_json::Value = serde_json::from_slice(&encode_mutation("m", &scale)).unwrap();
        assert_eq!(v["response"]["allowed"], true);
        for key in ["patch", "patchType", "warnings"] {
            assert!(v["response"].get(key).is_none(), "{key}: {v}");
        }
    }

    fn finding(i: usize, action: Action) -> verdict::Finding {
        verdict::Finding {
            rule: crate::engine::rules::RuleId::MountVolumeExists,
            action,
            path: format!("spec.containers[0].volumeMounts[{i}]"),
            message: format!("mount {i} names no volume"),
            preexisting: false,
            downgraded: None,
        }
    }

    fn verdict_of(n: usize, action: Action) -> Verdict {
        Verdict {
            allowed: action != Action::Deny,
            findings: (0..n).map(|i| finding(i, action)).collect(),
            skipped: None,
            origin: verdict::Origin::User,
        }
    }

    #[test]
    fn warnings_are_capped_with_a_summary_line() {
        for (n, want_lines) in [(0, 0), (1, 1), (100, 100), (101, 101), (5000, 101)] {
            let r = response("u", &verdict_of(n, Action::Warn));
            let w = r.warnings.unwrap_or_default();
            assert_eq!(w.len(), want_lines, "{n}");
            if n > MAX_RESPONSE_FINDINGS {
                assert_eq!(w[100], format!("… and {} more violations", n - 100));
                assert!(w[99].contains("volumeMounts[99]"));
            }
            assert!(w.iter().all(|l| l.len() < 256));
        }
    }

    #[test]
    fn denial_lines_are_capped_with_a_summary_line() {
        let r = response("u", &verdict_of(84_000, Action::Deny));
        assert!(!r.allowed);
        let lines: Vec<&str> = r.result.message.lines().collect();
        assert_eq!(lines.len(), 101);
        assert_eq!(lines[100], "… and 83900 more violations");
        assert!(lines.iter().all(|l| l.len() < 256));
        assert!(encode(r).len() < 64 * 1024);
        let r = response("u", &verdict_of(100, Action::Deny));
        assert_eq!(r.result.message.lines().count(), 100);
    }

    #[test]
    fn audit_entries_are_capped() {
        let r = response("u", &verdict_of(1000, Action::Audit));
        let a = &r.audit_annotations["violations"];
        assert_eq!(a.split(", ").count(), 101);
        assert!(a.ends_with("… and 900 more violations"));
    }

    #[test]
    fn allow_encodes_as_v1_review() {
        let v: serde_json::Value = serde_json::from_slice(&encode(allow("u1"))).unwrap();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], "u1");
        assert_eq!(v["response"]["allowed"], true);
    }
}
