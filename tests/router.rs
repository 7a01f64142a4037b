//! The webhook's HTTP contract, in process: `volguard::router` driven by tower's `oneshot`,
//! no socket, TLS or child process. Status codes (400, 404, 405, 413), the uid echoed, the
//! verdict as the apiserver reads it (status, warnings, audit annotations). What needs a
//! process (signals, TLS and its rotation, drain, connection limits) stays in `webhook.rs`,
//! `shutdown.rs`, `certificates.rs` and `robustness.rs`.
//!
//! The response shape follows the apiserver's reading of a webhook's answer
//! (`k8s.io/apiserver/pkg/admission/plugin/webhook/validating` `dispatcher.go`
//! `callHook`: `uid` must match, `status` becomes the error, `warnings` and `auditAnnotations`
//! are passed on).

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use clap::Parser;
use common::{assert_seed_denied, pod_review, seed_create, seed_pod};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use volguard::cli::{Cli, Command};
use volguard::server::{AppState, router};

/// The webhook router as `volguard serve FLAGS` builds it, with `policy` in force.
fn app(policy: &str, flags: &[&str]) -> (Router, AppState) {
    let args = ["volguard", "serve"].iter().chain(flags);
    let Command::Serve(serve) = Cli::parse_from(args).command else {
        unreachable!("parsed a serve command line")
    };
    let state = AppState::new(&serve.config()).expect("state builds");
    state
        .policies
        .apply_text(policy, "policy.yaml", "test")
        .expect("test policy is valid");
    (router(state.clone()), state)
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The `response` of the AdmissionReview answered.
    fn response(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text());
        assert_eq!(self.content_type, "application/json");
        let review: Value = serde_json::from_slice(&self.body).expect("a JSON review");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }
}

async fn send(app: &Router, method: Method, path: &str, body: Body, length: bool) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if length {
        let n = http_body::Body::size_hint(&body)
            .exact()
            .expect("a sized body");
        req = req.header(header::CONTENT_LENGTH, n);
    }
    let res = app
        .clone()
        .oneshot(req.body(body).unwrap())
        .await
        .expect("the router is infallible");
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        content_type,
        body,
    }
}

async fn post(app: &Router, body: impl Into<Vec<u8>>) -> Reply {
    send(
        app,
        Method::POST,
        "/validate?timeout=10s",
        Body::from(body.into()),
        true,
    )
    .await
}

async fn review(app: &Router, review: &Value) -> Reply {
    post(app, serde_json::to_vec(review).unwrap()).await
}

#[tokio::test]
async fn deny_answers_403_with_the_uid_echoed() {
    let (app, _) = app("{}", &[]);
    let resp = review(&app, &seed_create("uid-deny")).await.response();
    assert_seed_denied(&resp, "uid-deny");

    let fixed = pod_review(
        "uid-ok",
        "CREATE",
        "default",
        seed_pod("default", json!({"sizeLimit": "500Mi"})),
        Value::Null,
    );
    let resp = review(&app, &fixed).await.response();
    assert_eq!(resp["uid"], "uid-ok");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none(), "{resp}");
    assert!(resp.get("auditAnnotations").is_none(), "{resp}");
}

#[tokio::test]
async fn warn_mode_allows_with_warnings_under_the_apiserver_limit() {
    let (app, _) = app("mode: warn\n", &[]);
    let resp = review(&app, &seed_create("u-warn")).await.response();
    assert_eq!(resp["uid"], "u-warn");
    assert_eq!(resp["allowed"], true);
    let warnings = resp["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{resp}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("[emptydir-size-limit-required] spec.volumes[0].emptyDir:"),
        "{w}"
    );
    assert!(w.len() < 256, "{w}");
}

#[tokio::test]
async fn audit_mode_allows_with_an_audit_annotation_and_counts_it() {
    let (app, state) = app("mode: audit\n", &[]);
    let resp = review(&app, &seed_create("u-audit")).await.response();
    assert_eq!(resp["uid"], "u-audit");
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("warnings").is_none(), "{resp}");
    assert_eq!(
        resp["auditAnnotations"]["violations"],
        "[emptydir-size-limit-required] spec.volumes[0].emptyDir"
    );
    let m = state.metrics.encode();
    assert!(
        m.contains(
            r#"volguard_admission_requests_total{kind="Pod",operation="CREATE",verdict="audit"} 1"#
        ),
        "{m}"
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_with_the_reason() {
    let (app, _) = app("{}", &[]);
    for (body, says) in [
        ("this is not json", "is not valid JSON"),
        (
            r#"{"apiVersion":"v1","kind":"Pod"}"#,
            "not an admission.k8s.io/v1 AdmissionReview",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":5}}"#,
            "is not a valid AdmissionReview",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "no request",
        ),
    ] {
        let r = post(&app, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_declared_or_streamed() {
    let (app, _) = app("{}", &["--max-body-bytes", "65536"]);
    let mut big = seed_create("big");
    big["request"]["object"]["metadata"]["annotations"] = json!({"filler": "x".repeat(100_000)});
    let bytes = serde_json::to_vec(&big).unwrap();
    // Declared by Content-Length (refused before reading) and without one (cut while read,
    // as an HTTP/2 stream or a chunked body arrives).
    for length in [true, false] {
        let body = if length {
            Body::from(bytes.clone())
        } else {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures::stream::iter(chunks))
        };
        let r = send(&app, Method::POST, "/validate", body, length).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
        assert!(r.text().contains("larger than 65536 bytes"), "{}", r.text());
    }
    // And the next review is served.
    let resp = review(&app, &seed_create("after")).await.response();
    assert_eq!(resp["uid"], "after");
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_path_404() {
    let (app, _) = app("{}", &[]);
    let r = send(&app, Method::GET, "/validate", Body::empty(), false).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(&app, Method::POST, "/convert", Body::from("{}"), true).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&app, Method::PUT, "/mutate", Body::from("{}"), true).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn mutate_answers_a_patch_review_for_the_same_uid() {
    let (app, _) = app("defaults:\n  emptyDir: {diskSizeLimit: 1Gi}\n", &[]);
    let r = send(
        &app,
        Method::POST,
        "/mutate",
        Body::from(serde_json::to_vec(&seed_create("m-1")).unwrap()),
        true,
    )
    .await;
    let resp = r.response();
    assert_eq!(resp["uid"], "m-1");
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    assert!(resp["patch"].is_string(), "{resp}");
}
