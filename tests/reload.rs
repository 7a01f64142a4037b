//! Live reconfiguration: certificate and policy rotated the way kubelet updates a mounted
//! Secret or ConfigMap (a `..data` symlink swapped by rename), observed over real TLS.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn certificate_rotation_by_symlink_swap() {
    let dir = tempfile::tempdir().unwrap();
    let first = volguard::certs::generate(&volguard::certs::dev_sans(), 30).unwrap();
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", first.cert_pem.as_bytes()),
            ("tls.key", first.key_pem.as_bytes()),
        ],
        1,
    );
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let mut server = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let second = volguard::certs::generate(&volguard::certs::dev_sans(), 30).unwrap();
    server.ca_pems = vec![first.ca_pem.clone(), second.ca_pem.clone()];

    let client = server.client(Version::Http1);
    let mut old_conn = client.connect().await.unwrap();
    assert_eq!(old_conn.peer_cert, leaf_der(&first.cert_pem));
    let seed = seed_create("r1");
    assert_eq!(
        old_conn
            .send("POST", "/validate", serde_json::to_vec(&seed).unwrap())
            .await
            .unwrap()
            .status,
        200
    );

    // A broken pair is rejected and the current certificate stays.
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", second.cert_pem.as_bytes()),
            ("tls.key", first.key_pem.as_bytes()),
        ],
        2,
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        client.connect().await.unwrap().peer_cert,
        leaf_der(&first.cert_pem)
    );
    assert!(
        server
            .metrics()
            .contains(r#"volguard_certificate_reloads_total{result="invalid"}"#)
    );

    // The good pair is picked up by new handshakes within a few seconds.
    kubelet_write(
        dir.path(),
        &[
            ("tls.crt", second.cert_pem.as_bytes()),
            ("tls.key", second.key_pem.as_bytes()),
        ],
        3,
    );
    assert!(
        client
            .eventually_serves(&second.cert_pem, Duration::from_secs(5))
            .await,
        "new certificate not served"
    );
    // The connection opened before the rotation was not dropped.
    let r = old_conn
        .send("POST", "/validate", serde_json::to_vec(&seed).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response"]["uid"], "r1");
}

#[tokio::test]
async fn policy_rotation_by_symlink_swap_and_invalid_policy_kept_out() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), &[("policy.yaml", b"mode: enforce\n")], 1);
    let path = dir.path().join("policy.yaml");
    let server = Server::start(&["--policy-file", path.to_str().unwrap()]);
    let client = server.client(Version::Http2);
    let seed = seed_create("p1");
    let allowed = |r: Reply| r.json()["response"]["allowed"].as_bool().unwrap();
    assert!(!allowed(client.review(&seed).await));
    let (c, seed_ref, srv) = (&client, &seed, &server);

    kubelet_write(dir.path(), &[("policy.yaml", b"mode: warn\n")], 2);
    assert!(
        eventually(Duration::from_secs(5), || async move {
            allowed(c.review(seed_ref).await)
        })
        .await,
        "new policy not applied"
    );
    assert!(server.metrics().contains("volguard_policy_generation 2"));

    // An invalid policy is rejected: the warn policy stays in force.
    kubelet_write(
        dir.path(),
        &[("policy.yaml", b"mode: warn\nrules:\n  no-such-rule: {}\n")],
        3,
    );
    assert!(
        eventually(Duration::from_secs(5), || async move {
            srv.metrics()
                .contains(r#"volguard_policy_reloads_total{result="invalid"} 1"#)
        })
        .await,
        "invalid policy not noticed"
    );
    let r = client.review(&seed).await.json();
    assert_eq!(r["response"]["allowed"], true);
    assert_eq!(r["response"]["warnings"].as_array().unwrap().len(), 1);
    assert!(server.metrics().contains("volguard_policy_generation 2"));

    // The edit reverted: the policy in force again, no new generation, and the log says
    // the file is valid again (five poll intervals to see it).
    kubelet_write(dir.path(), &[("policy.yaml", b"mode: warn\n")], 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(server.metrics().contains("volguard_policy_generation 2"));

    // A plain in-place write is seen too.
    std::fs::write(dir.path().join("..data/policy.yaml"), "mode: enforce\n").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async move {
            !allowed(c.review(seed_ref).await)
        })
        .await
    );
    let mut server = server;
    server.terminate();
    let log = server.stderr();
    let rejected = log.find("policy rejected; keeping the policy in force");
    let valid = log.find("policy valid again; it is the policy in force");
    assert!(
        rejected.is_some() && valid.is_some() && rejected < valid,
        "{log}"
    );
    // Logged once: the next change is an ordinary load.
    assert_eq!(log.matches("policy valid again").count(), 1, "{log}");
}

#[tokio::test]
async fn readiness_drops_on_sigterm_while_still_serving() {
    // With a long drain delay, /readyz turns 503 at SIGTERM while requests are still served.
    let mut server = Server::start(&["--drain-delay", "2"]);
    let (code, _) = admin_get(server.admin, "/readyz").unwrap();
    assert_eq!(code, 200);
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let client = server.client(Version::Http1);
    let admin = server.admin;
    assert!(
        eventually(Duration::from_secs(2), || async move {
            admin_get(admin, "/readyz")
                .map(|(c, b)| c == 503 && b.contains("shutting down"))
                .unwrap_or(false)
        })
        .await
    );
    let r = client.review(&seed_create("late")).await;
    assert_eq!(r.status, 200, "still serving during the drain delay");
    let status = server.terminate();
    assert!(status.success(), "{status}");
}
