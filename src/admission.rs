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

/// Encodes a verdict: denials in `status.message` (403 Forbidden), warnings one per finding,
/// audit findings as audit annotations.
pub fn response(uid: &str, verdict: &Verdict) -> AdmissionResponse {
    let mut r = allow(uid);
    let warnings: Vec<String> = verdict
        .with_action(Action::Warn)
        .map(|f| clamp(f.to_string(), 255))
        .collect();
    if !warnings.is_empty() {
        r.warnings = Some(warnings);
    }
    let audit: Vec<String> = verdict
        .with_action(Action::Audit)
        .map(|f| format!("[{}] {}", f.rule, f.path))
        .collect();
    if !audit.is_empty() {
        r.audit_annotations
            .insert("violations".to_owned(), audit.join(", "));
    }
    if !verdict.allowed {
        let lines: Vec<String> = verdict
            .with_action(Action::Deny)
            .map(|f| f.to_string())
            .collect();
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

    #[test]
    fn allow_encodes_as_v1_review() {
        let v: serde_json::Value = serde_json::from_slice(&encode(allow("u1"))).unwrap();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], "u1");
        assert_eq!(v["response"]["allowed"], true);
    }
}
