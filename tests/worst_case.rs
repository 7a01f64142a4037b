//! Issue 9's worst-case shapes at the apiserver's 3 MiB limit go through the same path as
//! the webhook (decode, judge, response, encode): every finding is kept in the verdict, and
//! the answer stays small. Their timing is measured by `cargo bench --bench engine`
//! (`worst_case_3mib/*`), not here.

#[path = "../bench/shapes.rs"]
mod shapes;

use std::collections::BTreeMap;

use volguard::Policy;
use volguard::admission::{self, MAX_RESPONSE_FINDINGS};

#[test]
fn worst_case_shapes_keep_every_finding_and_answer_small() {
    let policy = Policy::default();
    for shape in shapes::WORST_CASES {
        let n = shape.max_n();
        let body = shape.review(n);
        assert!(
            body.len() <= shapes::APISERVER_LIMIT && body.len() > shapes::APISERVER_LIMIT / 2,
            "{}: {} bytes is not a near-3 MiB request",
            shape.name,
            body.len()
        );
        let req = admission::decode(body.as_bytes()).expect("shape decodes");
        let verdict = req.judge(&policy);
        assert_eq!(verdict.allowed, shape.allowed, "{}", shape.name);

        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for f in &verdict.findings {
            *counts.entry(f.rule.to_string()).or_default() += 1;
        }
        let want: BTreeMap<String, usize> = (shape.findings)(n)
            .into_iter()
            .map(|(r, c)| (r.to_owned(), c))
            .collect();
        assert_eq!(counts, want, "{}", shape.name);

        let r = admission::response(&req.uid, &verdict);
        let warnings = r.warnings.clone().unwrap_or_default();
        assert!(
            warnings.len() <= MAX_RESPONSE_FINDINGS + 1,
            "{}",
            shape.name
        );
        let denial_lines = r.result.message.lines().count();
        assert!(denial_lines <= MAX_RESPONSE_FINDINGS + 1, "{}", shape.name);
        for line in warnings
            .iter()
            .map(String::as_str)
            .chain(r.result.message.lines())
        {
            assert!(line.len() < 256, "{}: {line}", shape.name);
        }
        let total = verdict.findings.len();
        if total > MAX_RESPONSE_FINDINGS {
            let summary = if shape.allowed {
                warnings.last().cloned().unwrap()
            } else {
                r.result.message.lines().last().unwrap().to_owned()
            };
            assert!(
                summary.ends_with("more violations"),
                "{}: {summary}",
                shape.name
            );
        }
        let encoded = admission::encode(r);
        // 100 warnings + 100 denial lines of < 256 bytes each, plus JSON framing.
        assert!(
            encoded.len() < 64 * 1024,
            "{}: {} byte response",
            shape.name,
            encoded.len()
        );
        eprintln!(
            "{}: n={n}, {} bytes in, {} findings, {} bytes out",
            shape.name,
            body.len(),
            total,
            encoded.len()
        );
    }
}
