//! The body memory budget shared fairly (issue 20): what the apiserver really sends is
//! accepted, a body that stays unfinished makes room for new ones, small reviews keep their
//! reserved share, one client address cannot take the whole budget, and a body that does
//! not arrive in time is dropped. Against the real binary, with small limits by flag.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A raw HTTP/1.1-over-TLS connection from the source address `from` (any 127.0.0.0/8
/// address is local on Linux: each one is another peer for the server).
async fn connect_from(server: &Server, from: [u8; 4]) -> Tls {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    let tcp = sock.connect(server.addr).await.unwrap();
    tls_connector(&server.ca_pems, vec![b"http/1.1".to_vec()])
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends the headers of a POST declaring `declared` bytes and the first `send` of `body`.
async fn start_post(tls: &mut Tls, body: &[u8], declared: usize, send: usize, close: bool) {
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..send]).await.unwrap();
    tls.flush().await.unwrap();
}

/// A whole review sent from `from` with `Connection: close`: the raw answer.
async fn post_from(server: &Server, from: [u8; 4], body: &[u8]) -> String {
    let mut tls = connect_from(server, from).await;
    start_post(&mut tls, body, body.len(), body.len(), true).await;
    read_until_close(&mut tls, Duration::from_secs(20)).await
}

/// A Pod near the apiserver's 3 MiB request limit (`MaxRequestBodyBytes`,
/// k8s.io/apiserver/pkg/server/config.go `NewConfig`: 3 * 1024 * 1024): the seed Pod with
/// a bounded emptyDir and a `kubectl.kubernetes.io/last-applied-configuration` annotation
/// that makes it `size` bytes of JSON.
fn pod_near_3_mib(size: usize, generation: &str) -> serde_json::Value {
    let mut pod = seed_pod("default", json!({"sizeLimit": "500Mi"}));
    let base = serde_json::to_vec(&pod).unwrap().len();
    let filler = "x".repeat(size - base - 120);
    pod["metadata"]["annotations"] = json!({
        "kubectl.kubernetes.io/last-applied-configuration": filler,
        "example.com/generation": generation,
    });
    pod
}

/// An UPDATE of an object near 3 MiB, as the apiserver sends it: the new object and the old
/// one in one review (`CreateAdmissionObjects` / `VersionedAttributes` in
/// k8s.io/apiserver/pkg/admission/plugin/webhook/generic, the review built by
/// `CreateV1AdmissionReview` in .../webhook/request/admissionreview.go), about 6 MiB.
fn update_near_3_mib(uid: &str) -> Vec<u8> {
    let size = 3 * 1024 * 1024 - 4096;
    let review = pod_review(
        uid,
        "UPDATE",
        "default",
        pod_near_3_mib(size, "2"),
        pod_near_3_mib(size, "1"),
    );
    serde_json::to_vec(&review).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_an_object_near_3_mib_is_accepted_over_http1_and_http2() {
    let server = Server::start(&[]);
    let body = bytes::Bytes::from(update_near_3_mib("big-update"));
    assert!(
        body.len() > 6 * 1024 * 1024 - 16 * 1024 && body.len() < 8 * 1024 * 1024,
        "{}",
        body.len()
    );
    for version in [Version::Http1, Version::Http2] {
        // Two at once on one connection (HTTP/2) or two connections: both fit the budget
        // and one client address's share of it.
        let client = server.client(version);
        let started = Instant::now();
        let (a, b) = tokio::join!(
            client.send("POST", "/validate?timeout=10s", body.clone()),
            client.send("POST", "/validate?timeout=10s", body.clone()),
        );
        for r in [a, b] {
            assert_eq!(r.status, 200, "{version:?}: {}", r.text());
            let v = r.json();
            assert_eq!(v["response"]["uid"], "big-update", "{v}");
            assert_eq!(v["response"]["allowed"], true, "{v}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
    let m = server.metrics();
    assert!(!m.contains("volguard_shed_requests_total{"), "{m}");
    assert_eq!(metric(&m, "volguard_body_memory_bytes"), 0.0, "{m}");
}

/// One server for the eviction test: 3 MB of budget, no reserve, no per-peer cap.
fn small_budget(extra: &[&str]) -> Server {
    let mut args = vec![
        "--body-memory-budget-bytes",
        "3000000",
        "--max-body-bytes",
        "2500000",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_makes_room_for_a_new_one_once_a_second_old() {
    let server = small_budget(&[
        "--body-memory-small-reserve-bytes",
        "0",
        "--body-memory-per-peer-bytes",
        "0",
    ]);
    let stalled_body = padded_review("stalled", 2_400_000);
    let mut stalled = server.raw_http1().await;
    // 2 000 000 of 2 400 000 bytes, then nothing: ~2 MiB of buffer reserved.
    start_post(&mut stalled, &stalled_body, 2_400_000, 2_000_000, false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // While it is young, a new body that does not fit is refused (it is not evicted).
    let client = server.client(Version::Http1);
    let r = client
        .send("POST", "/validate", padded_review("early", 1_500_000))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("memory budget"), "{}", r.text());

    // Once it is a second old (and has received nothing for 500 ms), the new body takes
    // its place.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let r = client
        .send("POST", "/validate", padded_review("fresh", 1_500_000))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["response"]["uid"], "fresh");
    let text = read_until_close(&mut stalled, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("stalled"), "{text}");

    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"body_evicted\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"body_memory\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "volguard_body_memory_bytes"), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_cannot_take_the_small_reviews_share() {
    // 3 MB: 1 MB only small bodies may use; large ones share 2 MB.
    let server = small_budget(&[
        "--body-memory-small-reserve-bytes",
        "1000000",
        "--body-memory-per-peer-bytes",
        "0",
    ]);
    let big = padded_review("held", 2_400_000);
    let mut held = server.raw_http1().await;
    // ~1 MiB reserved, then the next doubling (2 MiB) does not fit the large share: 503.
    start_post(&mut held, &big, 2_400_000, 1_000_000, false).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = server.raw_http1().await;
    start_post(&mut second, &big, 2_400_000, 1_100_000, false).await;
    let text = read_until_close(&mut second, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    // The large share is full; an ordinary review still has the reserve.
    let r = server
        .client(Version::Http2)
        .review(&seed_create("small"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["response"]["uid"], "small");
    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"body_memory\"}"),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_holds_at_most_its_share() {
    let server = Server::start(&[
        "--body-memory-budget-bytes",
        "4000000",
        "--body-memory-per-peer-bytes",
        "1500000",
        "--body-memory-small-reserve-bytes",
        "0",
        "--max-body-bytes",
        "2000000",
    ]);
    let body = padded_review("peer", 1_400_000);
    let mut held = connect_from(&server, [127, 0, 0, 2]).await;
    start_post(&mut held, &body, 1_400_000, 1_000_000, false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The same address again: over its share.
    let second = padded_review("second", 600_000);
    let text = post_from(&server, [127, 0, 0, 2], &second).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("--body-memory-per-peer-bytes"), "{text}");
    // Another address is not affected.
    let text = post_from(&server, [127, 0, 0, 3], &second).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"uid\":\"second\""), "{text}");
    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"peer_limit\"}"),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_dropped_and_counted() {
    let server = Server::start(&["--body-timeout", "1"]);
    let body = serde_json::to_vec(&seed_create("late")).unwrap();
    // No ?timeout=: --body-timeout applies.
    let mut tls = server.raw_http1().await;
    let started = Instant::now();
    start_post(&mut tls, &body, body.len(), 10, false).await;
    let text = read_until_close(&mut tls, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A shorter ?timeout= (the apiserver's timeoutSeconds) applies first.
    let mut tls = server.raw_http1().await;
    let started = Instant::now();
    let head = format!(
        "POST /validate?timeout=300ms HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    let text = read_until_close(&mut tls, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"body_timeout\"}"),
        2.0,
        "{m}"
    );
}
