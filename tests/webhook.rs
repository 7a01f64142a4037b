//! The real binary over real TLS, HTTP/1.1 and HTTP/2, fed AdmissionReviews shaped as the
//! apiserver sends them.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn policy_server(policy: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).unwrap();
    let s = Server::start(&["--policy-file", path.to_str().unwrap()]);
    (s, dir)
}

fn response(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    v["response"].clone()
}

#[tokio::test]
async fn deny_warn_audit_over_http1_and_http2() {
    let server = Server::start(&[]);
    for version in [Version::Http1, Version::Http2] {
        let client = server.client(version);
        let r = client.review(&seed_create("uid-deny")).await;
        let want_alpn: &[u8] = if version == Version::Http1 {
            b"http/1.1"
        } else {
            b"h2"
        };
        assert_eq!(r.alpn.as_deref(), Some(want_alpn));
        let resp = response(&r);
        assert_seed_denied(&resp, "uid-deny");
        // Fixed: allowed, nothing to say (the projected token volume is mounted, so not unused).
        let ok = client
            .review(&pod_review(
                "uid-ok",
                "CREATE",
                "default",
                seed_pod("default", json!({"sizeLimit": "500Mi"})),
                Value::Null,
            ))
            .await;
        let resp = response(&ok);
        assert_eq!(resp["uid"], "uid-ok");
        assert_eq!(resp["allowed"], true);
        assert!(resp.get("warnings").is_none(), "{resp}");
    }

    // warn mode: allowed with one warning per violation
    let (warn, _d) = policy_server("mode: warn\n");
    let resp = response(&warn.client(Version::Http1).review(&seed_create("u")).await);
    assert_eq!(resp["allowed"], true);
    let warnings = resp["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("[emptydir-size-limit-required] spec.volumes[0].emptyDir:")
    );
    assert!(warnings[0].as_str().unwrap().len() < 256);

    // audit mode: allowed, audit annotation, no warnings
    let (audit, _d2) = policy_server("mode: audit\n");
    let resp = response(&audit.client(Version::Http2).review(&seed_create("u")).await);
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none());
    assert_eq!(
        resp["auditAnnotations"]["violations"],
        "[emptydir-size-limit-required] spec.volumes[0].emptyDir"
    );
    let m = audit.metrics();
    assert!(
        m.contains(
            r#"volguard_admission_requests_total{kind="Pod",operation="CREATE",verdict="audit"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"volguard_violations_total{rule="emptydir-size-limit-required",action="audit"} 1"#
        ),
        "{m}"
    );
}

#[tokio::test]
async fn exempt_namespace_non_pod_kinds_delete_and_dry_run() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let resp = response(
        &c.review(&pod_review(
            "u1",
            "CREATE",
            "kube-system",
            seed_pod("kube-system", json!({})),
            Value::Null,
        ))
        .await,
    );
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none());

    let svc = json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "s", "namespace": "default"},
                     "spec": {"ports": [{"port": 80}]}});
    let resp = response(
        &c.review(&review(
            "u2",
            ("", "v1", "Service"),
            "CREATE",
            "default",
            svc,
            Value::Null,
        ))
        .await,
    );
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["uid"], "u2");

    // DELETE carries the old object only; allowed at once.
    let del = review(
        "u3",
        ("", "v1", "Pod"),
        "DELETE",
        "default",
        Value::Null,
        seed_pod("default", json!({})),
    );
    let resp = response(&c.review(&del).await);
    assert_eq!(resp["allowed"], true);

    // dryRun is answered exactly the same way.
    let mut dry = seed_create("u4");
    dry["request"]["dryRun"] = json!(true);
    let resp = response(&c.review(&dry).await);
    assert_eq!(resp["allowed"], false);
}

#[tokio::test]
async fn workloads_are_judged_at_their_template_paths() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http2);
    let pod = seed_pod("default", json!({}));
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "scratch"}},
                 "template": {"metadata": {"labels": {"app": "scratch"}}, "spec": pod["spec"].clone()}}
    });
    let resp = response(
        &c.review(&review(
            "d1",
            ("apps", "v1", "Deployment"),
            "CREATE",
            "default",
            deployment.clone(),
            Value::Null,
        ))
        .await,
    );
    assert_eq!(resp["allowed"], false);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.template.spec.volumes[0].emptyDir")
    );

    let cron = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "default"},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": pod["spec"].clone()}}}}
    });
    let resp = response(
        &c.review(&review(
            "c1",
            ("batch", "v1", "CronJob"),
            "CREATE",
            "default",
            cron,
            Value::Null,
        ))
        .await,
    );
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("spec.jobTemplate.spec.template.spec.volumes[0].emptyDir")
    );

    // A scale (replicas edit) of a Deployment created before the policy goes through, with a warning.
    let mut scaled = deployment.clone();
    scaled["spec"]["replicas"] = json!(5);
    let resp = response(
        &c.review(&review(
            "d2",
            ("apps", "v1", "Deployment"),
            "UPDATE",
            "default",
            scaled,
            deployment,
        ))
        .await,
    );
    assert_eq!(resp["allowed"], true, "{resp}");
    let w = resp["warnings"].as_array().unwrap();
    assert!(
        w[0].as_str()
            .unwrap()
            .contains("(present before this update)"),
        "{w:?}"
    );
}

#[tokio::test]
async fn update_only_new_violations_deny() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let old = seed_pod("default", json!({}));
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"]["tier"] = json!("web");
    let resp = response(
        &c.review(&pod_review(
            "u1",
            "UPDATE",
            "default",
            relabelled,
            old.clone(),
        ))
        .await,
    );
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["warnings"].as_array().unwrap().len(), 1);

    let mut worse = old.clone();
    worse["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = json!("/etc");
    let resp = response(
        &c.review(&pod_review("u2", "UPDATE", "default", worse, old))
            .await,
    );
    assert_eq!(resp["allowed"], false);
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("[mount-path-reserved] spec.containers[0].volumeMounts[0]:"),
        "{msg}"
    );
    assert!(!msg.contains("emptydir-size-limit-required"), "{msg}");
}

#[tokio::test]
async fn ephemeral_containers_subresource() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let old = seed_pod("default", json!({"sizeLimit": "500Mi"}));
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"] = json!([{
        "name": "debugger", "image": "busybox:1.36", "targetContainerName": "writer",
        "volumeMounts": [{"name": "scratch", "mountPath": "/debug"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"
    }]);
    let mut r = pod_review("e1", "UPDATE", "default", new.clone(), old.clone());
    r["request"]["subResource"] = json!("ephemeralcontainers");
    r["request"]["requestSubResource"] = json!("ephemeralcontainers");
    let resp = response(&c.review(&r).await);
    assert_eq!(resp["allowed"], false);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[mount-volume-exists] spec.ephemeralContainers[0].volumeMounts[0]:")
    );
    // Other subresources (status) are not judged.
    let mut s = pod_review("e2", "UPDATE", "default", new, old);
    s["request"]["subResource"] = json!("status");
    assert_eq!(response(&c.review(&s).await)["allowed"], true);
}

/// The seed Pod's spec as a Deployment template (no service-account volume: templates never
/// carry it), created before the policy: its emptyDir has no sizeLimit.
fn grandfathered_deployment() -> Value {
    let mut spec = seed_pod("default", json!({}))["spec"].clone();
    spec["volumes"] = json!([{"name": "temp-volume", "emptyDir": {}}]);
    for c in spec["containers"].as_array_mut().unwrap() {
        c["volumeMounts"].as_array_mut().unwrap().pop();
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "scratch"}},
                 "template": {"metadata": {"labels": {"app": "scratch"}}, "spec": spec}}
    })
}

fn warned_by_controller(resp: &Value) {
    assert_eq!(resp["allowed"], true, "{resp}");
    let w = resp["warnings"].as_array().unwrap();
    assert!(
        w.iter()
            .any(|w| w.as_str().unwrap().ends_with("(created by its controller)")),
        "{w:?}"
    );
    assert!(
        resp["auditAnnotations"]["controller-denials-waived"]
            .as_str()
            .unwrap()
            .contains("[emptydir-size-limit-required]"),
        "{resp}"
    );
}

/// Objects the built-in controllers create from a grandfathered workload (a rollout's
/// ReplicaSet, its Pods, a CronJob's Job) are admitted with a warning; the same objects from
/// a user, with the same ownerReference, are denied.
#[tokio::test]
async fn controller_created_objects_are_warned_user_copies_denied() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let deployment = grandfathered_deployment();
    let template = deployment["spec"]["template"].clone();

    // Pod from the ReplicaSet (replicaset-controller).
    let pod = owned_by(
        seed_pod("default", json!({})),
        "apps/v1",
        "ReplicaSet",
        "web-5d8f7c",
    );
    let from_controller = sent_by(
        pod_review("p1", "CREATE", "default", pod.clone(), Value::Null),
        &controller_user("replicaset-controller"),
        CONTROLLER_GROUPS,
    );
    warned_by_controller(&response(&c.review(&from_controller).await));
    let from_user = pod_review("p2", "CREATE", "default", pod, Value::Null);
    let resp = response(&c.review(&from_user).await);
    assert_eq!(resp["allowed"], false, "{resp}");

    // ReplicaSet of a rollout (deployment-controller; `kubectl rollout restart` too).
    let rs = owned_by(
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": "web-6c9f", "namespace": "default",
                            "annotations": {"deployment.kubernetes.io/revision": "2"}},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "scratch"}}, "template": template.clone()}}),
        "apps/v1",
        "Deployment",
        "web",
    );
    let rs_review = |uid: &str| {
        review(
            uid,
            ("apps", "v1", "ReplicaSet"),
            "CREATE",
            "default",
            rs.clone(),
            Value::Null,
        )
    };
    let resp = response(
        &c.review(&sent_by(
            rs_review("r1"),
            &controller_user("deployment-controller"),
            CONTROLLER_GROUPS,
        ))
        .await,
    );
    warned_by_controller(&resp);
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("[emptydir-size-limit-required] spec.template.spec.volumes[0].emptyDir:")
    );
    assert_eq!(
        response(&c.review(&rs_review("r2")).await)["allowed"],
        false
    );

    // Job of a CronJob schedule (cronjob-controller).
    let job = owned_by(
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "report-29012345", "namespace": "default"},
               "spec": {"template": template}}),
        "batch/v1",
        "CronJob",
        "report",
    );
    let job_review = |uid: &str| {
        review(
            uid,
            ("batch", "v1", "Job"),
            "CREATE",
            "default",
            job.clone(),
            Value::Null,
        )
    };
    warned_by_controller(&response(
        &c.review(&sent_by(
            job_review("j1"),
            &controller_user("cronjob-controller"),
            CONTROLLER_GROUPS,
        ))
        .await,
    ));
    assert_eq!(
        response(&c.review(&job_review("j2")).await)["allowed"],
        false
    );

    let m = server.metrics();
    for kind in ["Pod", "ReplicaSet", "Job"] {
        let line = format!(
            r#"volguard_controller_downgrades_total{{kind="{kind}",origin="controller"}} 1"#
        );
        assert!(m.contains(&line), "missing {line} in {m}");
    }

    // controllerObjects: enforce judges the controller's Pod like anyone's.
    let (strict, _d) = policy_server("controllerObjects: enforce\n");
    let resp = response(&strict.client(Version::Http2).review(&from_controller).await);
    assert_eq!(resp["allowed"], false, "{resp}");
}

/// A mirror Pod (a static Pod's API copy, created by its node) is never denied.
#[tokio::test]
async fn mirror_pods_are_admitted() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http2);
    let mut pod = seed_pod("default", json!({}));
    pod["metadata"]["name"] = json!("shared-scratch-node-1");
    pod["metadata"]["annotations"] =
        json!({"kubernetes.io/config.mirror": "3f2b1c", "kubernetes.io/config.source": "file"});
    pod["spec"]["nodeName"] = json!("node-1");
    let pod = owned_by(pod, "v1", "Node", "node-1");
    let mirror = sent_by(
        pod_review("m1", "CREATE", "default", pod.clone(), Value::Null),
        "system:node:node-1",
        &["system:nodes", "system:authenticated"],
    );
    let resp = response(&c.review(&mirror).await);
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .ends_with("(mirror of a static Pod)"),
        "{resp}"
    );
    // The same Pod, annotation and all, from a user: denied.
    let resp = response(
        &c.review(&pod_review("m2", "CREATE", "default", pod, Value::Null))
            .await,
    );
    assert_eq!(resp["allowed"], false, "{resp}");
    assert!(
        server
            .metrics()
            .contains(r#"volguard_controller_downgrades_total{kind="Pod",origin="mirror"} 1"#)
    );
}

/// An UPDATE that only shifts array indexes (a volume added in front of the unsized
/// emptyDir, containers reordered) introduces nothing.
#[tokio::test]
async fn update_that_shifts_indexes_introduces_nothing() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let old = grandfathered_deployment();
    let mut new = old.clone();
    let spec = &mut new["spec"]["template"]["spec"];
    spec["volumes"].as_array_mut().unwrap().insert(
        0,
        json!({"name": "config", "configMap": {"name": "web-config"}}),
    );
    spec["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "config", "mountPath": "/etc/web", "readOnly": true}));
    spec["containers"].as_array_mut().unwrap().reverse();
    let resp = response(
        &c.review(&review(
            "s1",
            ("apps", "v1", "Deployment"),
            "UPDATE",
            "default",
            new.clone(),
            old.clone(),
        ))
        .await,
    );
    assert_eq!(resp["allowed"], true, "{resp}");
    let w = resp["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].as_str()
            .unwrap()
            .starts_with("[emptydir-size-limit-required] spec.template.spec.volumes[1].emptyDir:")
            && w[0]
                .as_str()
                .unwrap()
                .ends_with("(present before this update)"),
        "{w:?}"
    );
    // A second unsized emptyDir is new: denied, and only it.
    new["spec"]["template"]["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "more", "emptyDir": {}}));
    new["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "more", "mountPath": "/more"}));
    let resp = response(
        &c.review(&review(
            "s2",
            ("apps", "v1", "Deployment"),
            "UPDATE",
            "default",
            new,
            old,
        ))
        .await,
    );
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(
        resp["status"]["message"],
        "[emptydir-size-limit-required] spec.template.spec.volumes[2].emptyDir: emptyDir \"more\" has no sizeLimit and the Pod has no ephemeral-storage limit; set sizeLimit (at most 10Gi)"
    );
}

/// `pods/resize` is judged like an UPDATE: lowering the memory limit below a memory
/// emptyDir's sizeLimit is denied; a resize that introduces nothing is allowed.
#[tokio::test]
async fn pod_resize_subresource() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    let with_limit = |limit: &str| {
        let mut pod = seed_pod("default", json!({"medium": "Memory", "sizeLimit": "1Gi"}));
        for ct in pod["spec"]["containers"].as_array_mut().unwrap() {
            ct["resources"] = json!({"limits": {"memory": limit}, "requests": {"memory": limit}});
        }
        pod
    };
    let resize = |uid: &str, old: &str, new: &str| {
        let mut r = pod_review(uid, "UPDATE", "default", with_limit(new), with_limit(old));
        r["request"]["subResource"] = json!("resize");
        r["request"]["requestSubResource"] = json!("resize");
        r
    };
    let resp = response(&c.review(&resize("z1", "1Gi", "256Mi")).await);
    assert_eq!(resp["allowed"], false, "{resp}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("[emptydir-memory-within-limits] spec.volumes[0].emptyDir.sizeLimit:"),
        "{resp}"
    );
    let resp = response(&c.review(&resize("z2", "1Gi", "2Gi")).await);
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp.get("warnings").is_none(), "{resp}");
}

async fn good_request_still_works(server: &Server) {
    for v in [Version::Http1, Version::Http2] {
        let r = server.client(v).review(&seed_create("after")).await;
        let resp = response(&r);
        assert_eq!(resp["uid"], "after");
        assert_eq!(resp["allowed"], false);
    }
}

#[tokio::test]
async fn bad_input_is_answered_and_the_server_keeps_serving() {
    let server = Server::start(&["--max-body-bytes", "65536", "--header-read-timeout", "1"]);
    let c1 = server.client(Version::Http1);
    let c2 = server.client(Version::Http2);

    let r = c1.send("POST", "/validate", "this is not json").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("is not valid JSON"), "{}", r.text());
    good_request_still_works(&server).await;

    let r = c2
        .send("POST", "/validate", r#"{"apiVersion":"v1","kind":"Pod"}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("not an admission.k8s.io/v1 AdmissionReview"),
        "{}",
        r.text()
    );
    good_request_still_works(&server).await;

    let r = c1
        .send(
            "POST",
            "/validate",
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("is not a valid AdmissionReview"),
        "{}",
        r.text()
    );
    good_request_still_works(&server).await;

    let r = c1
        .send(
            "POST",
            "/validate",
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no request"), "{}", r.text());

    // Over the limit, declared by Content-Length (HTTP/1.1) and streamed (HTTP/2).
    let mut big = seed_create("big");
    big["request"]["object"]["metadata"]["annotations"] = json!({"filler": "x".repeat(100_000)});
    let body = serde_json::to_vec(&big).unwrap();
    for c in [&c1, &c2] {
        let r = c.send("POST", "/validate", body.clone()).await;
        assert_eq!(r.status, 413, "{}", r.text());
        assert!(r.text().contains("larger than 65536 bytes"));
    }
    good_request_still_works(&server).await;

    // Deeply nested JSON where the decoder reads it (a template inside a template inside ...):
    // rejected by the parser's recursion limit, without a stack overflow.
    let deep = format!(
        "{}{}{}{}",
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"d","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"kind":"Deployment","spec":"#,
        r#"{"template":{"spec":"#.repeat(2_000),
        "{}",
        "}}".repeat(2_000) + "}}}"
    );
    let r = c1.send("POST", "/validate", deep).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("recursion limit"), "{}", r.text());
    good_request_still_works(&server).await;
    // Deep nesting inside a field the decoder skips is walked without recursion and ignored.
    let skipped = format!(
        "{}{}{}{}",
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"s","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"c","junk":"#,
        "[".repeat(20_000),
        "]".repeat(20_000),
        "}]}}}}"
    );
    let r = c2.send("POST", "/validate", skipped).await;
    assert_eq!(response(&r)["uid"], "s");
    good_request_still_works(&server).await;

    // Wrong method and path.
    assert_eq!(c1.send("GET", "/validate", "").await.status, 405);
    assert_eq!(c2.send("POST", "/convert", "{}").await.status, 404);
    good_request_still_works(&server).await;

    // A slow client that never finishes its headers is cut off.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = server.raw_http1().await;
        tls.write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        let start = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "connection still open after 10 s");
        let elapsed = start.elapsed();
        assert!(
            elapsed < Duration::from_secs(5),
            "cut off after {elapsed:?}"
        );
    }
    good_request_still_works(&server).await;

    let m = server.metrics();
    assert!(
        m.contains(r#"volguard_bad_requests_total{reason="malformed_json"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"volguard_bad_requests_total{reason="too_large"} 2"#),
        "{m}"
    );
}

#[tokio::test]
async fn health_endpoints_on_both_ports() {
    let server = Server::start(&[]);
    let c = server.client(Version::Http1);
    assert_eq!(c.send("GET", "/livez", "").await.status, 200);
    let r = c.send("GET", "/readyz", "").await;
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    let m = server.metrics();
    for name in [
        "volguard_build_info",
        "volguard_policy_generation 1",
        "volguard_policy_info{hash=",
        "volguard_admission_duration_seconds_bucket",
    ] {
        assert!(m.contains(name), "missing {name} in {m}");
    }
}

#[test]
fn invalid_policy_or_certificate_at_start_fails_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, "rules:\n  no-such-rule: {}\n").unwrap();
    let port = free_port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volguard"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--dev-cert-dir", dir.path().join("dev").to_str().unwrap()])
        .args(["--policy-file", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.yaml: rules.no-such-rule: unknown rule (known: mount-volume-exists"),
        "{err}"
    );
    // One clear line: no "kept generation 0" of a policy that never was in force.
    let about_policy: Vec<&str> = err.lines().filter(|l| l.contains("no-such-rule")).collect();
    assert_eq!(about_policy.len(), 1, "{err}");
    assert!(about_policy[0].starts_with("error: "), "{err}");
    assert!(!err.contains("kept_generation"), "{err}");

    let bad = dir.path().join("bad.crt");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volguard"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--tls-cert",
            bad.to_str().unwrap(),
            "--tls-key",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.crt: no PEM certificate found"), "{err}");
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ca, cert, key) = client_identity();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, &ca).unwrap();
    let server = Server::start(&["--client-ca", ca_path.to_str().unwrap()]);
    let name = || rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let request = b"GET /livez HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

    // Without a certificate the server refuses the handshake.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let refused = match tls_connector(&server.ca_pems, vec![b"http/1.1".to_vec()])
        .connect(name(), tcp)
        .await
    {
        Err(_) => true,
        Ok(mut tls) => {
            // TLS 1.3: the client learns of the rejection on its first read.
            let _ = tls.write_all(request).await;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.is_err() || buf.is_empty()
        }
    };
    assert!(refused, "a client without a certificate was served");

    // With one signed by the client CA it is served.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut tls = tls_connector_with_identity(&server.ca_pems, &cert, &key)
        .connect(name(), tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
