//! Times issue 9's worst-case 3 MiB shapes through the webhook path, phase by phase
//! (release build: `cargo run --release --example worst_case_timing`). Numbers for
//! bench/README.md; the criterion bench `worst_case_3mib/*` measures the same end to end in
//! wall-clock time. Times here are the thread's mean on-CPU time per request.

#[path = "../bench/shapes.rs"]
mod shapes;

use std::time::Duration;

/// The allocator `volguard serve` runs with (src/main.rs), so the numbers are the webhook's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use volguard::Policy;
use volguard::admission;

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux): on a shared
/// machine wall-clock time mostly measures the wait for a core, CPU time does not.
fn cpu_now() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns: u64 = s.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

fn main() {
    let policy = Policy::default();
    println!(
        "| shape | n | findings | decode ms | judge ms | response+encode ms | total ms | response bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for shape in shapes::WORST_CASES {
        let n = shape.max_n();
        let body = shape.review(n);
        // Mean on-CPU time of each phase over RUNS runs (schedstat advances in scheduler
        // ticks, so a single short phase cannot be timed alone).
        const RUNS: u32 = 12;
        let req = admission::decode(body.as_bytes()).unwrap();
        let verdict = req.judge(&policy);
        let findings = verdict.findings.len();
        let out_len = admission::encode(admission::response(&req.uid, &verdict)).len();
        let t0 = cpu_now();
        for _ in 0..RUNS {
            std::hint::black_box(admission::decode(std::hint::black_box(body.as_bytes())).unwrap());
        }
        let t1 = cpu_now();
        for _ in 0..RUNS {
            std::hint::black_box(req.judge(&policy));
        }
        let t2 = cpu_now();
        for _ in 0..RUNS {
            std::hint::black_box(admission::encode(admission::response(&req.uid, &verdict)));
        }
        let t3 = cpu_now();
        let best = [
            (t1 - t0) / RUNS,
            (t2 - t1) / RUNS,
            (t3 - t2) / RUNS,
            (t3 - t0) / RUNS,
        ];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {} | {n} | {findings} | {:.1} | {:.1} | {:.2} | {:.1} | {out_len} |",
            shape.name,
            ms(best[0]),
            ms(best[1]),
            ms(best[2]),
            ms(best[3])
        );
    }
}
