//! The webhook's request handlers: read the body, decode it with [`crate::admission`], ask
//! the engine, encode the answer, record metrics and a log line.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::metrics::{DowngradeLabels, MutationLabels, RequestLabels, ViolationLabels};
use super::{AppState, MAX_REQUEST_TIME};
use crate::admission::{self, RequestIn};
use crate::engine::rules::Action;
use crate::engine::verdict::{Skipped, Verdict};
use crate::engine::workload::POD_KINDS;

#[derive(Debug, Deserialize)]
pub struct ValidateQuery {
    timeout: Option<String>,
}

/// `POST /validate`.
pub async fn validate(
    State(st): State<AppState>,
    Query(q): Query<ValidateQuery>,
    request: axum::extract::Request,
) -> Response {
    let start = Instant::now();
    let deadline = q
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(MAX_REQUEST_TIME)
        .min(MAX_REQUEST_TIME);
    let bytes = match read_body(request, st.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err((reason, resp)) => {
            st.metrics.bad_request(reason);
            return resp;
        }
    };
    let req = match admission::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            st.metrics.bad_request(e.reason());
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let loaded = st.policies.current();
    let verdict = req.judge(&loaded.policy);
    let body = admission::encode(admission::response(&req.uid, &verdict));
    record(&st, &req, &verdict, loaded.generation, start.elapsed());
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /mutate` (opt-in, chart value `mutating.enabled`): the policy's `defaults` as a
/// JSON patch. Always allowed; the validating webhook judges the patched object.
pub async fn mutate(
    State(st): State<AppState>,
    Query(q): Query<ValidateQuery>,
    request: axum::extract::Request,
) -> Response {
    let start = Instant::now();
    let deadline = q
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(MAX_REQUEST_TIME)
        .min(MAX_REQUEST_TIME);
    let bytes = match read_body(request, st.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err((reason, resp)) => {
            st.metrics.bad_request(reason);
            return resp;
        }
    };
    let req = match admission::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            st.metrics.bad_request(e.reason());
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let loaded = st.policies.current();
    let mutation = req.mutate(&loaded.policy);
    let body = admission::encode_mutation(&req.uid, &mutation);
    let kind = req.kind.kind.as_str();
    let kind_label = POD_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other");
    let result = mutation.result();
    st.metrics
        .mutations
        .get_or_create(&MutationLabels {
            kind: kind_label,
            result,
        })
        .inc();
    let elapsed = start.elapsed();
    st.metrics.latency.observe(elapsed.as_secs_f64());
    if !mutation.additions.is_empty() || st.log_allowed {
        let added: Vec<&str> = mutation.additions.iter().map(|a| a.path.as_str()).collect();
        tracing::info!(
            uid = %req.uid,
            kind,
            namespace = req.namespace.as_deref().unwrap_or(""),
            name = req.name.as_deref().unwrap_or(""),
            operation = req.operation().as_str(),
            dry_run = req.dry_run.unwrap_or(false),
            result,
            added = %added.join(","),
            user = %req.user_info.username,
            policy_generation = loaded.generation,
            latency_us = elapsed.as_micros() as u64,
            "mutation"
        );
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /metrics` (admin port): OpenMetrics when the scraper's `Accept` asks for it,
/// otherwise Prometheus text 0.0.4.
pub async fn metrics(State(st): State<AppState>, headers: header::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = super::metrics::Format::negotiate(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        st.metrics.encode_as(format),
    )
        .into_response()
}

/// Counts the decision and logs it when it has findings (or `--log-allowed`).
fn record(st: &AppState, req: &RequestIn, verdict: &Verdict, generation: u64, elapsed: Duration) {
    let kind = req.kind.kind.as_str();
    let operation = req.operation().as_str();
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
    let waived = verdict.downgraded().count();
    if waived > 0 {
        st.metrics
            .controller_downgrades
            .get_or_create(&DowngradeLabels {
                kind: kind_label,
                origin: verdict.origin.as_str(),
            })
            .inc();
    }
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
            waived,
            origin = verdict.origin.as_str(),
            user = %req.user_info.username,
            rules = %rules.join(","),
            policy_generation = generation,
            latency_us = elapsed.as_micros() as u64,
            "admission decision"
        );
    }
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

/// The whole body, within `limit` bytes and `deadline`; otherwise the reason label and the
/// response to send.
async fn read_body(
    request: axum::extract::Request,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, (&'static str, Response)> {
    use http_body_util::{BodyExt, Limited};
    // Taking the request whole (not a HeaderMap extractor) avoids cloning the headers.
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        discard(body).await;
        return Err(("too_large", too_large(limit)));
    }
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err((
            "unreadable",
            plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the request timeout",
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(("too_large", too_large(limit)))
        }
        Ok(Err(e)) => Err((
            "unreadable",
            plain(
                StatusCode::BAD_REQUEST,
                format!("could not read request body: {e}"),
            ),
        )),
    }
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
