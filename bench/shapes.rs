//! Large Pod shapes for the engine benchmark (`bench/engine.rs`) and the worst-case test
//! (`tests/worst_case.rs`): the shapes of issue 9 that used to take seconds (pairwise mount
//! checks, a scan per mount), as compact JSON the way the apiserver sends it.

#![allow(dead_code)]

use std::fmt::Write;

/// The apiserver's default request-body limit for JSON (`--max-request-bytes` is 3 MiB by
/// default); a Pod bigger than this never reaches a webhook.
pub const APISERVER_LIMIT: usize = 3 * 1024 * 1024;

fn pod(containers: &str, volumes: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"big","namespace":"default"}},"spec":{{"containers":[{containers}],"volumes":[{volumes}]}}}}"#
    )
}

fn container(mounts: &str) -> String {
    format!(
        r#"{{"name":"app","image":"busybox","resources":{{"limits":{{"memory":"1Gi","ephemeral-storage":"100Gi"}}}},"volumeMounts":[{mounts}]}}"#
    )
}

fn join(n: usize, item: impl Fn(&mut String, usize)) -> String {
    let mut s = String::with_capacity(n * 40);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        item(&mut s, i);
    }
    s
}

/// One container with `n` mounts of one volume: `/data`, then `/data/1` … (each nested in
/// the first: `n - 1` mount-path-nested findings). Formerly O(n²) in mount-path-nested and
/// mount-path-unique.
pub fn mounts_nested(n: usize) -> String {
    let mounts = join(n, |s, i| {
        if i == 0 {
            s.push_str(r#"{"name":"v","mountPath":"/data"}"#);
        } else {
            write!(s, r#"{{"name":"v","mountPath":"/data/{i}"}}"#).unwrap();
        }
    });
    pod(
        &container(&mounts),
        r#"{"name":"v","emptyDir":{"sizeLimit":"1Gi"}}"#,
    )
}

/// One container with `n` mounts of one volume, all at `/data` (or its spellings): `n - 1`
/// mount-path-unique denials.
pub fn mounts_duplicate(n: usize) -> String {
    let spellings = ["/data", "/data/", "data", "//data", "/data/."];
    let mounts = join(n, |s, i| {
        write!(
            s,
            r#"{{"name":"v","mountPath":"{}"}}"#,
            spellings[i % spellings.len()]
        )
        .unwrap();
    });
    pod(
        &container(&mounts),
        r#"{"name":"v","emptyDir":{"sizeLimit":"1Gi"}}"#,
    )
}

/// One container with `n` mounts naming no volume (`n` mount-volume-exists denials), and no
/// volumes.
pub fn mounts_no_volume(n: usize) -> String {
    let mounts = join(n, |s, i| {
        write!(s, r#"{{"name":"x{i}","mountPath":"/m/{i}"}}"#).unwrap();
    });
    pod(&container(&mounts), "")
}

/// `n` volumes, each mounted once by one container: no findings. Formerly O(n²) in
/// volume-unused.
pub fn volumes_all_mounted(n: usize) -> String {
    let volumes = join(n, |s, i| {
        write!(s, r#"{{"name":"v{i}","emptyDir":{{"sizeLimit":"1Mi"}}}}"#).unwrap();
    });
    let mounts = join(n, |s, i| {
        write!(s, r#"{{"name":"v{i}","mountPath":"/v/{i}"}}"#).unwrap();
    });
    pod(&container(&mounts), &volumes)
}

/// A StatefulSet with `n` volumeClaimTemplates, each mounted once: no findings. Formerly a
/// linear scan of the templates per mount.
pub fn claim_templates(n: usize) -> String {
    let templates = join(n, |s, i| {
        write!(s, r#"{{"metadata":{{"name":"c{i}"}}}}"#).unwrap();
    });
    let mounts = join(n, |s, i| {
        write!(s, r#"{{"name":"c{i}","mountPath":"/c/{i}"}}"#).unwrap();
    });
    format!(
        r#"{{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{{"name":"big","namespace":"default"}},"spec":{{"serviceName":"big","selector":{{"matchLabels":{{"app":"big"}}}},"template":{{"metadata":{{"labels":{{"app":"big"}}}},"spec":{{"containers":[{}]}}}},"volumeClaimTemplates":[{templates}]}}}}"#,
        container(&mounts)
    )
}

/// Wraps an object as an `admission.k8s.io/v1` AdmissionReview CREATE request.
pub fn review(kind: &str, object: &str) -> String {
    let (group, version) = match kind {
        "StatefulSet" => ("apps", "v1"),
        _ => ("", "v1"),
    };
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"group":"{group}","version":"{version}","kind":"{kind}"}},"resource":{{"group":"{group}","version":"{version}","resource":"x"}},"namespace":"default","operation":"CREATE","userInfo":{{}},"object":{object}}}}}"#
    )
}

/// One worst-case shape: name, kind, builder, and the findings it must give under the
/// default policy.
pub struct Shape {
    pub name: &'static str,
    pub kind: &'static str,
    pub build: fn(usize) -> String,
    /// (rule, count) the default policy finds for `n` elements.
    pub findings: fn(usize) -> Vec<(&'static str, usize)>,
    pub allowed: bool,
}

impl Shape {
    /// The largest element count whose AdmissionReview stays under the apiserver's limit
    /// (the size grows linearly, with digits; found by bisection).
    pub fn max_n(&self) -> usize {
        let fits = |n: usize| review(self.kind, &(self.build)(n)).len() <= APISERVER_LIMIT;
        let (mut lo, mut hi) = (1usize, 1usize << 18);
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid) { lo = mid } else { hi = mid }
        }
        lo
    }

    /// The shape's AdmissionReview with `n` elements.
    pub fn review(&self, n: usize) -> String {
        review(self.kind, &(self.build)(n))
    }
}

/// The shapes of issue 9 (size them with [`Shape::max_n`] to sit just under 3 MiB).
pub const WORST_CASES: &[Shape] = &[
    Shape {
        name: "mounts_nested_one_volume",
        kind: "Pod",
        build: mounts_nested,
        findings: |n| vec![("mount-path-nested", n - 1)],
        allowed: true,
    },
    Shape {
        name: "mounts_duplicate_one_volume",
        kind: "Pod",
        build: mounts_duplicate,
        // Every spelling is `/data`; the third of each five (`data`) is relative.
        findings: |n| {
            vec![
                ("mount-path-absolute", (n + 2) / 5),
                ("mount-path-unique", n - 1),
            ]
        },
        allowed: false,
    },
    Shape {
        name: "mounts_naming_no_volume",
        kind: "Pod",
        build: mounts_no_volume,
        findings: |n| vec![("mount-volume-exists", n)],
        allowed: false,
    },
    Shape {
        name: "statefulset_claim_templates",
        kind: "StatefulSet",
        build: claim_templates,
        findings: |_| Vec::new(),
        allowed: true,
    },
    Shape {
        name: "volumes_all_mounted",
        kind: "Pod",
        build: volumes_all_mounted,
        findings: |_| Vec::new(),
        allowed: true,
    },
];
