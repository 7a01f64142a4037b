//! What the webhook does per request once the body is in memory: `admission::decode`,
//! `judge` under the default policy, `response` + `encode`. Deterministic, for instruction
//! counts (`valgrind --tool=callgrind`) and profiles (`perf record`):
//!
//!   python3 bench/gen_bodies.py /tmp/bodies
//!   cargo bench --bench review --no-run
//!   valgrind --tool=callgrind target/release/deps/review-* /tmp/bodies/pod6k-allowed.json 1000
//!
//! Arguments: BODY [ITERATIONS (default 1000)]. Prints the verdict and the response size so
//! a run can be checked to do what it claims.

use std::hint::black_box;

use volguard::Policy;
use volguard::admission;

// The server's allocator (src/main.rs), so allocation costs are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(path) = args.next() else {
        eprintln!("usage: review BODY.json [ITERATIONS]");
        return;
    };
    let n: usize = args.next().map_or(1000, |s| s.parse().expect("iterations"));
    let body = std::fs::read(&path).expect("read body");
    let policy = Policy::default();
    let mut last = (false, 0);
    for _ in 0..n {
        let req = admission::decode(black_box(&body)).expect("decodes");
        let verdict = req.judge(&policy);
        let out = admission::encode(admission::response(&req.uid, &verdict));
        last = (verdict.allowed, black_box(out).len());
    }
    println!(
        "{path}: {} bytes, {n} iterations, allowed={}, response {} bytes",
        body.len(),
        last.0,
        last.1
    );
}
