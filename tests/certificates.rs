//! Certificate validity seen from outside: the real binary with certificates that expire
//! soon, have expired, or are not valid yet, at start and at reload.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const DAY: Duration = Duration::from_secs(86_400);

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The value of an unlabelled sample in a metrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn bundle(not_before: SystemTime, not_after: SystemTime) -> volguard::certs::CertBundle {
    volguard::certs::generate_between(&volguard::certs::dev_sans(), not_before, not_after).unwrap()
}

fn tls_args(dir: &std::path::Path) -> (String, String) {
    (
        dir.join("tls.crt").to_str().unwrap().to_owned(),
        dir.join("tls.key").to_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_certificate_expiring_in_10_days_is_exported_and_warned_about() {
    let now = SystemTime::now();
    let not_after = now + 10 * DAY;
    let b = bundle(now - DAY, not_after);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &b.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &b.key_pem).unwrap();
    let (cert, key) = tls_args(dir.path());
    let mut server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    server.ca_pems = vec![b.ca_pem.clone()];
    // It serves (a client accepts the certificate for 10 more days) ...
    let r = server
        .client(Version::Http1)
        .review(&seed_create("e1"))
        .await;
    assert_eq!(r.status, 200);
    // ... exports its notAfter ...
    let m = server.metrics();
    assert_eq!(
        sample(&m, "volguard_certificate_not_after_seconds"),
        Some(unix(not_after) as f64),
        "{m}"
    );
    assert!(m.contains(r#"volguard_certificate_reloads_total{result="success"} 1"#));
    // ... and says, at start, that it expires soon.
    server.terminate();
    let log = server.stderr();
    let warning = log
        .lines()
        .find(|l| l.contains("expires in less than 14 days"))
        .unwrap_or_else(|| panic!("no expiry warning in:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains("days_left=9") || warning.contains("days_left=10"),
        "{warning}"
    );
    assert!(warning.contains(&cert), "{warning}");
}

#[test]
fn a_certificate_with_a_year_left_is_not_warned_about() {
    let now = SystemTime::now();
    let b = bundle(now - DAY, now + 365 * DAY);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &b.cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &b.key_pem).unwrap();
    let (cert, key) = tls_args(dir.path());
    let mut server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(sample(&server.metrics(), "volguard_certificate_not_after_seconds").is_some());
    server.terminate();
    let log = server.stderr();
    assert!(log.contains("volguard serving"), "{log}");
    assert!(!log.contains("expires in less than"), "{log}");
}

/// Runs `volguard serve` with `cert`/`key` and expects it to exit by itself: (code, stderr).
fn serve_expecting_exit(cert: &str, key: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_volguard"))
        .args(["serve", "--tls-cert", cert, "--tls-key", key])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .env_remove("VOLGUARD_POLICY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("volguard kept running with an unusable certificate");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

/// A certificate no client accepts is refused at start with the date: exit 2 before
/// listening, so the Pod never turns ready with it.
#[test]
fn an_expired_or_future_certificate_is_refused_at_start() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = tls_args(dir.path());

    let expired = bundle(now - 30 * DAY, now - DAY);
    std::fs::write(&cert, &expired.cert_pem).unwrap();
    std::fs::write(&key, &expired.key_pem).unwrap();
    let (code, err) = serve_expecting_exit(&cert, &key);
    assert_eq!(code, Some(2), "{err}");
    let want_date = volguard::server::tls::rfc3339(unix(now - DAY));
    assert!(
        err.contains(&format!(
            "error: {cert}: the certificate expired at {want_date}"
        )),
        "{err}"
    );

    let future = bundle(now + DAY, now + 30 * DAY);
    std::fs::write(&cert, &future.cert_pem).unwrap();
    std::fs::write(&key, &future.key_pem).unwrap();
    let (code, err) = serve_expecting_exit(&cert, &key);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the certificate is not valid before"), "{err}");
}

/// Rotation to an expired pair is refused (the current pair stays and the refusal is counted);
/// a pair that is not valid yet is refused, then served once its notBefore has passed,
/// without another change to the files.
#[tokio::test]
async fn reload_refuses_expired_and_waits_for_not_yet_valid_certificates() {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    let first = bundle(now - DAY, now + 30 * DAY);
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", first.cert_pem.as_bytes()),
            ("tls.key", first.key_pem.as_bytes()),
        ],
        1,
    );
    let (cert, key) = tls_args(dir.path());
    let mut server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let expired = bundle(now - 30 * DAY, now - DAY);
    server.ca_pems = vec![first.ca_pem.clone()];
    let client = server.client(Version::Http1);
    let first_not_after = unix(now + 30 * DAY) as f64;

    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", expired.cert_pem.as_bytes()),
            ("tls.key", expired.key_pem.as_bytes()),
        ],
        2,
    );
    let srv = &server;
    assert!(
        eventually(Duration::from_secs(5), || async move {
            srv.metrics()
                .contains(r#"volguard_certificate_reloads_total{result="expired"} 1"#)
        })
        .await,
        "{}",
        server.metrics()
    );
    assert_eq!(
        client.connect().await.unwrap().peer_cert,
        leaf_der(&first.cert_pem)
    );
    let m = server.metrics();
    assert_eq!(
        sample(&m, "volguard_certificate_not_after_seconds"),
        Some(first_not_after)
    );
    assert!(
        m.contains(r#"volguard_certificate_reloads_total{result="success"} 1"#),
        "{m}"
    );

    // notBefore 6 s from now: refused first, served once valid.
    let future = bundle(SystemTime::now() + Duration::from_secs(6), now + 60 * DAY);
    let client = Client {
        addr: server.addr,
        roots: vec![first.ca_pem.clone(), future.ca_pem.clone()],
        version: Version::Http1,
    };
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", future.cert_pem.as_bytes()),
            ("tls.key", future.key_pem.as_bytes()),
        ],
        3,
    );
    assert!(
        eventually(Duration::from_secs(3), || async move {
            srv.metrics()
                .contains(r#"volguard_certificate_reloads_total{result="not_yet_valid"} 1"#)
        })
        .await,
        "{}",
        server.metrics()
    );
    assert!(
        client
            .eventually_serves(&future.cert_pem, Duration::from_secs(15))
            .await,
        "the certificate was not served once valid"
    );
    let m = server.metrics();
    assert_eq!(
        sample(&m, "volguard_certificate_not_after_seconds"),
        Some(unix(now + 60 * DAY) as f64)
    );
    assert!(
        m.contains(r#"volguard_certificate_reloads_total{result="success"} 2"#),
        "{m}"
    );
    server.terminate();
    let log = server.stderr();
    assert!(
        log.contains("new TLS certificate refused; keeping the current one"),
        "{log}"
    );
    assert!(log.contains("the certificate expired at"), "{log}");
}

/// A certificate that expires while being served (its rotation never came) turns readiness
/// 503 with the reason and logs an error; a valid rotation makes the replica ready again.
#[tokio::test]
async fn a_certificate_expiring_while_served_turns_readiness_off() {
    let dir = tempfile::tempdir().unwrap();
    let short = bundle(
        SystemTime::now() - DAY,
        SystemTime::now() + Duration::from_secs(6),
    );
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", short.cert_pem.as_bytes()),
            ("tls.key", short.key_pem.as_bytes()),
        ],
        1,
    );
    let (cert, key) = tls_args(dir.path());
    let mut server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    let admin = server.admin;
    assert!(
        eventually(Duration::from_secs(15), || async move {
            admin_get(admin, "/readyz")
                == Some((503, "not ready: TLS certificate expired\n".to_owned()))
        })
        .await,
        "{:?}",
        admin_get(admin, "/readyz")
    );

    let renewed = bundle(SystemTime::now() - DAY, SystemTime::now() + 30 * DAY);
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", renewed.cert_pem.as_bytes()),
            ("tls.key", renewed.key_pem.as_bytes()),
        ],
        2,
    );
    assert!(
        eventually(Duration::from_secs(5), || async move {
            admin_get(admin, "/readyz").is_some_and(|r| r.0 == 200)
        })
        .await
    );
    server.terminate();
    let log = server.stderr();
    assert!(
        log.contains("the TLS certificate in use has EXPIRED"),
        "{log}"
    );
}
