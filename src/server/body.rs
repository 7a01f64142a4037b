//! Reading a request body: within `--max-body-bytes`, the body memory budget (its shares,
//! [`super::budget`]) and the body deadline; every refusal is answered and counted here.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;

use super::AppState;
use super::budget::{Refused, Reservation};
use super::conn::Peer;
use super::handlers::{overloaded, plain};

/// The whole body with its reservation, or the response already counted (a bad request or
/// a shed one).
pub(crate) async fn read_body(
    request: axum::extract::Request,
    st: &AppState,
    deadline: Duration,
) -> Result<(Bytes, Reservation), Response> {
    let limit = st.max_body_bytes;
    // Taking the request whole (not a HeaderMap extractor) avoids cloning the headers.
    let (parts, body) = request.into_parts();
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
        st.metrics.bad_request("too_large");
        return Err(res);
    }
    let declared = declared.map(|n| n as usize);
    let peer = parts.extensions.get::<Peer>().map(|p| p.0);
    if let Some(why) = st.budget.refuse_at_once(peer, declared) {
        let mut res = refused(st, why);
        if expects_continue {
            // No 100 Continue was sent: the body never comes, the connection can stay.
            res.headers_mut().remove(header::CONNECTION);
        }
        return Err(res);
    }
    let mut reservation = st.budget.body(peer, declared);
    let read = read_frames(body, st, &mut reservation, declared);
    match tokio::time::timeout(deadline, read).await {
        Err(_) => {
            st.metrics.shed("body_timeout");
            let mut res = plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received within the body timeout (--body-timeout, ?timeout=)",
            );
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(res)
        }
        Ok(Ok(bytes)) => {
            reservation.finished();
            Ok((bytes, reservation))
        }
        Ok(Err(res)) => Err(res),
    }
}

/// The body's frames into one buffer, each reserved before it is kept; stops at the body's
/// end, at `--max-body-bytes`, or when the budget refuses or evicts it.
async fn read_frames(
    mut body: Body,
    st: &AppState,
    reservation: &mut Reservation,
    declared: Option<usize>,
) -> Result<Bytes, Response> {
    let limit = st.max_body_bytes;
    let ticket = reservation
        .ticket()
        .expect("a body reservation has a ticket");
    // Reserved as it arrives, so a body declared and never sent holds (almost) nothing.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            biased;
            _ = ticket.evicted() => return Err(refused(st, Refused::Evicted)),
            f = body.frame() => f,
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            st.metrics.bad_request("unreadable");
            plain(
                StatusCode::BAD_REQUEST,
                format!("could not read request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        ticket.received(data.len());
        let len = buf.len() + data.len();
        if len > limit {
            st.metrics.bad_request("too_large");
            return Err(too_large(limit));
        }
        if len > buf.capacity() {
            // The buffer grows by doubling (to the declared length at most); what is
            // reserved is its capacity, not just what has arrived.
            let want = len
                .max(buf.capacity() * 2)
                .max(16 * 1024)
                .min(declared.filter(|d| *d >= len).unwrap_or(limit));
            if let Err(why) = reservation.grow(want - buf.capacity()) {
                return Err(refused(st, why));
            }
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

/// The 503 for a body the budget refused, counted by reason.
fn refused(st: &AppState, why: Refused) -> Response {
    st.metrics.shed(why.reason());
    overloaded(match why {
        Refused::Full => {
            "request bodies in progress fill the memory budget (--body-memory-budget-bytes)"
        }
        Refused::PeerLimit => {
            "this client's request bodies fill its share of the memory budget (--body-memory-per-peer-bytes)"
        }
        Refused::Evicted => {
            "request body stalled (nothing for 500 ms, or under 256 KiB/s, after 1 s) while its memory was needed"
        }
    })
}

fn too_large(limit: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than {limit} bytes (--max-body-bytes)"),
    )
}

/// Reads and discards what is left of an oversized body (bounded in bytes and time), so an
/// HTTP/1.1 client that is still writing sees the 413 instead of a reset ("lingering close").
async fn discard(mut body: Body) {
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
