//! `/metrics` as a scraper sees it: Prometheus text 0.0.4 by default, OpenMetrics when asked
//! for, process metrics, and a latency histogram that resolves sub-millisecond decisions.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// GET /metrics with an optional Accept header: (content type, body).
fn scrape(admin: SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap();
    (content_type, body.to_owned())
}

/// Checks the rules of the Prometheus text format 0.0.4 that matter to its parser
/// (prometheus/common expfmt `TextParser`): every sample belongs to the family of the last
/// `# TYPE` line (for a counter the family name itself, `_total` included; for a histogram
/// `_bucket`, `_sum`, `_count`), HELP and TYPE come before the samples, a family appears once,
/// values are numbers, and no OpenMetrics-only line (`# EOF`, `# UNIT`) is present. Returns
/// family name -> type.
fn validate_prometheus_text(text: &str) -> BTreeMap<String, String> {
    let mut families = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            let name = parts.next().unwrap_or_default().to_owned();
            match keyword {
                "HELP" => {}
                "TYPE" => {
                    let ty = parts.next().unwrap_or_default().to_owned();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&ty.as_str()),
                        "{line}"
                    );
                    assert!(
                        families.insert(name.clone(), ty.clone()).is_none(),
                        "family {name} twice"
                    );
                    current = Some((name, ty));
                }
                _ => panic!("not a 0.0.4 line: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}"
        );
        let name = series.split('{').next().unwrap();
        let (family, ty) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        let ok = match ty.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_owned()),
            _ => name == family,
        };
        assert!(ok, "sample {name} under # TYPE {family} {ty}");
        if ty == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
    }
    families
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn prometheus_text_by_default_and_openmetrics_when_asked() {
    let server = Server::start(&[]);
    let r = server
        .client(Version::Http1)
        .review(&seed_create("m1"))
        .await;
    assert_eq!(r.status, 200);

    for accept in [
        None,
        Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"),
        Some("*/*"),
    ] {
        let (ct, body) = scrape(server.admin, accept);
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8", "{accept:?}");
        let families = validate_prometheus_text(&body);
        assert_eq!(families["volguard_admission_requests_total"], "counter");
        assert_eq!(families["volguard_admission_duration_seconds"], "histogram");
        assert_eq!(families["process_cpu_seconds_total"], "counter");
        for gauge in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
            "volguard_certificate_not_after_seconds",
        ] {
            assert_eq!(families[gauge], "gauge", "{gauge}");
        }
        assert_eq!(
            value(
                &body,
                r#"volguard_admission_requests_total{kind="Pod",operation="CREATE",verdict="deny"}"#
            ),
            1.0
        );
    }

    // What Prometheus sends when it prefers OpenMetrics.
    let (ct, body) = scrape(
        server.admin,
        Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ),
    );
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE volguard_admission_requests counter\n"));
    assert!(body.contains("volguard_admission_requests_total{"));
}

#[tokio::test]
async fn process_metrics_and_sub_millisecond_latency_buckets() {
    let server = Server::start(&[]);
    let client = server.client(Version::Http2);
    for i in 0..5 {
        let r = client.review(&seed_create(&format!("l{i}"))).await;
        assert_eq!(r.status, 200);
    }
    let (_, body) = scrape(server.admin, None);

    // Process metrics of the server process (not of this test).
    let rss = value(&body, "process_resident_memory_bytes");
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    let fds = value(&body, "process_open_fds");
    assert!(
        fds >= 3.0 && fds <= value(&body, "process_max_fds"),
        "{fds}"
    );
    let start = value(&body, "process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0 && start > now - 120.0,
        "{start} vs {now}"
    );
    assert!(value(&body, "process_cpu_seconds_total") >= 0.0);

    // The latency histogram has buckets from 50 µs to beyond 1 s, cumulative, holding the
    // five requests.
    let buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("volguard_admission_duration_seconds_bucket{le=\"")?;
            let (le, count) = rest.split_once("\"} ")?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                count.parse().unwrap(),
            ))
        })
        .collect();
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    for want in [5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1.0, f64::INFINITY] {
        assert!(bounds.contains(&want), "{want} not in {bounds:?}");
    }
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
    );
    assert_eq!(buckets.last().unwrap().1, 5.0);
    assert_eq!(
        value(&body, "volguard_admission_duration_seconds_count"),
        5.0
    );
}
