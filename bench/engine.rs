//! Engine time per object: `evaluate()` on a small Pod and on a Pod with 50 containers and
//! 100 volumes, plus decoding of the same objects from JSON (what the webhook pays first).
//!
//! `scaling/*`: `evaluate()` on 1k, 10k and 100k mounts (and claim templates, volumes), with
//! criterion's element throughput, so per-element time shows that growth is linear.
//! `worst_case_3mib/*`: issue 9's shapes at the apiserver's 3 MiB limit, the whole webhook
//! path (decode, judge, response, encode).

#[path = "shapes.rs"]
mod shapes;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

/// The allocator `volguard serve` runs with (src/main.rs), so the numbers are the webhook's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use volguard::admission;
use volguard::{Object, Policy, Request, evaluate};

fn small_pod() -> String {
    r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default"},
        "spec":{"containers":[
          {"name":"writer","image":"busybox","volumeMounts":[{"name":"temp-volume","mountPath":"/temp"}],
           "resources":{"limits":{"memory":"256Mi"}}},
          {"name":"reader","image":"busybox","volumeMounts":[{"name":"temp-volume","mountPath":"/storages/files"}],
           "resources":{"limits":{"memory":"256Mi"}}}],
        "volumes":[{"name":"temp-volume","emptyDir":{"sizeLimit":"500Mi"}}]}}"#
        .to_owned()
}

fn large_pod() -> String {
    let volumes: Vec<String> = (0..100)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"name":"v{i}","emptyDir":{{"sizeLimit":"{}Mi"}}}}"#, 100 + i),
            1 => format!(r#"{{"name":"v{i}","configMap":{{"name":"cm{i}"}}}}"#),
            2 => format!(r#"{{"name":"v{i}","persistentVolumeClaim":{{"claimName":"c{i}","readOnly":true}}}}"#),
            _ => format!(r#"{{"name":"v{i}","emptyDir":{{"medium":"Memory","sizeLimit":"1Mi"}}}}"#),
        })
        .collect();
    let containers: Vec<String> = (0..50)
        .map(|c| {
            let mut mounts: Vec<String> = [(2 * c) % 100, (2 * c + 1) % 100]
                .iter()
                .map(|v| format!(r#"{{"name":"v{v}","mountPath":"/data/{c}/v{v}","readOnly":true}}"#))
                .collect();
            // A few mistakes so findings are built, sorted and formatted too.
            if c % 10 == 0 {
                mounts.push(format!(r#"{{"name":"missing{c}","mountPath":"cache/{c}"}}"#));
            }
            format!(
                r#"{{"name":"c{c}","image":"app:{c}","volumeMounts":[{}],"resources":{{"limits":{{"memory":"512Mi","ephemeral-storage":"10Gi"}}}}}}"#,
                mounts.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"big","namespace":"default"}},"spec":{{"containers":[{}],"volumes":[{}]}}}}"#,
        containers.join(","),
        volumes.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    for (name, json) in [("small_pod", small_pod()), ("pod_50c_100v", large_pod())] {
        let obj: Object = serde_json::from_str(&json).unwrap();
        let req = Request::create("Pod", "default", &obj);
        // The large Pod has findings (missing volumes, relative paths) to sort and format.
        let v = evaluate(&policy, &req);
        eprintln!(
            "{name}: {} bytes, {} findings, allowed={}",
            json.len(),
            v.findings.len(),
            v.allowed
        );
        c.bench_function(&format!("evaluate/{name}"), |b| {
            b.iter(|| evaluate(&policy, black_box(&req)))
        });
        c.bench_function(&format!("decode+evaluate/{name}"), |b| {
            b.iter(|| {
                let obj: Object = serde_json::from_str(black_box(&json)).unwrap();
                let req = Request {
                    object: &obj,
                    ..req
                };
                evaluate(&policy, &req).allowed
            })
        });
    }
}

/// (group, kind, builder, element counts).
type ScalingCase = (
    &'static str,
    &'static str,
    fn(usize) -> String,
    &'static [usize],
);

fn scaling(c: &mut Criterion) {
    let policy = Policy::default();
    let cases: &[ScalingCase] = &[
        (
            "mounts_one_volume",
            "Pod",
            shapes::mounts_nested,
            &[1_000, 10_000, 100_000],
        ),
        (
            "mounts_no_volume",
            "Pod",
            shapes::mounts_no_volume,
            &[1_000, 10_000, 100_000],
        ),
        (
            "claim_templates",
            "StatefulSet",
            shapes::claim_templates,
            &[1_000, 39_000],
        ),
        (
            "volumes_all_mounted",
            "Pod",
            shapes::volumes_all_mounted,
            &[1_000, 23_000],
        ),
    ];
    for (name, kind, build, sizes) in cases {
        let mut g = c.benchmark_group(format!("scaling/{name}"));
        g.sample_size(10);
        for &n in *sizes {
            let json = build(n);
            let obj: Object = serde_json::from_str(&json).unwrap();
            let req = Request::create(kind, "default", &obj);
            let v = evaluate(&policy, &req);
            eprintln!(
                "scaling/{name}/{n}: {} bytes, {} findings",
                json.len(),
                v.findings.len()
            );
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(format!("{n}"), |b| {
                b.iter(|| evaluate(&policy, black_box(&req)).findings.len())
            });
        }
        g.finish();
    }
}

fn worst_case(c: &mut Criterion) {
    let policy = Policy::default();
    let mut g = c.benchmark_group("worst_case_3mib");
    g.sample_size(10);
    for shape in shapes::WORST_CASES {
        let n = shape.max_n();
        let body = shape.review(n);
        eprintln!(
            "worst_case_3mib/{}: n={n}, {} bytes",
            shape.name,
            body.len()
        );
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(shape.name, |b| {
            b.iter(|| {
                let req = admission::decode(black_box(body.as_bytes())).unwrap();
                let verdict = req.judge(&policy);
                admission::encode(admission::response(&req.uid, &verdict)).len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench, scaling, worst_case
}
criterion_main!(benches);
