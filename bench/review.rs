//! What the webhook does per request once the body is in memory: `admission::decode`,
//! `judge` under the default policy, `response` + `encode`. Deterministic, for instruction
//! counts (`valgrind --tool=callgrind`) and profiles (`perf record`):
//!
//!   python3 bench/gen_bodies.py /tmp/bodies
//!   cargo bench --bench review --no-run
//!   valgrind --tool=callgrind target/release/deps/review-* /tmp/bodies/pod6k-allowed.json 1000
//!
//! Arguments: BODY [ITERATIONS (default 1000)] [STAGE]. Prints the verdict and the response
//! size so a run can be checked to do what it claims. STAGE picks how much of that is done:
//!
//! - `full` (default): decode + judge + encode, what the handler does;
//! - `decode`: `admission::decode` only;
//! - `validate`: `serde_json` reading the body into `IgnoredAny`, which builds nothing and only
//!   checks the JSON: the least any decoder built on serde_json can cost for this body.

use std::hint::black_box;

use volguard::Policy;
use volguard::admission;

// The server's allocator (src/main.rs), so allocation costs are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(path) = args.next() else {
        eprintln!("usage: review BODY.json [ITERATIONS] [full|decode|validate]");
        return;
    };
    let n: usize = args.next().map_or(1000, |s| s.parse().expect("iterations"));
    let stage = args.next().unwrap_or_else(|| "full".to_owned());
    if !["full", "decode", "validate"].contains(&stage.as_str()) {
        eprintln!("unknown stage {stage:?}: full, decode or validate");
        std::process::exit(2);
    }
    let body = std::fs::read(&path).expect("read body");
    let policy = Policy::default();
    let mut last = (false, 0);
    for _ in 0..n {
        match stage.as_str() {
            "full" => {
                let req = admission::decode(black_box(&body)).expect("decodes");
                let verdict = req.judge(&policy);
                let out = admission::encode(admission::response(&req.uid, &verdict));
                last = (verdict.allowed, black_box(out).len());
            }
            "decode" => {
                let req = admission::decode(black_box(&body)).expect("decodes");
                black_box(req);
            }
            _ => {
                let checked: serde::de::IgnoredAny =
                    serde_json::from_slice(black_box(&body)).expect("valid JSON");
                black_box(checked);
            }
        }
    }
    if stage != "full" {
        println!(
            "{path}: {} bytes, {n} iterations, stage {stage}",
            body.len()
        );
        return;
    }
    println!(
        "{path}: {} bytes, {n} iterations, allowed={}, response {} bytes",
        body.len(),
        last.0,
        last.1
    );
}
