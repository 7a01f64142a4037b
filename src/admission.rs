//! The AdmissionReview wire format, in one place for every front-end: the webhook, `check`
//! (reviews saved to files) and the fuzz targets decode with [`decode`] and judge with
//! [`RequestIn::judge`], so subresources, operations and kinds are handled identically.
//! Responses are encoded as the apiserver expects them (kube's admission types).

use kube::core::admission::{AdmissionResponse, Operation as KubeOperation};
use kube::core::response::StatusSummary;
use kube::core::{GroupVersionKind, Status};
use serde::Deserialize;

use crate::engine::model::Object;
use crate::engine::policy::Policy;
use crate::engine::rules::Action;
use crate::engine::verdict::{self, Operation, Request, Verdict};

pub const API_VERSION: &str = "admission.k8s.io/v1";

/// `AdmissionReview` as sent by the apiserver, reduced to the fields we read. Everything else
/// (userInfo, options, managedFields, status, ...) is skipped while parsing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewIn {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub request: Option<RequestIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestIn {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    pub operation: KubeOperation,
    #[serde(default)]
    pub object: Option<Object>,
    #[serde(default)]
    pub old_object: Option<Object>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl RequestIn {
    pub fn operation(&self) -> Operation {
        match self.operation {
            KubeOperation::Create => Operation::Create,
            KubeOperation::Update => Operation::Update,
            KubeOperation::Delete => Operation::Delete,
            KubeOperation::Connect => Operation::Connect,
        }
    }

    /// Whether the engine judges this request: the object itself, or a Pod's
    /// `ephemeralcontainers` subresource (whose object is the whole Pod).
    pub fn judged_subresource(&self) -> bool {
        match self.sub_resource.as_deref() {
            None | Some("") => true,
            Some("ephemeralcontainers") => self.kind.kind == "Pod",
            Some(_) => false,
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

/// Decodes an `admission.k8s.io/v1` AdmissionReview that carries a request.
pub fn decode(bytes: &[u8]) -> Result<RequestIn, DecodeError> {
    let review: ReviewIn = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DecodeError::Invalid(e),
        _ => DecodeError::MalformedJson(e),
    })?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(DecodeError::WrongType {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    review.request.ok_or(DecodeError::NoRequest)
}

impl RequestIn {
    /// The engine's verdict on this request. Kinds the engine does not judge, DELETE and
    /// CONNECT are the engine's call; subresources other than a Pod's `ephemeralcontainers`
    /// are allowed here without looking.
    pub fn judge(&self, policy: &Policy) -> Verdict {
        match (&self.object, self.judged_subresource()) {
            (Some(object), true) => verdict::evaluate(
                policy,
                &Request {
                    kind: &self.kind.kind,
                    namespace: self.namespace.as_deref().unwrap_or(""),
                    operation: self.operation(),
                    object,
                    old_object: self.old_object.as_ref(),
                },
            ),
            _ => Verdict::not_applicable(),
        }
    }
}

/// Cuts a warning to the apiserver's 256-character limit (on a char boundary).
pub fn clamp(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
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
    let warnings = capped(Action::Warn, &|f| clamp(f.to_string(), 255));
    if !warnings.is_empty() {
        r.warnings = Some(warnings);
    }
    let audit = capped(Action::Audit, &|f| format!("[{}] {}", f.rule, f.path));
    if !audit.is_empty() {
        r.audit_annotations
            .insert("violations".to_owned(), audit.join(", "));
    }
    if !verdict.allowed {
        let lines = capped(Action::Deny, &|f| clamp(f.to_string(), 255));
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

    fn finding(i: usize, action: Action) -> verdict::Finding {
        verdict::Finding {
            rule: crate::engine::rules::RuleId::MountVolumeExists,
            action,
            path: format!("spec.containers[0].volumeMounts[{i}]"),
            message: format!("mount {i} names no volume"),
            preexisting: false,
        }
    }

    fn verdict_of(n: usize, action: Action) -> Verdict {
        Verdict {
            allowed: action != Action::Deny,
            findings: (0..n).map(|i| finding(i, action)).collect(),
            skipped: None,
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
