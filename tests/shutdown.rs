//! Graceful shutdown: a request in flight at SIGTERM completes; the process exits 0.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn request_in_flight_at_sigterm_completes() {
    let mut server = Server::start(&["--drain-delay", "0.5", "--shutdown-timeout", "10"]);
    let body = serde_json::to_vec(&seed_create("inflight")).unwrap();
    let mut tls = server.raw_http1().await;
    let head = format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    tls.write_all(&body[..half]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    // Past the drain delay: the server is now draining, our request still open.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    tls.write_all(&body[half..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response))
        .await
        .expect("response within 10 s")
        .ok();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let json_body = text.split_once("\r\n\r\n").unwrap().1;
    let v: Value =
        serde_json::from_str(json_body.trim()).unwrap_or_else(|e| panic!("{e}: {json_body}"));
    assert_eq!(v["response"]["uid"], "inflight");
    assert_eq!(v["response"]["allowed"], false);

    let status = server.terminate();
    assert!(status.success(), "{status}");
    // Stopped: nothing listens any more.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

/// One HTTP/1.1 keep-alive request on a new TLS connection: the response head, lower-cased.
async fn head_of(server: &Server, request: &[u8]) -> String {
    let mut tls = server.raw_http1().await;
    tls.write_all(request).await.unwrap();
    tls.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a response");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_owned()
}

#[tokio::test]
async fn http1_answers_carry_connection_close_once_draining() {
    // server::drain::close_when_draining, called by /validate and the TLS port's probes.
    let mut server = Server::start(&["--drain-delay", "3"]);
    let body = serde_json::to_vec(&seed_create("closing")).unwrap();
    let mut post = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    post.extend_from_slice(&body);
    let livez = b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let before = head_of(&server, &post).await;
    assert!(before.starts_with("http/1.1 200"), "{before}");
    assert!(!before.contains("connection: close"), "{before}");
    assert!(!head_of(&server, livez).await.contains("connection: close"));

    server.signal("TERM");
    let admin = server.admin;
    assert!(
        eventually(Duration::from_secs(2), || async move {
            admin_get(admin, "/readyz").is_some_and(|(c, _)| c == 503)
        })
        .await
    );
    let during = head_of(&server, &post).await;
    assert!(during.starts_with("http/1.1 200"), "{during}");
    assert!(during.contains("connection: close"), "{during}");
    let probe = head_of(&server, livez).await;
    assert!(probe.starts_with("http/1.1 200"), "{probe}");
    assert!(probe.contains("connection: close"), "{probe}");
    let status = server.terminate();
    assert!(status.success(), "{status}");
}
