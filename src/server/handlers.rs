//! The webhook's request handlers: read the body, decode it with [`crate::admission`], ask
//! the engine, encode the answer, record metrics and a log line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::conn::{BudgetedBody, Reservation};
use super::executor::Size;
use super::metrics::{DowngradeLabels, MutationLabels, RequestLabels, ViolationLabels};
use super::{AppState, MAX_REQUEST_TIME};
use crate::admission::{self, RequestIn};
use crate::engine::rules::{Action, RuleId};
use crate::engine::verdict::{Skipped, Verdict};
use crate::engine::workload::POD_KINDS;

/// The `kind` label of a request: a static string (no allocation per request), and "other"
/// for kinds the engine does not judge, so a client cannot grow the label set.
fn kind_label(kind: &str) -> &'static str {
    POD_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

#[derive(Debug, Deserialize)]
pub struct ValidateQuery {
    timeout: Option<String>,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// `POST /validate`: the verdict.
    Validate,
    /// `POST /mutate` (opt-in, chart value `mutating.enabled`): the policy's `defaults` as a
    /// JSON patch; always allowed, the validating webhook judges the patched object.
    Mutate,
}

/// `POST /validate`.
pub async fn validate(
    State(st): State<AppState>,
    Query(q): Query<ValidateQuery>,
    request: axum::extract::Request,
) -> Response {
    serve(st, q, request, Endpoint::Validate).await
}

/// `POST /mutate`.
pub async fn mutate(
    State(st): State<AppState>,
    Query(q): Query<ValidateQuery>,
    request: axum::extract::Request,
) -> Response {
    serve(st, q, request, Endpoint::Mutate).await
}

/// The body is read here (within the memory budget and the request's deadline); decoding,
/// judging (or mutating) and encoding run here too for a small body (bounded work, cheaper
/// than two thread hand-offs), on the evaluation workers otherwise.
async fn serve(
    st: AppState,
    q: ValidateQuery,
    request: axum::extract::Request,
    endpoint: Endpoint,
) -> Response {
    let version = request.version();
    let mut res = answer(&st, q, request, endpoint).await;
    super::drain::close_when_draining(&st, version, &mut res);
    res
}

async fn answer(
    st: &AppState,
    q: ValidateQuery,
    request: axum::extract::Request,
    endpoint: Endpoint,
) -> Response {
    let start = Instant::now();
    let timeout = q
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(MAX_REQUEST_TIME)
        .min(MAX_REQUEST_TIME);
    let deadline = start + timeout;
    let (bytes, reservation) = match read_body(request, st, timeout).await {
        Ok(b) => b,
        Err((reason, resp)) => {
            // Load shedding is counted apart (volguard_shed_requests_total).
            if reason != "overloaded" {
                st.metrics.bad_request(reason);
            }
            return resp;
        }
    };
    if bytes.len() <= st.inline_evaluation_max_bytes {
        st.metrics.evaluations_inline.inc();
        return match evaluate(st, bytes, reservation, start, endpoint) {
            Ok(body) => reviewed(st, body),
            Err(msg) => plain(StatusCode::BAD_REQUEST, msg),
        };
    }
    let job_state = st.clone();
    let size = if bytes.len() <= SMALL_BODY {
        Size::Small
    } else {
        Size::Large
    };
    // The body waits in the queue in a slot the handler empties if it goes away (client
    // gone, deadline passed), so a dead job's memory is freed at once, not at dequeue.
    let input = Arc::new(Mutex::new(Some((bytes, reservation))));
    let slot = input.clone();
    let _free_if_abandoned = FreeOnDrop(input);
    let answer = st.executor.submit(deadline, size, move || {
        let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some((bytes, reservation)) => evaluate(&job_state, bytes, reservation, start, endpoint),
            None => Err("abandoned".to_owned()),
        }
    });
    let Ok(answer) = answer else {
        st.metrics.shed("queue_full");
        return overloaded("too many evaluations queued (--max-queued-evaluations)");
    };
    st.metrics.evaluations_pool.inc();
    let remaining = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(remaining, answer).await {
        Ok(Ok(Ok(body))) => reviewed(st, body),
        Ok(Ok(Err(msg))) => plain(StatusCode::BAD_REQUEST, msg),
        // Dropped by the worker (deadline passed in the queue) or not finished in time.
        Ok(Err(_)) | Err(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "evaluation not finished within the request timeout",
        ),
    }
}

/// A 200 with the encoded AdmissionReview. The answer's bytes count against the budget until
/// the connection has taken them (a client that does not read cannot pile answers up
/// unnoticed).
fn reviewed(st: &AppState, body: Bytes) -> Response {
    let mut held = st.budget.empty();
    held.force(body.len());
    let mut res = Response::new(Body::new(BudgetedBody::new(body, held)));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Empties the body slot when dropped.
struct FreeOnDrop(Arc<Mutex<Option<(Bytes, Reservation)>>>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        let taken = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
    }
}

/// Bodies up to this size are "small" evaluations: they go first, and one worker is kept
/// for them (an ordinary review is a few KiB; the apiserver's largest objects are MiBs).
const SMALL_BODY: usize = 256 * 1024;

/// Decode, judge, encode, record: runs on an evaluation worker.
fn evaluate(
    st: &AppState,
    bytes: Bytes,
    reservation: Reservation,
    start: Instant,
    endpoint: Endpoint,
) -> Result<Bytes, String> {
    // The body's reservation is kept until the answer is encoded: it stands for the body
    // (the decoded request borrows its strings from it, so it lives as long) and the
    // verdict built from it.
    let _reservation = reservation;
    let req = match admission::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            st.metrics.bad_request(e.reason());
            return Err(e.to_string());
        }
    };
    let loaded = st.policies.current();
    let body = match endpoint {
        Endpoint::Validate => {
            let verdict = req.judge(&loaded.policy);
            let body = admission::encode(admission::response(&req.uid, &verdict));
            record(st, &req, &verdict, loaded.generation, start.elapsed());
            body
        }
        Endpoint::Mutate => {
            let mutation = req.mutate(&loaded.policy);
            let body = admission::encode_mutation(&req.uid, &mutation);
            record_mutation(st, &req, &mutation, loaded.generation, start.elapsed());
            body
        }
    };
    // What is held until the client takes it is exactly the answer, not the spare capacity
    // of the buffer it was encoded into (copied here, so that buffer is freed by the thread
    // that allocated it).
    Ok(if body.capacity() - body.len() > body.len() / 8 {
        Bytes::copy_from_slice(&body)
    } else {
        Bytes::from(body)
    })
}

/// 503 with `Retry-After`, at once and without reading the body (and so, over HTTP/1.1,
/// closing the connection).
fn overloaded(why: &str) -> Response {
    let mut res = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("overloaded: {why}"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Counts a mutation and logs it when it added something (or `--log-allowed`).
fn record_mutation(
    st: &AppState,
    req: &RequestIn,
    mutation: &crate::engine::mutate::Mutation,
    generation: u64,
    elapsed: Duration,
) {
    let kind = &*req.kind.kind;
    let kind_label = kind_label(kind);
    let result = mutation.result();
    st.metrics
        .mutations
        .get_or_create(&MutationLabels {
            kind: kind_label,
            result,
        })
        .inc();
    st.metrics.latency.observe(elapsed.as_secs_f64());
    if !mutation.additions.is_empty() || st.log_allowed {
        let added: Vec<&str> = mutation.additions.iter().map(|a| a.path.as_str()).collect();
        tracing::info!(
            uid = &*req.uid,
            kind,
            namespace = req.namespace.as_deref().unwrap_or(""),
            name = req.name.as_deref().unwrap_or(""),
            operation = req.operation().as_str(),
            dry_run = req.dry_run.unwrap_or(false),
            result,
            added = added.join(",").as_str(),
            user = &*req.user_info.username,
            policy_generation = generation,
            latency_us = elapsed.as_micros() as u64,
            "mutation"
        );
    }
}

/// `GET /metrics` (admin port): OpenMetrics when the scraper's `Accept` asks for it,
/// otherwise Prometheus text 0.0.4.
pub async fn metrics(State(st): State<AppState>, headers: header::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = super::metrics::Format::negotiate(accept);
    st.metrics
        .evaluations_queued
        .set(st.executor.queued() as i64);
    st.metrics.body_memory_bytes.set(st.budget.used() as i64);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        st.metrics.encode_as(format),
    )
        .into_response()
}

/// Counts the decision and logs it when it has findings (or `--log-allowed`).
fn record(st: &AppState, req: &RequestIn, verdict: &Verdict, generation: u64, elapsed: Duration) {
    let kind = &*req.kind.kind;
    let operation = req.operation().as_str();
    let outcome = match verdict.skipped {
        Some(Skipped::NotApplicable) => "skipped",
        Some(Skipped::ExemptNamespace) => "exempt",
        None => verdict.outcome(),
    };
    let kind_label = kind_label(kind);
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            kind: kind_label,
            operation,
            verdict: outcome,
        })
        .inc();
    // Counted per (rule, action) first: one metric update per pair, not per finding (a
    // hostile Pod can carry 80k findings of one rule).
    let mut counts: Vec<(RuleId, Action, u64)> = Vec::new();
    for f in &verdict.findings {
        match counts
            .iter_mut()
            .find(|(r, a, _)| *r == f.rule && *a == f.action)
        {
            Some((_, _, n)) => *n += 1,
            None => counts.push((f.rule, f.action, 1)),
        }
    }
    for &(rule, action, n) in &counts {
        st.metrics
            .violations
            .get_or_create(&ViolationLabels {
                rule: rule.name(),
                action: action.as_str(),
            })
            .inc_by(n);
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
    // Request-derived fields go in as `&str` (the text format writes them quoted and
    // escaped), never with `%` (Display, raw): a uid with a newline cannot forge a line.
    if !verdict.findings.is_empty() || st.log_allowed {
        // Each rule once (with its count when it fired more than once), so the line stays
        // short whatever the Pod holds; the findings themselves are in the response.
        let mut rules: Vec<(RuleId, u64)> = Vec::new();
        for &(rule, _, n) in &counts {
            match rules.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, total)) => *total += n,
                None => rules.push((rule, n)),
            }
        }
        rules.sort_unstable();
        let rules: Vec<String> = rules
            .iter()
            .map(|(r, n)| match n {
                1 => r.name().to_owned(),
                n => format!("{}x{n}", r.name()),
            })
            .collect();
        tracing::info!(
            uid = &*req.uid,
            kind,
            namespace = req.namespace.as_deref().unwrap_or(""),
            name = req.name.as_deref().unwrap_or(""),
            operation,
            dry_run = req.dry_run.unwrap_or(false),
            verdict = outcome,
            denied = counts
                .iter()
                .filter(|(_, a, _)| *a == Action::Deny)
                .map(|(_, _, n)| n)
                .sum::<u64>(),
            waived,
            origin = verdict.origin.as_str(),
            user = &*req.user_info.username,
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

/// The whole body, within `--max-body-bytes`, the body memory budget and `deadline`, with
/// its reservation; otherwise the reason label and the response to send.
async fn read_body(
    request: axum::extract::Request,
    st: &AppState,
    deadline: Duration,
) -> Result<(Bytes, Reservation), (&'static str, Response)> {
    use http_body_util::BodyExt;
    let limit = st.max_body_bytes;
    // Taking the request whole (not a HeaderMap extractor) avoids cloning the headers.
    let (parts, mut body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // hyper sends `100 Continue` when the body is first read: a client that asked for it
    // gets the refusal instead, and sends no body at all.
    let expects_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|n| n > limit as u64) {
        let mut res = too_large(limit);
        if expects_continue {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else {
            discard(body).await;
        }
        return Err(("too_large", res));
    }
    let mut reservation = st.budget.empty();
    let declared = declared.map(|n| n as usize);
    if let Some(n) = declared
        && !reservation.grow(n)
    {
        st.metrics.shed("body_memory");
        return Err(("overloaded", body_memory_full()));
    }
    let read = async {
        let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                (
                    "unreadable",
                    plain(
                        StatusCode::BAD_REQUEST,
                        format!("could not read request body: {e}"),
                    ),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > limit {
                return Err(("too_large", too_large(limit)));
            }
            if len > reservation.bytes() {
                // Without a Content-Length the buffer grows by doubling; what is reserved is
                // its capacity, not just what has arrived.
                let want = len.max(reservation.bytes() * 2).max(64 * 1024).min(limit);
                if !reservation.grow(want - reservation.bytes()) {
                    st.metrics.shed("body_memory");
                    return Err(("overloaded", body_memory_full()));
                }
                buf.reserve_exact(want - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err((
            "unreadable",
            plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the request timeout",
            ),
        )),
        Ok(Ok(bytes)) => Ok((bytes, reservation)),
        Ok(Err(e)) => Err(e),
    }
}

fn body_memory_full() -> Response {
    overloaded("request bodies in progress fill the memory budget (--body-memory-budget-bytes)")
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
