//! The webhook's request handlers adapt HTTP to [`crate::admission`]: the body is read by
//! [`super::body`], decoded, judged and encoded here (inline or on the evaluation pool), and
//! what is counted and logged about the answer is [`super::record`]'s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::budget::{BudgetedBody, Reservation};
use super::executor::Size;
use super::record::{record, record_mutation};
use super::{AppState, MAX_REQUEST_TIME};
use crate::admission;

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

/// The body is read here ([`super::body`]: within its share of the memory budget and the
/// body deadline); decoding,
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
    let (bytes, reservation) =
        match super::body::read_body(request, st, timeout.min(st.body_timeout)).await {
            Ok(b) => b,
            Err(resp) => return resp,
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
pub(crate) fn overloaded(why: &str) -> Response {
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

pub(crate) fn plain(status: StatusCode, msg: impl Into<String>) -> Response {
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
