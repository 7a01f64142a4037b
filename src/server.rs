//! The webhook's HTTP surface: a thin shell that decodes, calls the engine, encodes and
//! records metrics. No policy logic lives here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::policy::Action;
use crate::source::{PolicyStore, Readiness};
use crate::verdict::{self, Request, Skipped};
use crate::workload::POD_KINDS;

pub mod metrics;
pub mod review;
pub mod tls;

use metrics::{Metrics, RequestLabels, ViolationLabels};
use review::{API_VERSION, ReviewIn};

/// Default request body limit: the apiserver allows 3 MiB objects and an UPDATE carries two.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Upper bound on the time spent on one request when the apiserver gives no `?timeout=`.
pub const MAX_REQUEST_TIME: Duration = Duration::from_secs(30);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub policies: Arc<PolicyStore>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<Readiness>,
    pub max_body_bytes: usize,
    pub log_allowed: bool,
}

impl AppState {
    pub fn new(max_body_bytes: usize, log_allowed: bool) -> Self {
        let metrics = Arc::new(Metrics::new());
        AppState {
            policies: Arc::new(PolicyStore::new(metrics.clone())),
            metrics,
            ready: Arc::new(Readiness::default()),
            max_body_bytes,
            log_allowed,
        }
    }
}

/// The TLS port: `POST /validate`, plus `/livez` and `/readyz` for kubelet HTTPS probes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            close_when_draining,
        ))
        .with_state(state)
}

/// Once shutting down, HTTP/1.1 answers carry `Connection: close`, so no keep-alive
/// connection is left idle (and closed under a request already on its way) when the drain
/// starts. HTTP/2 connections get a GOAWAY from the graceful shutdown instead.
async fn close_when_draining(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h1 = req.version() <= axum::http::Version::HTTP_11;
    let mut res = next.run(req).await;
    if h1
        && st
            .ready
            .shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
    {
        res.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    res
}

/// The plain-HTTP admin port: `/livez`, `/readyz`, `/metrics`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.ready.check(&st.policies) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ValidateQuery {
    timeout: Option<String>,
}

fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut m = msg.into();
    m.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        m,
    )
        .into_response()
}

/// Parses a Go duration as the apiserver writes it in `?timeout=` (`10s`, `1m0s`, `500ms`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "h" => value * 3600.0,
            "m" => value * 60.0,
            "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "ns" => value / 1e9,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(secs).ok()?;
        rest = next;
    }
    Some(total)
}

/// Reads and discards what is left of an oversized body (bounded in bytes and time), so an
/// HTTP/1.1 client that is still writing sees the 413 instead of a reset ("lingering close").
async fn discard(mut body: Body) {
    use http_body_util::BodyExt;
    const MAX_DISCARD: usize = 64 * 1024 * 1024;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > MAX_DISCARD {
                break;
            }
        }
    })
    .await;
}

fn too_large(limit: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {limit} bytes (--max-body-bytes)"),
    )
}

async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Bytes, Response> {
    use http_body_util::{BodyExt, Limited};
    let limited = Limited::new(body, limit);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received within the request timeout",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Ok(Err(e)) => Err(plain(
            StatusCode::BAD_REQUEST,
            format!("could not read request body: {e}"),
        )),
    }
}

async fn validate(
    State(st): State<AppState>,
    Query(q): Query<ValidateQuery>,
    request: axum::extract::Request,
) -> Response {
    let start = Instant::now();
    // Taking the request whole (not a HeaderMap extractor) avoids cloning the headers.
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_body_bytes as u64) {
        st.metrics.bad_request("too_large");
        discard(body).await;
        return too_large(st.max_body_bytes);
    }
    let deadline = q
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(MAX_REQUEST_TIME)
        .min(MAX_REQUEST_TIME);
    let bytes = match read_body(body, st.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err(resp) => {
            st.metrics
                .bad_request(if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "unreadable"
                });
            return resp;
        }
    };
    let review: ReviewIn = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let (reason, what) = match e.classify() {
                serde_json::error::Category::Data => {
                    ("not_admission_review", "is not a valid AdmissionReview")
                }
                _ => ("malformed_json", "is not valid JSON"),
            };
            st.metrics.bad_request(reason);
            return plain(StatusCode::BAD_REQUEST, format!("request body {what}: {e}"));
        }
    };
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        st.metrics.bad_request("not_admission_review");
        return plain(
            StatusCode::BAD_REQUEST,
            format!(
                "request body is not an {API_VERSION} AdmissionReview (got apiVersion {:?}, kind {:?})",
                review.api_version, review.kind
            ),
        );
    }
    let Some(req) = review.request else {
        st.metrics.bad_request("no_request");
        return plain(StatusCode::BAD_REQUEST, "AdmissionReview has no request");
    };

    let loaded = st.policies.current();
    let kind = req.kind.kind.as_str();
    let operation = req.operation().as_str();
    // Other kinds, DELETE and CONNECT are the engine's call; subresources are the wire's.
    let verdict = match (&req.object, req.judged_subresource()) {
        (Some(obj), true) => verdict::evaluate(
            &loaded.policy,
            &Request {
                kind,
                namespace: req.namespace.as_deref().unwrap_or(""),
                operation: req.operation(),
                object: obj,
                old_object: req.old_object.as_ref(),
            },
        ),
        _ => verdict::Verdict::not_applicable(),
    };
    let response = review::response(&req.uid, &verdict);
    let body = review::encode(response);

    let outcome = match verdict.skipped {
        Some(Skipped::NotApplicable) => "skipped",
        Some(Skipped::ExemptNamespace) => "exempt",
        None => verdict.outcome(),
    };
    // Label values are static strings: no allocation per request. Kinds we do not judge are
    // counted as "other" so a client cannot grow the label set.
    let kind_label = POD_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other");
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            kind: kind_label,
            operation,
            verdict: outcome,
        })
        .inc();
    for f in &verdict.findings {
        st.metrics
            .violations
            .get_or_create(&ViolationLabels {
                rule: f.rule.name(),
                action: f.action.as_str(),
            })
            .inc();
    }
    let elapsed = start.elapsed();
    st.metrics.latency.observe(elapsed.as_secs_f64());
    if !verdict.findings.is_empty() || st.log_allowed {
        let rules: Vec<&str> = verdict.findings.iter().map(|f| f.rule.name()).collect();
        tracing::info!(
            uid = %req.uid,
            kind,
            namespace = req.namespace.as_deref().unwrap_or(""),
            name = req.name.as_deref().unwrap_or(""),
            operation,
            dry_run = req.dry_run.unwrap_or(false),
            verdict = outcome,
            denied = verdict.findings.iter().filter(|f| f.action == Action::Deny).count(),
            rules = %rules.join(","),
            policy_generation = loaded.generation,
            latency_us = elapsed.as_micros() as u64,
            "admission decision"
        );
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("10"), None);
    }
}
