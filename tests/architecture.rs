//! The house rules, enforced: the engine is pure (no I/O, no runtime, no server, no clock)
//! and its modules form a stack without cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Paths the engine's production code must never name.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "rustls",
    "kube::",
    "k8s_openapi",
    "tracing",
    "std::fs",
    "std::net",
    "std::env",
    "std::process",
    "std::thread",
    "std::time::Instant",
    "std::time::SystemTime",
    "Instant::now",
    "SystemTime::now",
    "std::io::stdin",
    "std::io::stdout",
    "println!",
    "eprintln!",
    "crate::server",
    "crate::source",
    "crate::cli",
    "crate::admission",
    "crate::certs",
];

/// The production part of a source file (its `#[cfg(test)]` module and test helpers may
/// use anything).
fn production(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Forbidden paths named by `text`, ignoring comments.
fn forbidden_uses(text: &str) -> Vec<&'static str> {
    let code: String = production(text)
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    FORBIDDEN
        .iter()
        .copied()
        .filter(|f| {
            code.match_indices(f).any(|(i, _)| {
                // A whole path segment: not `my_tokio` or `kube_quantity`.
                i == 0
                    || !code.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && code.as_bytes()[i - 1] != b'_'
            })
        })
        .collect()
}

fn engine_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("engine.rs")];
    let mut dirs = vec![root.join("engine")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The engine module a file belongs to: `src/engine/rules/x.rs` is `rules`.
fn module_of(path: &Path) -> String {
    let rel = path
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine"))
        .unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

#[test]
fn the_engine_does_no_io_and_imports_no_other_room() {
    let files = engine_files();
    assert!(files.len() > 10, "found the engine files: {files:?}");
    let mut offences = Vec::new();
    for f in &files {
        if f.ends_with("testutil.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for bad in forbidden_uses(&text) {
            offences.push(format!("{}: uses {bad}", f.display()));
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn the_checker_catches_what_it_should() {
    assert_eq!(forbidden_uses("use tokio::sync::Mutex;\n"), ["tokio"]);
    assert_eq!(
        forbidden_uses("let t = std::time::Instant::now();"),
        ["std::time::Instant", "Instant::now"]
    );
    assert_eq!(
        forbidden_uses("use crate::server::AppState;"),
        ["crate::server"]
    );
    assert!(forbidden_uses("use kube_quantity::ParsedQuantity;").is_empty());
    assert!(forbidden_uses("// tokio is not used here\nfn f() {}").is_empty());
    assert!(forbidden_uses("fn f() {}\n#[cfg(test)]\nmod tests { use std::fs; }").is_empty());
}

/// `crate::engine::<module>` edges between engine modules (a rule file belongs to `rules`).
fn engine_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in engine_files() {
        if f.ends_with("engine.rs") || f.ends_with("testutil.rs") {
            continue;
        }
        let from = module_of(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        let code = production(&text);
        let edges = graph.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::engine::") {
            let rest = &code[i + "crate::engine::".len()..];
            let to: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_owned());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn engine_modules_form_a_stack_without_cycles() {
    let graph = engine_graph();
    assert!(
        graph.contains_key("rules") && graph.contains_key("verdict"),
        "{graph:?}"
    );
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
    // The documented order: the policy reads the rule registry, never the other way round.
    assert!(graph["policy"].contains("rules"), "{graph:#?}");
    assert!(!graph["rules"].contains("policy"), "{graph:#?}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("model".into()).or_default().insert("policy".into());
    g.entry("policy".into()).or_default().insert("rules".into());
    g.entry("rules".into()).or_default().insert("model".into());
    assert!(find_cycle(&g).is_some());
    g.get_mut("rules").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
