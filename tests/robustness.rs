//! A server no input can stall: load shedding, body memory budget, connection timeouts, the
//! admin port's limits, signals and log escaping, against the real binary (small limits by
//! flag so each test is short).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// True when the server closes the stream within `timeout` (EOF or error).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, timeout: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_evaluation_queue_answers_503_at_once_and_reviews_stay_correct() {
    let server = Server::start(&[
        "--max-concurrent-evaluations",
        "1",
        "--max-queued-evaluations",
        "1",
        "--body-memory-budget-bytes",
        "200000000",
    ]);
    // 4 MB each (JSON padded with whitespace): decoding takes the one worker a while.
    let body = bytes::Bytes::from(padded_review("heavy", 4_000_000));
    let client = server.client(Version::Http2);
    let mut conns = Vec::new();
    for _ in 0..12 {
        conns.push(client.connect().await.unwrap());
    }
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let body = body.clone();
            tokio::spawn(
                async move { c.send("POST", "/validate?timeout=20s", body).await.unwrap() },
            )
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                let v = r.json();
                assert_eq!(v["response"]["uid"], "heavy");
                assert_eq!(v["response"]["allowed"], false, "{v}");
                ok += 1;
            }
            503 => {
                assert!(r.text().contains("overloaded"), "{}", r.text());
                shed += 1;
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(ok >= 1, "at least the first is judged");
    assert!(
        shed >= 1,
        "one worker, no queue: concurrent reviews are shed"
    );
    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"queue_full\"}"),
        shed as f64,
        "{m}"
    );
    // Afterwards a review is judged as usual.
    let r = server
        .client(Version::Http1)
        .review(&seed_create("after"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["response"]["allowed"], false);
}

#[tokio::test]
async fn body_memory_budget_refuses_new_bodies_at_once() {
    // One shared pool (no small-body reserve, no per-client cap: tests/body_budget.rs).
    let server = Server::start(&[
        "--body-memory-budget-bytes",
        "1000000",
        "--body-memory-small-reserve-bytes",
        "0",
        "--body-memory-per-peer-bytes",
        "0",
        "--max-body-bytes",
        "900000",
    ]);
    let big = padded_review("big", 800_000);
    let mut first = server.raw_http1().await;
    first
        .write_all(
            format!(
                "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    first.write_all(&big[..400_000]).await.unwrap();
    first.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 512 KiB of buffer reserved for what has arrived: a second body of 600 000 bytes does
    // not fit once its own buffer reaches 512 KiB, and is refused at once (the first one
    // is not evicted: it has been incomplete for less than a second).
    let mut second = server.raw_http1().await;
    second
        .write_all(
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 600000\r\n\r\n",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let _ = second.write_all(&padded_review("second", 600_000)).await;
    let _ = second.flush().await;
    let text = read_until_close(&mut second, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    first.write_all(&big[400_000..]).await.unwrap();
    first.flush().await.unwrap();
    let mut head = vec![0u8; 4096];
    let n = first.read(&mut head).await.unwrap();
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Released: the same second body now fits.
    let r = server
        .client(Version::Http1)
        .send("POST", "/validate", padded_review("second", 300_000))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["response"]["uid"], "second");
    let m = server.metrics();
    assert_eq!(
        metric(&m, "volguard_shed_requests_total{reason=\"body_memory\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "volguard_body_memory_bytes"), 0.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_do_not_stall_their_http2_connection() {
    let server = Server::start(&["--body-memory-budget-bytes", "10000000"]);
    let conn = server.client(Version::Http2).connect().await.unwrap();
    // Eight 4 MB bodies on one connection: two fit in the budget, the others are refused;
    // the refused streams' data must not block the accepted ones.
    let body = bytes::Bytes::from(padded_review("h2", 4_000_000));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut c = conn.fork().unwrap();
            let body = body.clone();
            tokio::spawn(async move { c.send("POST", "/validate", body).await.unwrap() })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a stream stalled")
            .unwrap();
        if r.status == 200 {
            assert_eq!(r.json()["response"]["uid"], "h2");
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    // And the connection still carries requests.
    let mut c = conn.fork().unwrap();
    let r = c
        .send(
            "POST",
            "/validate",
            serde_json::to_vec(&seed_create("next")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn expect_continue_over_the_limit_gets_413_without_100() {
    let server = Server::start(&["--max-body-bytes", "100000"]);
    let mut tls = server.raw_http1().await;
    tls.write_all(
        b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_until_close(&mut tls, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");

    // Within the limit: 100 Continue, then the answer.
    let body = serde_json::to_vec(&seed_create("cont")).unwrap();
    let mut tls = server.raw_http1().await;
    tls.write_all(
        format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    tls.write_all(&body).await.unwrap();
    let text = read_until_close(&mut tls, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn idle_and_half_open_connections_are_closed() {
    let server = Server::start(&["--header-read-timeout", "0.5", "--idle-timeout", "0.8"]);
    let limit = Duration::from_secs(4);

    // TLS handshake, then silence.
    let mut silent = server.raw_http1().await;
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, limit).await,
        "silent TLS connection kept"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    // Half an HTTP/2 preface.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut h2 = tls_connector(&server.ca_pems, vec![b"h2".to_vec()])
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    h2.flush().await.unwrap();
    assert!(closed_within(&mut h2, limit).await, "half preface kept");

    // Idle after a request, over HTTP/2 and HTTP/1.1 (keep-alive).
    for version in [Version::Http2, Version::Http1] {
        let mut conn = server.client(version).connect().await.unwrap();
        let r = conn
            .send(
                "POST",
                "/validate",
                serde_json::to_vec(&seed_create("idle")).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert!(
            !conn.is_closed(),
            "{version:?} closed right after a request"
        );
        assert!(
            eventually(limit, || std::future::ready(conn.is_closed())).await,
            "idle {version:?} connection kept"
        );
    }
}

#[test]
fn admin_port_closes_slow_and_idle_connections_and_keeps_answering() {
    use std::io::{Read, Write};
    let server = Server::start(&[
        "--header-read-timeout",
        "0.5",
        "--admin-max-connections",
        "4",
    ]);
    // Slowloris: one header byte every 100 ms.
    let mut slow = std::net::TcpStream::connect(server.admin).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in b"GET /livez HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed, "slowloris kept for {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(4));

    // A flood of idle connections beyond the cap: probes still get in, the idle ones go.
    let mut idle: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(server.admin).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(admin_get(server.admin, "/livez").map(|r| r.0), Some(200));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(2));
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0))
                || r.is_err() && r.as_ref().unwrap_err().kind() != std::io::ErrorKind::WouldBlock,
            "idle admin connection kept: {r:?}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_does_not_kill() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "mode: enforce\n").unwrap();
    // Polling every hour: only the signal can make the change visible in time.
    let mut server = Server::start(&[
        "--policy-file",
        policy.to_str().unwrap(),
        "--reload-interval",
        "3600",
    ]);
    let client = server.client(Version::Http1);
    assert_eq!(
        client.review(&seed_create("a")).await.json()["response"]["allowed"],
        false
    );
    std::fs::write(&policy, "mode: warn\n").unwrap();
    server.signal("HUP");
    let reloaded = eventually(Duration::from_secs(5), || async {
        client.review(&seed_create("b")).await.json()["response"]["allowed"] == true
    })
    .await;
    assert!(reloaded, "policy not re-read on SIGHUP");
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "SIGHUP killed the server"
    );
    assert_eq!(admin_get(server.admin, "/livez").map(|r| r.0), Some(200));
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(server.stderr().contains("SIGHUP"));
}

#[tokio::test]
async fn sigint_drains_like_sigterm() {
    let mut server = Server::start(&["--drain-delay", "0.5", "--shutdown-timeout", "10"]);
    let body = serde_json::to_vec(&seed_create("int")).unwrap();
    let mut tls = server.raw_http1().await;
    tls.write_all(
        format!(
            "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let half = body.len() / 2;
    tls.write_all(&body[..half]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal("INT");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    assert_eq!(
        admin_get(server.admin, "/readyz").map(|r| r.0),
        Some(503),
        "not draining after SIGINT"
    );
    tls.write_all(&body[half..]).await.unwrap();
    tls.flush().await.unwrap();
    let text = read_until_close(&mut tls, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"uid\":\"int\""), "{text}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exit after SIGINT");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn stop_is_bounded_by_drain_delay_and_shutdown_timeout() {
    let mut server = Server::start(&["--drain-delay", "0.3", "--shutdown-timeout", "1"]);
    // A request that never finishes: its body stops halfway and the client stays.
    let mut tls = server.raw_http1().await;
    tls.write_all(
        b"POST /validate?timeout=30s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"kind\":",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exit within the configured time");
    let took = started.elapsed();
    // drain delay 0.3 + handshake linger 0.5 + shutdown timeout 1, plus a little.
    assert!(
        took >= Duration::from_millis(1500),
        "did not wait for the request: {took:?}"
    );
    assert!(took < Duration::from_millis(3000), "took {took:?}");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn request_fields_cannot_forge_a_log_line() {
    let mut server = Server::start(&[]);
    let uid = "abc\nFORGED level=ERROR admission decision";
    let mut review = seed_create(uid);
    review["request"]["name"] = json!("n\r\nFORGED-NAME");
    let r = server.client(Version::Http1).review(&review).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response"]["uid"], uid);
    server.terminate();
    let log = server.stderr();
    assert!(log.contains("admission decision"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "forged line: {line:?}\n{log}");
    }
    assert!(log.contains(r#"abc\nFORGED"#), "{log}");
}

/// Bodies up to `--inline-evaluation-max-bytes` are judged on the thread that read them,
/// larger ones on the evaluation pool; 0 sends every body to the pool. Both give the same
/// answer.
#[tokio::test]
async fn small_bodies_are_judged_inline_and_large_ones_on_the_pool() {
    let small = bytes::Bytes::from(serde_json::to_vec(&seed_create("small")).unwrap());
    let large = bytes::Bytes::from(padded_review("large", 20_000));
    assert!(small.len() < 4096, "{}", small.len());
    for (limit, inline, pool) in [("4096", 1.0, 1.0), ("0", 0.0, 2.0)] {
        let server = Server::start(&["--inline-evaluation-max-bytes", limit]);
        let mut c = server.client(Version::Http1).connect().await.unwrap();
        for (uid, body) in [("small", &small), ("large", &large)] {
            let r = c.send("POST", "/validate", body.clone()).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(v["response"]["uid"], uid);
            assert_eq!(v["response"]["allowed"], false, "{v}");
        }
        let m = server.metrics();
        assert_eq!(
            metric(&m, "volguard_evaluations_total{executor=\"inline\"}"),
            inline,
            "limit {limit}: {m}"
        );
        assert_eq!(
            metric(&m, "volguard_evaluations_total{executor=\"pool\"}"),
            pool,
            "limit {limit}: {m}"
        );
    }
}
