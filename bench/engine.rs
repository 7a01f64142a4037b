//! Engine time per object: `evaluate()` on a small Pod and on a Pod with 50 containers and
//! 100 volumes, plus decoding of the same objects from JSON (what the webhook pays first).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use volguard::{Object, Operation, Policy, Request, evaluate};

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
        let req = Request {
            kind: "Pod",
            namespace: "default",
            operation: Operation::Create,
            object: &obj,
            old_object: None,
        };
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

criterion_group!(benches, bench);
criterion_main!(benches);
